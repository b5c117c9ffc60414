# model.h5 (io/lsw_hdf5.c, io/lsw_zstd_filter.c, plugins/): only with HDF5.
if(LSW_WITH_HDF5)
  # Codec, filter (round trip, damaged and oversize frames), writer, reader,
  # identical bytes for two writes, the reader's validation.
  lsw_unit_test(unit_hdf5 unit_hdf5.c)
  add_dependencies(unit_hdf5 h5zstd)
  set_tests_properties(unit_hdf5 PROPERTIES LABELS "unit;hdf5" TIMEOUT 120)

  # h5py (serial HDF5 from apt) and h5dump read a sample model.h5 through
  # build/plugins/libh5zstd.so, bit for bit; h5py writes through it too.
  set(LSW_H5_SAMPLE ${CMAKE_CURRENT_BINARY_DIR}/hdf5_sample)
  add_test(NAME hdf5_sample COMMAND unit_hdf5 --emit ${LSW_H5_SAMPLE})
  set_tests_properties(hdf5_sample PROPERTIES LABELS hdf5 FIXTURES_SETUP hdf5_sample)
  add_test(NAME hdf5_h5py
           COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_h5py.py ${LSW_H5_SAMPLE}
                   $<TARGET_FILE:unit_hdf5> ${CMAKE_BINARY_DIR}/plugins)
  set_tests_properties(hdf5_h5py PROPERTIES LABELS hdf5 FIXTURES_REQUIRED hdf5_sample TIMEOUT 300
                       ENVIRONMENT "HDF5_PLUGIN_PATH=${CMAKE_BINARY_DIR}/plugins")

  # The plugin must not need HDF5's symbols (h5py loads libhdf5 RTLD_LOCAL)
  # and must export the two plugin entry points.
  add_test(NAME hdf5_plugin_symbols
           COMMAND sh -c "u=$(nm -D --undefined-only \"$1\") && d=$(nm -D --defined-only \"$1\") && \
! printf '%s\\n' \"$u\" | grep -q ' H5' && printf '%s\\n' \"$d\" | grep -q ' T H5PLget_plugin_info$' && \
printf '%s\\n' \"$d\" | grep -q ' T H5PLget_plugin_type$'" sh $<TARGET_FILE:h5zstd>)
  set_tests_properties(hdf5_plugin_symbols PROPERTIES LABELS hdf5)

  # Crafted model.h5 inputs (filter parameters, chunk geometry, frames without
  # checksum): exit 2, never data out of an unchecked filter.
  add_test(NAME hdf5_bad_inputs COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bad_h5.sh ${LSW_BIN}
                                        ${CMAKE_CURRENT_BINARY_DIR}/bad_h5)
  set_tests_properties(hdf5_bad_inputs PROPERTIES LABELS "cli;hdf5;mpi" TIMEOUT 120 PROCESSORS 2
                       ENVIRONMENT "MPIEXEC=${MPIEXEC_EXECUTABLE};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
endif()

if(LSW_WITH_HDF5)
  # merge --format hdf5 under MPI: identical files for 1-4 ranks, read back by
  # h5py bit-exactly, chained as an input, errors on one rank.
  add_test(NAME mpi_hdf5_merge
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_hdf5.sh ${LSW_BIN} ${MPIEXEC_EXECUTABLE} ${LSW_PYTHON}
                   ${CMAKE_BINARY_DIR}/plugins ${CMAKE_CURRENT_BINARY_DIR}/mpi_hdf5)
  set_tests_properties(mpi_hdf5_merge PROPERTIES LABELS "mpi;hdf5" TIMEOUT 600
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")
  add_dependencies(layerswap h5zstd)
endif()
