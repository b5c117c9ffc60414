# Fuzz harnesses of the untrusted-input parsers (tests/fuzz/README.md).  Here
# each is linked with tests/fuzz/replay.c instead of libFuzzer and run over its
# seeds, which include every input that once broke a parser: the harness's own
# invariant checks (and ASan/UBSan in a sanitizer build) guard against
# regressions with any compiler.
foreach(h safetensors index config sweep zstd json)
  add_executable(fuzz_replay_${h} fuzz/fuzz_${h}.c fuzz/replay.c)
  target_compile_options(fuzz_replay_${h} PRIVATE ${LSW_C_FLAGS} -Wno-missing-prototypes)
  target_link_libraries(fuzz_replay_${h} PRIVATE lsw)
  add_test(NAME fuzz_replay_${h} COMMAND fuzz_replay_${h} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds/${h}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(fuzz_replay_${h} PROPERTIES LABELS unit TIMEOUT 300
                       ENVIRONMENT "FZ_SHARDS=${LSW_TEST_DATA}/llama-bf16-sharded/base")
endforeach()
