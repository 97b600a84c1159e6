# The kernels of ../_winograd.pyx, compiled a second time with AVX2 (setup.py); tinycnn.kernels
# loads this build instead of the baseline one when the CPU has AVX2.
include "../_winograd.pyx"
