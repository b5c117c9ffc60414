# `layerswap stats` (engine/lsw_stats*.c, engine/STATS.md).

# Multi-expert row MAVs equal lsw_mav_tensor_rows bit for bit, squared norms follow their
# documented order on every instruction set; header checks, rank assignment, percentiles,
# grouping, colour-bar ticks and the proposal's layer rule on planted profiles.
lsw_unit_test(unit_stats stats_unit.c)

set(LSW_STATS_CLI ${CMAKE_CURRENT_SOURCE_DIR}/stats_cli.py)
set(LSW_STATS_DRIVER ${LSW_BIN})
set(LSW_STATS_OUT ${CMAKE_CURRENT_BINARY_DIR}/stats-out)
set(LSW_STATS_FIXTURE ${LSW_TEST_DATA}/llama-bf16-sharded)
set(LSW_STATS_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)

# stats.h5 row MAVs, model MAVs, every summary.json cell and the squared norms of the
# module-level view against the numpy oracle (relative 1e-9), at 1 and 3 ranks; stats.h5's
# string attributes read as str by h5py and its /cells matrices equal summary.json's cells.
if(LSW_WITH_HDF5)
  set(LSW_STATS_H5 h5)
else()
  set(LSW_STATS_H5 noh5)
endif()
foreach(np 1 3)
  add_test(NAME stats_oracle_np${np}
           COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} oracle ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE} ${np}
                   ${LSW_STATS_FIXTURE} ${LSW_STATS_OUT}/np${np} ${LSW_STATS_H5})
  set_tests_properties(stats_oracle_np${np} PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}"
                       TIMEOUT 300 FIXTURES_SETUP stats_np${np} PROCESSORS ${np})
endforeach()

# Every output file byte-identical between 1 and 3 ranks.
add_test(NAME stats_ranks_identical
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} identical ${LSW_STATS_OUT}/np1 ${LSW_STATS_OUT}/np3)
set_tests_properties(stats_ranks_identical PROPERTIES LABELS cli FIXTURES_REQUIRED "stats_np1;stats_np3")

# The data read by mappings or by copies, with any number of threads: the same bytes.
add_test(NAME stats_modes_identical
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} modes ${LSW_STATS_DRIVER} ${LSW_STATS_FIXTURE} ${LSW_STATS_OUT}/np1
                 ${LSW_STATS_OUT}/modes)
set_tests_properties(stats_modes_identical PROPERTIES LABELS cli ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                     FIXTURES_REQUIRED stats_np1)

# Heatmaps parse as XML with L x types cells on one shared scale (several experts); report.html
# is self-contained and holds the MAV and module-share heatmaps.
add_test(NAME stats_svg COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} svg ${LSW_STATS_OUT}/np3)
set_tests_properties(stats_svg PROPERTIES LABELS cli FIXTURES_REQUIRED stats_np3)

# Planted synth patterns give the expected groups and proposal; the proposal merges (--dry-run).
add_test(NAME stats_proposal
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} proposal ${LSW_BIN} ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE}
                 ${LSW_STATS_OUT}/proposal)
set_tests_properties(stats_proposal PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                     PROCESSORS 2)

# Shape, dtype, missing and extra tensors: exit 2 on every rank (1 and 3), no hang.
add_test(NAME stats_mismatch
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} mismatch ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE}
                 ${LSW_STATS_FIXTURE} ${LSW_STATS_OUT}/mismatch)
set_tests_properties(stats_mismatch PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 600
                     PROCESSORS 3)

# --help, usage errors, reruns into an existing folder, --overwrite (MPI singleton).
add_test(NAME stats_usage
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} usage ${LSW_STATS_DRIVER} ${LSW_STATS_FIXTURE}
                 ${LSW_STATS_OUT}/usage)
set_tests_properties(stats_usage PROPERTIES LABELS cli ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300)

# A 3-D tensor has row MAVs in stats.h5 but stays out of the model MAV and the cells.
if(LSW_WITH_HDF5)
  add_test(NAME stats_nd COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} nd ${LSW_STATS_DRIVER} ${LSW_STATS_OUT}/nd)
  set_tests_properties(stats_nd PROPERTIES LABELS cli ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 120)
endif()

# Experts stored in other float dtypes than the base (F32 beside BF16): oracle values, 1 = 3 ranks.
if(LSW_WITH_HDF5)
  add_test(NAME stats_mixed_dtypes
           COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} mixed ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE}
                   ${LSW_STATS_FIXTURE} ${LSW_STATS_OUT}/mixed)
  set_tests_properties(stats_mixed_dtypes PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                       PROCESSORS 3)
endif()

# The proposal on the paper's Figure 2 planted at 24 and 80 layers (a few bottom and top
# layers, automatic and given sides, 1 and 2 ranks); a pair without language signal says so.
add_test(NAME stats_planted
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} planted ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE}
                 ${LSW_STATS_OUT}/planted)
set_tests_properties(stats_planted PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                     PROCESSORS 2)

# --quiet prints nothing on success (1 and 2 ranks, and a rerun that finds the folder complete).
add_test(NAME stats_quiet
         COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} quiet ${LSW_STATS_DRIVER} ${MPIEXEC_EXECUTABLE}
                 ${LSW_STATS_FIXTURE} ${LSW_STATS_OUT}/quiet)
set_tests_properties(stats_quiet PROPERTIES LABELS "cli;mpi" ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                     PROCESSORS 2)

# `layerswap demo` merges the layer swap its statistics propose, and says so.
add_test(NAME stats_demo COMMAND ${LSW_PYTHON} ${LSW_STATS_CLI} demo ${LSW_BIN} ${LSW_STATS_OUT}/demo)
set_tests_properties(stats_demo PROPERTIES LABELS cli ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 120)

# Every heatmap and report.html rendered by headless Chromium (Debian `chromium`, a test-only
# package; skipped, exit 77, without it): not blank, no parse error or console message, no
# text outside its picture (a 90-character expert name), scale captions, ticks, unchanged marks.
add_test(NAME stats_render
         COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/stats_render.py ${LSW_BIN} ${LSW_STATS_OUT}/render)
set_tests_properties(stats_render PROPERTIES LABELS cli ENVIRONMENT "${LSW_STATS_ENV}" TIMEOUT 300
                     SKIP_RETURN_CODE 77)
