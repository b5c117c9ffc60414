# layerswap sweep and merge --sweep --index (docs/sweep.md).
add_test(NAME sweep_grid
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sweep.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                 ${CMAKE_CURRENT_BINARY_DIR}/sweep)
set_tests_properties(sweep_grid PROPERTIES LABELS "cli;mpi" TIMEOUT 600
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")

# Sweeps on every rank: 1, 2, 3 ranks byte-identical (safetensors and HDF5),
# stop/resume under another rank count, faults, summaries.
add_test(NAME sweep_ranks
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sweep_ranks.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                 ${CMAKE_CURRENT_BINARY_DIR}/sweep_ranks)
set_tests_properties(sweep_ranks PROPERTIES LABELS "cli;mpi" TIMEOUT 600
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")
