lsw_unit_test(unit_kernels unit_kernels.c)
