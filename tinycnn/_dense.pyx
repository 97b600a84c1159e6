# Compiled fully connected GEMMs for float32 at batch >= 16 (and the forward at batch 1), with
# AVX-512 and FMA (setup.py builds this module with -mavx512f -mfma on x86-64 only;
# tinycnn.kernels imports it only on a CPU that has both). Reference: _dense_numpy.py (same
# signatures; each is one np.matmul).
#
# Why not BLAS: these GEMMs have one short side, the batch (K = 32 in dW, N = 32 in the
# forward). OpenBLAS packs both operands, and for dW it first zeroes all of C (beta = 0), a
# pass of its own over the 6.4M weights, then adds the products into it. Here the batch side
# sits in registers: the forward keeps 8 rows of W times 32 samples of accumulators and reads
# each weight once; dW keeps a 4 x 64 tile of C over all K and writes it once, with streaming
# stores; dx keeps a 4 x 64 tile of dx over all of W's rows, read from a packed 64-column
# panel of W. 6272 -> 1024 at batch 32, one thread, against OpenBLAS's SkylakeX kernel (ms,
# medians): forward 2.8-3.1 vs 4.0-4.2 in cache, 3.2 vs 4.4-4.5 after a 64 MB sweep; dW 2.7-3.0
# vs 3.7-4.0; dx 3.9 vs 4.3 in cache, 4.2-4.5 vs 5.4-5.7 after the sweep (measured). Unpacked,
# dx read W's panel with a 25 KB stride: 5.1-5.4 ms in cache.

include "_avx512.pxi"

from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc


# --- forward: outT (M, N) = W (M, K) @ xT (K, N) ---------------------------------------------

cdef void _forward_rows8(const float* W, Py_ssize_t ldw, const float* xT, Py_ssize_t N, Py_ssize_t K,
                         float* outT, Py_ssize_t n0, __mmask16 m0, __mmask16 m1) noexcept nogil:
    """outT[r, n0:n0+32] = W[r] . xT[:, n0:n0+32] for the 8 rows r of W at W (masks m0, m1: the
    samples that exist among n0..n0+15 and n0+16..n0+31)."""
    cdef __m512 acc0[8]
    cdef __m512 acc1[8]
    cdef __m512 x0, x1, a
    cdef Py_ssize_t k, r
    for r in range(8):
        acc0[r] = _mm512_setzero_ps()
        acc1[r] = _mm512_setzero_ps()
    for k in range(K):
        x0 = _mm512_maskz_loadu_ps(m0, xT + k * N + n0)
        x1 = _mm512_maskz_loadu_ps(m1, xT + k * N + n0 + 16)
        for r in range(8):
            a = _mm512_set1_ps(W[r * ldw + k])
            acc0[r] = _mm512_fmadd_ps(a, x0, acc0[r])
            acc1[r] = _mm512_fmadd_ps(a, x1, acc1[r])
    # spelled out, not a loop over r: gcc then keeps acc0 and acc1 in registers (with the loop it
    # stored all 16 to the stack on every k when this function was not inlined: 5.6 vs 3.0 ms)
    _mm512_mask_storeu_ps(outT + n0, m0, acc0[0])
    _mm512_mask_storeu_ps(outT + n0 + 16, m1, acc1[0])
    _mm512_mask_storeu_ps(outT + N + n0, m0, acc0[1])
    _mm512_mask_storeu_ps(outT + N + n0 + 16, m1, acc1[1])
    _mm512_mask_storeu_ps(outT + 2 * N + n0, m0, acc0[2])
    _mm512_mask_storeu_ps(outT + 2 * N + n0 + 16, m1, acc1[2])
    _mm512_mask_storeu_ps(outT + 3 * N + n0, m0, acc0[3])
    _mm512_mask_storeu_ps(outT + 3 * N + n0 + 16, m1, acc1[3])
    _mm512_mask_storeu_ps(outT + 4 * N + n0, m0, acc0[4])
    _mm512_mask_storeu_ps(outT + 4 * N + n0 + 16, m1, acc1[4])
    _mm512_mask_storeu_ps(outT + 5 * N + n0, m0, acc0[5])
    _mm512_mask_storeu_ps(outT + 5 * N + n0 + 16, m1, acc1[5])
    _mm512_mask_storeu_ps(outT + 6 * N + n0, m0, acc0[6])
    _mm512_mask_storeu_ps(outT + 6 * N + n0 + 16, m1, acc1[6])
    _mm512_mask_storeu_ps(outT + 7 * N + n0, m0, acc0[7])
    _mm512_mask_storeu_ps(outT + 7 * N + n0 + 16, m1, acc1[7])


