# Derived models (soups, layer and row reversion; docs/config.md): against the
# numpy oracle, against writing them to disk first, at 1 and 3 ranks, in sweeps.
add_test(NAME derived_models
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/derived.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                 ${CMAKE_CURRENT_BINARY_DIR}/derived)
set_tests_properties(derived_models PROPERTIES LABELS "cli;mpi" TIMEOUT 600
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")
