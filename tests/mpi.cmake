# MPI tests: 1-4 ranks, oversubscribed on a 2-core machine, as root.
set(LSW_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)
add_test(NAME mpi_identical_bytes
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_identical.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                 ${CMAKE_CURRENT_BINARY_DIR}/mpi_identical)
set_tests_properties(mpi_identical_bytes PROPERTIES LABELS mpi ENVIRONMENT "${LSW_MPI_ENV}" TIMEOUT 600)
lsw_unit_test(unit_assign unit_assign.c)
