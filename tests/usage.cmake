# What a new user meets first: help, version, usage texts, the demo's next step, the
# completion, the Slurm sizing and requeue notes, the example sweep (label: cli).
# tests/check_usage.sh CASE: see its header for what each case proves.
foreach(case help_command version methods merge_usage demo_next slurm_docs completion example_sweep)
  add_test(NAME usage_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_usage.sh ${case} ${LSW_BIN} ${PROJECT_SOURCE_DIR}
                   ${CMAKE_CURRENT_BINARY_DIR}/usage/${case})
  set_tests_properties(usage_${case} PROPERTIES LABELS cli TIMEOUT 300)
endforeach()
