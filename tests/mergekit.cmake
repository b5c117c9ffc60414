# mergekit YAML configs (issue 13): configs/mergekit/ at 1 and 3 ranks against the
# oracle and their JSON twins; refusals, gradients and filters, restacked config.json.
set(LSW_MK_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)
add_test(NAME mergekit_configs
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mergekit.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                 ${CMAKE_CURRENT_BINARY_DIR}/mergekit)
set_tests_properties(mergekit_configs PROPERTIES LABELS "mpi;cli" ENVIRONMENT "${LSW_MK_MPI_ENV}" TIMEOUT 900)
add_test(NAME cli_yaml
         COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_yaml.py --bin ${LSW_BIN} --data ${LSW_TEST_DATA}
                 --work ${CMAKE_CURRENT_BINARY_DIR}/cli/yaml)
set_tests_properties(cli_yaml PROPERTIES LABELS cli TIMEOUT 600)
lsw_unit_test(unit_yaml unit_yaml.c)
