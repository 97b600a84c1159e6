# The AVX-512 intrinsics the float32 kernels use, and the lane mask of a partial vector.
# Included by _dense.pyx (built with -mavx512f -mfma: setup.py). The direct convolution uses
# _vec.pxi instead, whose vectors are 16 or 8 lanes wide by the build.
cdef extern from "immintrin.h" nogil:
    ctypedef struct __m512:
        pass
    ctypedef unsigned short __mmask16
    __m512 _mm512_setzero_ps()
    __m512 _mm512_set1_ps(float)
    __m512 _mm512_loadu_ps(const void*)
    __m512 _mm512_maskz_loadu_ps(__mmask16, const void*)
    __m512 _mm512_fmadd_ps(__m512, __m512, __m512)
    __m512 _mm512_add_ps(__m512, __m512)
    void _mm512_storeu_ps(void*, __m512)
    void _mm512_mask_storeu_ps(void*, __mmask16, __m512)
    void _mm512_stream_ps(void*, __m512)
    float _mm512_reduce_add_ps(__m512)
    void _mm_sfence()


cdef inline __mmask16 _lanes(Py_ssize_t n) noexcept nogil:
    """The first min(n, 16) lanes (none if n <= 0)."""
    if n >= 16:
        return 0xFFFF
    if n <= 0:
        return 0
    return <__mmask16> ((1 << n) - 1)
