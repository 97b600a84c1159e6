# The GEMM of ../_gemm.pyx, built with AVX2 and FMA (setup.py); tinycnn.kernels hands it to the
# Winograd kernels on a CPU with AVX2 and FMA but no AVX-512.
include "../_gemm.pyx"