cdef void _forward_row(const float* W, const float* xT, Py_ssize_t N, Py_ssize_t K,
                       float* outT, Py_ssize_t n0, __mmask16 m0, __mmask16 m1) noexcept nogil:
    """One row of W: outT[n0:n0+32] = W . xT[:, n0:n0+32] (masks as _forward_rows8)."""
    cdef __m512 acc0 = _mm512_setzero_ps()
    cdef __m512 acc1 = _mm512_setzero_ps()
    cdef __m512 a
    cdef Py_ssize_t k
    for k in range(K):
        a = _mm512_set1_ps(W[k])
        acc0 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m0, xT + k * N + n0), acc0)
        acc1 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m1, xT + k * N + n0 + 16), acc1)
    _mm512_mask_storeu_ps(outT + n0, m0, acc0)
    _mm512_mask_storeu_ps(outT + n0 + 16, m1, acc1)


cdef void _gemv_rows8(const float* W, Py_ssize_t ldw, const float* x, Py_ssize_t K, float* y) noexcept nogil:
    """y[r] = W[r] . x for the 8 rows r of W at W: 16 entries of each row at a time, in 8
    accumulators (8 streams of W in flight), each summed across its lanes at the end."""
    cdef __m512 acc[8]
    cdef __m512 xv
    cdef Py_ssize_t k, r
    cdef __mmask16 m
    for r in range(8):
        acc[r] = _mm512_setzero_ps()
    for k in range(0, K, 16):
        m = _lanes(K - k)
        xv = _mm512_maskz_loadu_ps(m, x + k)
        for r in range(8):
            acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, W + r * ldw + k), xv, acc[r])
    for r in range(8):
        y[r] = _mm512_reduce_add_ps(acc[r])


cdef void _gemv_row(const float* W, const float* x, Py_ssize_t K, float* y) noexcept nogil:
    """y[0] = W . x, one row."""
    cdef __m512 acc = _mm512_setzero_ps()
    cdef Py_ssize_t k
    cdef __mmask16 m
    for k in range(0, K, 16):
        m = _lanes(K - k)
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, W + k), _mm512_maskz_loadu_ps(m, x + k), acc)
    y[0] = _mm512_reduce_add_ps(acc)


