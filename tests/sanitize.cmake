# The sanitizer run (issue 10): a separate ASan + UBSan build tree, configured and built
# by this one test, runs its unit (fuzz replays included) and CLI tests with LeakSanitizer
# on and Open MPI's own allocations suppressed (tests/lsan.supp).  MPI (more than one
# rank) and Slurm cases are left to the ordinary tree.  Label: sanitize.
if(NOT LSW_ASAN AND NOT LSW_UBSAN)
  add_test(NAME sanitize
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sanitize.sh ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/sanitize)
  set_tests_properties(sanitize PROPERTIES LABELS sanitize TIMEOUT 1500)
endif()
