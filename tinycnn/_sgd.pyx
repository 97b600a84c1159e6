# Compiled SGD update. Reference: _sgd_numpy.py (same signature, same arithmetic).
# Directives (boundscheck, wraparound, cdivision, ...) are set for all kernels in setup.py.
#
# One pass over memory instead of the ~5 array passes (and a temporary) of the NumPy
# form; on the 25.7M-weight fc layer of CloudCNN that is the difference between
# reading and writing ~100 MB five times and once.
from cython cimport floating


def sgd_momentum_update(floating[::1] p, const floating[::1] g, floating[::1] v,
                        floating lr, floating momentum, floating weight_decay):
    """In place, for every k:  v = momentum*v + (g + weight_decay*p);  p -= lr*v.

    p, g, v: 1-D views of equal length (a parameter, its gradient, its velocity).
    """
    cdef Py_ssize_t k, n = p.shape[0]
    cdef floating step
    with nogil:
        for k in range(n):
            step = momentum * v[k] + (g[k] + weight_decay * p[k])
            v[k] = step
            p[k] -= lr * step
