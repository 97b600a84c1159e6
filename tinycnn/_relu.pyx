# Compiled ReLU, forward and backward. Reference: _relu_numpy.py (same signatures, same values,
# NaN included). Directives (boundscheck, wraparound, cdivision, ...) are set in setup.py.
#
# One pass over memory each. NumPy needs two for the forward (np.maximum and the x > 0 mask)
# and two for the backward (the mask, then the multiply), and np.maximum alone ran at a
# quarter of a copy's speed on (32, 32, 28, 28) float32 (measured 0.31 vs 0.08 ms).
from cython cimport floating


def relu_forward(const floating[::1] x, floating[::1] out):
    """out[i] = max(x[i], 0), NaN kept (as np.maximum). x, out: 1-D views of equal length."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v, zero = 0
    with nogil:
        for i in range(n):
            v = x[i]
            out[i] = zero if v <= zero else v


def relu_backward(const floating[::1] dout, const floating[::1] out, floating[::1] dx):
    """dx[i] = dout[i] where out[i] > 0, else 0. out: the forward's output (out > 0 iff x > 0)."""
    cdef Py_ssize_t i, n = dout.shape[0]
    cdef floating g, zero = 0
    with nogil:
        for i in range(n):
            # both loads first, then a select: gcc turns that into a vector blend; with the
            # load inside the condition it kept a branch, mispredicted half the time
            # (5 ms instead of 0.19 ms on (32, 32, 28, 28) float32, measured)
            g = dout[i]
            dx[i] = g if out[i] > zero else zero
