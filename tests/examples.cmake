# Every ready-to-run config in configs/ is merged and compared bit for bit
# with the numpy oracle, so none of them rots.
file(GLOB LSW_EXAMPLE_CONFIGS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/configs/*.json)
foreach(cfg ${LSW_EXAMPLE_CONFIGS})
  get_filename_component(stem ${cfg} NAME_WE)
  add_test(NAME example_${stem}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_example.sh ${LSW_BIN} ${LSW_PYTHON} ${cfg}
                   ${CMAKE_CURRENT_BINARY_DIR}/example_${stem})
  set_tests_properties(example_${stem} PROPERTIES LABELS cli)
endforeach()

# Tied embeddings + Qwen2 biases, F32/F16 inputs and dtype conversions.
add_test(NAME variants_tied_bias_dtypes
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_variants.sh ${LSW_BIN} ${LSW_PYTHON} ${CMAKE_CURRENT_BINARY_DIR}/variants)
set_tests_properties(variants_tied_bias_dtypes PROPERTIES LABELS cli)

# The folder of an input model is never an output folder.
add_test(NAME output_guard COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/output_guard.sh ${LSW_BIN} ${CMAKE_CURRENT_BINARY_DIR}/output_guard)
set_tests_properties(output_guard PROPERTIES LABELS cli)

# Outputs load in Hugging Face transformers with every key in place and the
# fixtures' logits (needs torch + transformers; skipped, exit 77, without).
add_test(NAME hf_load COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/hf_load_check.py ${LSW_BIN}
                              ${LSW_TEST_DATA} ${CMAKE_CURRENT_BINARY_DIR}/hf_load)
set_tests_properties(hf_load PROPERTIES LABELS cli SKIP_RETURN_CODE 77 TIMEOUT 300)
