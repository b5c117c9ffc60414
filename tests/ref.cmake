# Independent Python reference oracle (tests/ref/): its own self-check needs no engine
# binary.  Tests that run `layerswap` against the oracle are registered elsewhere.
add_test(NAME ref_selfcheck COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/ref/test_ref_selfcheck.py)
set_tests_properties(ref_selfcheck PROPERTIES LABELS unit)