cdef void _forward_core(const float* W, const float* xT, float* outT, Py_ssize_t K, Py_ssize_t N,
                        Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """forward on raw C-contiguous arrays: W (M, K), xT (K, N), outT (M, N)."""
    cdef Py_ssize_t o, n0
    cdef __mmask16 m0, m1
    if K == 0:                                           # an empty sum
        for o in range(lo * N, hi * N):
            outT[o] = 0
        return
    if N == 1:
        o = lo
        while o + 8 <= hi:
            _gemv_rows8(W + o * K, K, xT, K, outT + o)
            o += 8
        while o < hi:
            _gemv_row(W + o * K, xT, K, outT + o)
            o += 1
        return
    for n0 in range(0, N, 32):                           # 32 samples at a time, the last masked
        m0 = _lanes(N - n0)
        m1 = _lanes(N - n0 - 16)
        o = lo
        while o + 8 <= hi:
            _forward_rows8(W + o * K, K, xT, N, K, outT + o * N, n0, m0, m1)
            o += 8
        while o < hi:
            _forward_row(W + o * K, xT, N, K, outT + o * N, n0, m0, m1)
            o += 1


cdef struct ForwardArgs:                                 # one forward call, on raw pointers
    const float* W
    const float* xT
    float* outT
    Py_ssize_t K, N, lo, hi


cdef int _forward_task(void* arg) noexcept nogil:
    """The task function of ForwardTask (a _gate.task_fn)."""
    cdef ForwardArgs* a = <ForwardArgs*> arg
    _forward_core(a.W, a.xT, a.outT, a.K, a.N, a.lo, a.hi)
    return 0


cdef class ForwardTask:
    """forward's arguments held for one run: by run() on this thread, or by a pool thread without
    the GIL (address: the task function and its argument, for _gate.Gate.post_task). Holds its
    arrays, so the addresses stay valid while the task lives."""
    cdef ForwardArgs a
    cdef tuple arrays

    def __init__(self, const float[:, ::1] W, const float[:, ::1] xT, float[:, ::1] outT, Py_ssize_t lo, Py_ssize_t hi):
        self.arrays = (W, xT, outT)
        self.a.K, self.a.N, self.a.lo, self.a.hi = W.shape[1], xT.shape[1], lo, hi
        if hi <= lo or self.a.N == 0:
            self.a.lo = self.a.hi = 0                    # nothing to do
            return
        self.a.W = &W[0, 0] if self.a.K > 0 else NULL
        self.a.xT = &xT[0, 0] if self.a.K > 0 else NULL
        self.a.outT = &outT[0, 0]

    @property
    def address(self):
        """(task function, argument) addresses, for _gate.Gate.post_task."""
        return <uintptr_t> &_forward_task, <uintptr_t> &self.a

    def run(self):
        with nogil:
            _forward_task(&self.a)

    def check(self):
        """Nothing can fail."""


def forward(const float[:, ::1] W, const float[:, ::1] xT, float[:, ::1] outT, Py_ssize_t lo, Py_ssize_t hi):
    """outT[lo:hi] = W[lo:hi] @ xT. W: (M, K), xT: (K, N), outT: (M, N), float32, C-contiguous.

    At N = 1 a matrix-vector product, 8 rows of W at a time: 6272 -> 1024 0.88 vs OpenBLAS's
    0.92-0.94 ms in cache and 1.63 vs 1.80 after a 256 MB sweep; 25088 -> 1024 4.6-4.8 vs 6.3
    and 6.1 vs 7.25 (one thread, its C prototype, measured). Runs ForwardTask, which a pool
    thread can also run without the GIL."""
    ForwardTask(W, xT, outT, lo, hi).run()


# --- the backward GEMMs: a 4 x 64 tile of C = A @ B over all of K -----------------------------
#
# dW = doutT @ x and dx = dout @ W have the same inner block: rows of A with K contiguous, times
# a (K, 64) panel of B, packed to a contiguous block first (zero past the panel's last column).

cdef void _pack(const float* b, Py_ssize_t K, Py_ssize_t ldb, float* panel, Py_ssize_t width) noexcept nogil:
    """panel (K, 64) = b[k*ldb + 0:width] for each k, zero past width (only those are read)."""
    cdef Py_ssize_t k, j
    for k in range(K):
        for j in range(4):
            _mm512_storeu_ps(panel + k * 64 + 16 * j, _mm512_maskz_loadu_ps(_lanes(width - 16 * j), b + k * ldb + 16 * j))


cdef void _tile1(const float* a, Py_ssize_t K, const float* panel, float* c, Py_ssize_t width) noexcept nogil:
    """One row: c[0:width] = sum_k a[k] * panel[k*64 + 0:width], width <= 64."""
    cdef __m512 acc0 = _mm512_setzero_ps()
    cdef __m512 acc1 = _mm512_setzero_ps()
    cdef __m512 acc2 = _mm512_setzero_ps()
    cdef __m512 acc3 = _mm512_setzero_ps()
    cdef __m512 s
    cdef Py_ssize_t k
    for k in range(K):
        s = _mm512_set1_ps(a[k])
        acc0 = _mm512_fmadd_ps(s, _mm512_loadu_ps(panel + k * 64), acc0)
        acc1 = _mm512_fmadd_ps(s, _mm512_loadu_ps(panel + k * 64 + 16), acc1)
        acc2 = _mm512_fmadd_ps(s, _mm512_loadu_ps(panel + k * 64 + 32), acc2)
        acc3 = _mm512_fmadd_ps(s, _mm512_loadu_ps(panel + k * 64 + 48), acc3)
    _mm512_mask_storeu_ps(c, _lanes(width), acc0)
    _mm512_mask_storeu_ps(c + 16, _lanes(width - 16), acc1)
    _mm512_mask_storeu_ps(c + 32, _lanes(width - 32), acc2)
    _mm512_mask_storeu_ps(c + 48, _lanes(width - 48), acc3)


cdef void _panel_rows(const float* a, Py_ssize_t K, Py_ssize_t rows, const float* b, Py_ssize_t ldb,
                      float* panel, float* c, Py_ssize_t ldc, Py_ssize_t width, bint stream) noexcept nogil:
    """c[r, 0:width] = sum_k a[r*K + k] * b[k*ldb + 0:width] for r < rows, width <= 64: b's
    columns packed into panel (K, 64), then a 4 x 64 tile of c over all of K, 4 rows at a time
    (_tile1 for the last rows % 4). stream: width 64 and c's rows 64-byte aligned, the tiles
    written with streaming stores (they bypass the cache: c is written once here, read later)."""
    cdef __m512 acc[16]
    cdef __m512 b0, b1, b2, b3, s
    cdef __mmask16 m0 = _lanes(width), m1 = _lanes(width - 16), m2 = _lanes(width - 32), m3 = _lanes(width - 48)
    cdef Py_ssize_t k, r, j, o = 0
    cdef const float* ao
    cdef float* co
    _pack(b, K, ldb, panel, width)
    while o + 4 <= rows:
        ao = a + o * K
        co = c + o * ldc
        for j in range(16):
            acc[j] = _mm512_setzero_ps()
        for k in range(K):
            b0 = _mm512_loadu_ps(panel + k * 64)
            b1 = _mm512_loadu_ps(panel + k * 64 + 16)
            b2 = _mm512_loadu_ps(panel + k * 64 + 32)
            b3 = _mm512_loadu_ps(panel + k * 64 + 48)
            for r in range(4):
                s = _mm512_set1_ps(ao[r * K + k])
                acc[4 * r] = _mm512_fmadd_ps(s, b0, acc[4 * r])
                acc[4 * r + 1] = _mm512_fmadd_ps(s, b1, acc[4 * r + 1])
                acc[4 * r + 2] = _mm512_fmadd_ps(s, b2, acc[4 * r + 2])
                acc[4 * r + 3] = _mm512_fmadd_ps(s, b3, acc[4 * r + 3])
        for r in range(4):                               # (spelled out: gcc then keeps acc in registers)
            if stream:
                _mm512_stream_ps(co + r * ldc, acc[4 * r])
                _mm512_stream_ps(co + r * ldc + 16, acc[4 * r + 1])
                _mm512_stream_ps(co + r * ldc + 32, acc[4 * r + 2])
                _mm512_stream_ps(co + r * ldc + 48, acc[4 * r + 3])
            else:
                _mm512_mask_storeu_ps(co + r * ldc, m0, acc[4 * r])
                _mm512_mask_storeu_ps(co + r * ldc + 16, m1, acc[4 * r + 1])
                _mm512_mask_storeu_ps(co + r * ldc + 32, m2, acc[4 * r + 2])
                _mm512_mask_storeu_ps(co + r * ldc + 48, m3, acc[4 * r + 3])
        o += 4
    while o < rows:
        _tile1(a + o * K, K, panel, c + o * ldc, width)
        o += 1


def weight_grad(const float[:, ::1] doutT, const float[:, ::1] x, float[:, ::1] dW, Py_ssize_t lo, Py_ssize_t hi):
    """dW[lo:hi] = doutT[lo:hi] @ x. doutT: (M, K), x: (K, N), dW: (M, N), float32, C-contiguous.

    In panels of 64 columns, from the first column where dW's rows are 64-byte aligned (if
    every row is: N a multiple of 16), streamed; the columns before that panel and after the
    last full one are stored without streaming. Unpacked, x's rows 100 KB apart (25088
    features) fell into two L1 sets and the tiles ran 3 times slower at K = 32 than at K = 16
    (measured)."""
    cdef Py_ssize_t K = x.shape[0], N = x.shape[1], i, head, end
    cdef bint stream
    cdef float* panel
    if hi <= lo or N == 0:
        return
    if K == 0:
        dW[lo:hi] = 0
        return
    panel = <float*> malloc(K * 64 * sizeof(float))
    if panel == NULL:
        raise MemoryError()
    with nogil:
        stream = N % 16 == 0
        # floats before dW's first 64-byte boundary in each row (0 to 15); with N % 16 != 0 the
        # rows are not all aligned alike, and nothing is streamed
        head = min(<Py_ssize_t> ((64 - (<uintptr_t> &dW[lo, 0]) % 64) % 64) // 4 if stream else 0, N)
        end = head + (N - head) // 64 * 64
        if head > 0:
            _panel_rows(&doutT[lo, 0], K, hi - lo, &x[0, 0], N, panel, &dW[lo, 0], N, head, False)
        for i in range(head, end, 64):
            _panel_rows(&doutT[lo, 0], K, hi - lo, &x[0, i], N, panel, &dW[lo, i], N, 64, stream)
        for i in range(end, N, 64):
            _panel_rows(&doutT[lo, 0], K, hi - lo, &x[0, i], N, panel, &dW[lo, i], N, min(64, N - i), False)
        if stream:
            _mm_sfence()                                 # the streamed stores are visible after this
    free(panel)


def input_grad(const float[:, ::1] dout, const float[:, ::1] W, float[:, ::1] dx, Py_ssize_t lo, Py_ssize_t hi):
    """dx[:, lo:hi] = dout @ W[:, lo:hi]. dout: (N, K), W: (K, M), dx: (N, M), float32, C-contiguous.

    Per panel of 64 columns of W: packed, then samples 4 at a time."""
    cdef Py_ssize_t N = dout.shape[0], K = dout.shape[1], M = W.shape[1], i
    cdef float* panel
    if hi <= lo or N == 0:
        return
    if K == 0:
        dx[:, lo:hi] = 0
        return
    panel = <float*> malloc(K * 64 * sizeof(float))
    if panel == NULL:
        raise MemoryError()
    with nogil:
        for i in range(lo, hi, 64):
            _panel_rows(&dout[0, 0], K, N, &W[0, i], M, panel, &dx[0, i], M, min(64, hi - i), False)
    free(panel)
