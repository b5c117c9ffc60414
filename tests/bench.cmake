# benchmarks/*.sh, each run end to end at the tiny size (two interleaved rounds) so the
# scripts keep working as the engine changes: exit 0, a Markdown table and the script's
# main row (tests/bench_smoke.sh). No timing is asserted. Label `bench`; the scripts share
# one model cache and membw binary, hence the resource lock.
set(LSW_BENCH_DIR ${CMAKE_SOURCE_DIR}/benchmarks)
set(LSW_BENCH_ARGS --size tiny --pairs 2 --out ${CMAKE_CURRENT_BINARY_DIR}/bench-out --layerswap ${LSW_BIN})

# lsw_bench(NAME SCRIPT EXPECT [ARG...]): EXPECT is an extended regex for one output line
function(lsw_bench name script expect)
  add_test(NAME bench_${name}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_smoke.sh "${expect}" ${LSW_BENCH_DIR}/${script}
                   ${LSW_BENCH_ARGS} ${ARGN})
  set_tests_properties(bench_${name} PROPERTIES LABELS bench RESOURCE_LOCK lsw_bench_out TIMEOUT 600)
endfunction()

lsw_bench(merge bench_merge.sh "^[|] merge / [(]cp [+] fsync of one model[)] +[|] [0-9.]+ \\[")
lsw_bench(sweep bench_sweep.sh "^[|] 2 +[|] [0-9.]+ s \\[")
lsw_bench(scaling bench_scaling.sh "^[|] hdf5 +[|] 2 +[|] [0-9.]+ s")
lsw_bench(stats bench_stats.sh "^[|] 4 +[|] [0-9.]+ GB +[|] [0-9.]+ s")
lsw_bench(hdf5 bench_hdf5.sh "^[|] compressed over raw / entropy bound +[|] [0-9.]+ ")
lsw_bench(table6 bench_table6.sh "^[|] two steps .*[|] [0-9.]+ s \\[")
lsw_bench(mergekit bench_mergekit.sh "^[|] ties / plain layer swap of the same two models +[|] [0-9.]+ \\[" --peers numpy)
lsw_bench(device_scaling device_scaling.sh "^[|] stats +[|] 2 +[|] [0-9.]+ s" --ranks "1 2" --no-hf --budget-s 300)
