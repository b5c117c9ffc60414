# End-to-end tests of the `layerswap` command line (label: cli).
# Drivers live in tests/cli/ (Python on Debian's /usr/bin/python3, one bash script);
# merge configs in tests/configs/, config-error configs in tests/configs/errors/.
# Every case works in its own folder ${CMAKE_CURRENT_BINARY_DIR}/cli/<case>, wiped at
# start, so that `ctest -j` can run them in parallel.  Exit 77 = skipped.
set(LSW_CLI_SRC ${CMAKE_CURRENT_SOURCE_DIR}/cli)
set(LSW_CLI_WORK ${CMAKE_CURRENT_BINARY_DIR}/cli)
set(LSW_CLI_CONFIGS ${CMAKE_CURRENT_SOURCE_DIR}/configs)

# lsw_cli_test(NAME SCRIPT [ARGS...]): cli_NAME runs tests/cli/SCRIPT with the binary,
# the test data and its private work folder.
function(lsw_cli_test name script)
  add_test(NAME cli_${name}
           COMMAND ${LSW_PYTHON} ${LSW_CLI_SRC}/${script} --bin ${LSW_BIN} --data ${LSW_TEST_DATA}
                   --work ${LSW_CLI_WORK}/${name} ${ARGN})
  set_tests_properties(cli_${name} PROPERTIES LABELS cli TIMEOUT 600 SKIP_RETURN_CODE 77)
endfunction()

# 1. crafted safetensors files (one case for the whole table of make_bad_safetensors.py)
lsw_cli_test(bad_files test_bad_files.py)

# 2. fixture merges, bit-identical to the oracle, one case per config
foreach(spec
    "ls-paper"
    "ls-transition-uniform"
    "ls-transition-magnitude"
    "ls-nonlayer-task"
    "ls-nonlayer-language"
    "ls-nonlayer-average-magnitude"
    "linear-uniform-2"
    "linear-uniform-4"
    "linear-weights-3-1"
    "linear-weights-3-1-nonorm"
    "linear-magnitude"
    "rules|--rules-normalize"
    "rules-first-model-unused|--rules-normalize"
    "dtype-float32|--dtype|float32"
    "dtype-float16|--dtype|float16"
    "shard-by-layer|--layout|by-layer"
    "shard-size-small|--layout|sharded|--min-shards|3"
    "single-file|--layout|single"
    "tv-task-arithmetic"
    "tv-task-arithmetic-normalize|--dtype|float32"
    "tv-ties"
    "tv-ties-global"
    "tv-ties-nonorm|--dtype|float16"
    "tv-dare-linear"
    "tv-dare-ties")
  string(REPLACE "|" ";" args "${spec}")
  list(GET args 0 cfg)
  list(REMOVE_AT args 0)
  lsw_cli_test(merge_${cfg} test_merge.py --config ${LSW_CLI_CONFIGS}/${cfg}.json ${args})
endforeach()

# 3. config errors, usage errors, bad inputs: nothing may be written
foreach(case
    tv-trim-global tv-density-range tv-no-base tv-base-as-expert
    unknown-top-key unknown-layer-swap-key undefined-model weights-count layer-range
    layer-range-negative bottom-top-too-many bad-regex unmatched-tensor no-output-path
    bad-mem bad-mem-zero unknown-option unknown-command no-command missing-config
    missing-option-value two-configs inspect-no-path verify-no-dir synth-missing-args
    missing-model pickle-folder pickle-file shape-mismatch-rows shape-mismatch-reshape
    dtype-mismatch missing-tensor truncated-shard unused-missing-model bad-config-json
    layer-index-too-big demo-unknown-option inspect-unknown-option index-overflow inspect-fifo
    inspect-h5-no-signature verify-missing-folder regex-stacked regex-backref
    index-nul-name unused-section)
  lsw_cli_test(error_${case} test_errors.py --case ${case})
endforeach()

# 4. --help on every command
foreach(cmd main merge inspect verify synth demo sweep stats)
  if(cmd STREQUAL "main")
    set(sub "")
  else()
    set(sub ${cmd})
  endif()
  add_test(NAME cli_help_${cmd}
           COMMAND bash ${LSW_CLI_SRC}/test_help.sh ${LSW_BIN} ${LSW_CLI_WORK}/help_${cmd} ${sub})
  set_tests_properties(cli_help_${cmd} PROPERTIES LABELS cli TIMEOUT 60)
endforeach()

# 5. dry run
lsw_cli_test(dry_run test_dry_run.py)

# 6. disk full at several points, signals, reruns
foreach(after 1 100000 400000 700000 shards+100 shards+6000)
  string(REPLACE "+" "_plus_" tag ${after})
  lsw_cli_test(fault_${tag} test_fault.py --after ${after})
endforeach()
lsw_cli_test(signal test_signal.py)
lsw_cli_test(rerun test_rerun.py)
lsw_cli_test(verify test_verify.py)
lsw_cli_test(paths test_paths.py)

# 7. demo, 8. synth
lsw_cli_test(demo test_demo.py)
lsw_cli_test(synth test_synth.py)
