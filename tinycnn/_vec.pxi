# One vector of float32 lanes, as wide as the build: 16 where the module is compiled with
# -mavx512f -mfma (tinycnn._direct), 8 where with -mavx2 -mfma (tinycnn._avx2._direct), so
# the direct kernels are written once. The tile sizes that fit each register file come with it:
# 32 registers of 16 floats with AVX-512, 16 of 8 with AVX2.
cdef extern from *:
    """
    #include <immintrin.h>
    #if defined(__AVX512F__) && defined(__FMA__)
    #define VEC_LANES 16
    #define VEC_TILE_CHANNELS 16   /* forward: 16 accumulators of one output row each */
    #define VEC_GRAD_CHANNELS 2    /* dW: 2 channels x 9 taps of lane sums */
    typedef __m512 vec_t;
    typedef __mmask16 vec_mask_t;
    static inline vec_mask_t vec_mask(Py_ssize_t n) {
        return n >= 16 ? (vec_mask_t) 0xFFFF : n <= 0 ? (vec_mask_t) 0 : (vec_mask_t) ((1u << n) - 1);
    }
    static inline vec_t vec_zero(void) { return _mm512_setzero_ps(); }
    static inline vec_t vec_set1(float a) { return _mm512_set1_ps(a); }
    static inline vec_t vec_load(const float* p) { return _mm512_loadu_ps(p); }
    static inline vec_t vec_maskz_load(vec_mask_t m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static inline void vec_store(float* p, vec_t v) { _mm512_storeu_ps(p, v); }
    static inline void vec_store_first(float* p, Py_ssize_t n, vec_t v) {
        if (n >= 16) _mm512_storeu_ps(p, v); else _mm512_mask_storeu_ps(p, vec_mask(n), v);
    }
    static inline vec_t vec_fmadd(vec_t a, vec_t b, vec_t c) { return _mm512_fmadd_ps(a, b, c); }
    static inline vec_t vec_add(vec_t a, vec_t b) { return _mm512_add_ps(a, b); }
    static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm512_mul_ps(a, b); }
    #elif defined(__AVX2__) && defined(__FMA__)
    #define VEC_LANES 8
    #define VEC_TILE_CHANNELS 8
    #define VEC_GRAD_CHANNELS 1
    typedef __m256 vec_t;
    typedef __m256i vec_mask_t;
    static inline vec_mask_t vec_mask(Py_ssize_t n) {
        int k = n >= 8 ? 8 : n <= 0 ? 0 : (int) n;
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static inline vec_t vec_zero(void) { return _mm256_setzero_ps(); }
    static inline vec_t vec_set1(float a) { return _mm256_set1_ps(a); }
    static inline vec_t vec_load(const float* p) { return _mm256_loadu_ps(p); }
    static inline vec_t vec_maskz_load(vec_mask_t m, const float* p) { return _mm256_maskload_ps(p, m); }
    static inline void vec_store(float* p, vec_t v) { _mm256_storeu_ps(p, v); }
    /* Plain stores of 8, 4, 2 and 1 lanes, no vmaskmovps: AMD Zen 1 to 3 run the AVX2 masked
       store as microcode (uops.info: vpmaskmovd m256 42 uops, one per 12 cycles on Zen 2 and 3;
       3 uops on Skylake), though their masked loads are one uop. */
    static inline void vec_store_first(float* p, Py_ssize_t n, vec_t v) {
        __m128 h = _mm256_castps256_ps128(v);
        if (n >= 8) { _mm256_storeu_ps(p, v); return; }
        if (n >= 4) { _mm_storeu_ps(p, h); h = _mm256_extractf128_ps(v, 1); p += 4; n -= 4; }
        if (n >= 2) { _mm_storel_pi((__m64*) p, h); h = _mm_movehl_ps(h, h); p += 2; n -= 2; }
        if (n >= 1) _mm_store_ss(p, h);
    }
    static inline vec_t vec_fmadd(vec_t a, vec_t b, vec_t c) { return _mm256_fmadd_ps(a, b, c); }
    static inline vec_t vec_add(vec_t a, vec_t b) { return _mm256_add_ps(a, b); }
    static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm256_mul_ps(a, b); }
    #else
    #error "this module needs -mavx512f -mfma or -mavx2 -mfma (setup.py)"
    #endif
    """
    ctypedef struct vec_t:
        pass
    ctypedef struct vec_mask_t:
        pass
    enum:
        VEC_LANES
        VEC_TILE_CHANNELS
        VEC_GRAD_CHANNELS
    vec_mask_t vec_mask(Py_ssize_t n) noexcept nogil            # the first min(n, VEC_LANES) lanes
    vec_t vec_zero() noexcept nogil
    vec_t vec_set1(float a) noexcept nogil                      # a in every lane
    vec_t vec_load(const float* p) noexcept nogil
    vec_t vec_maskz_load(vec_mask_t m, const float* p) noexcept nogil   # 0 in the lanes off m
    void vec_store(float* p, vec_t v) noexcept nogil
    void vec_store_first(float* p, Py_ssize_t n, vec_t v) noexcept nogil   # lanes 0..min(n, VEC_LANES)-1; none if n <= 0
    vec_t vec_fmadd(vec_t a, vec_t b, vec_t c) noexcept nogil  # a * b + c, rounded once
    vec_t vec_add(vec_t a, vec_t b) noexcept nogil
    vec_t vec_mul(vec_t a, vec_t b) noexcept nogil
