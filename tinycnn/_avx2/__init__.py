"""The compiled kernels built a second time with AVX2 (setup.py), for the CPUs that have it;
tinycnn.kernels chooses between this build and the baseline one at import. Importing them
on a CPU without AVX2 may crash the process, so nothing else imports them."""
