# The direct kernels of ../_direct.pyx, compiled a second time with AVX2 and FMA (setup.py);
# tinycnn.kernels loads this build on a CPU with AVX2 and FMA but no AVX-512F.
include "../_direct.pyx"
