# The reference in docs/ and the documents around it (label: docs).
#   docs_references   no SPEC reference left anywhere in the tree; every docs/ page and
#                     anchor named anywhere exists; every relative Markdown link resolves
#   docs_options      every command and option of every --help is in docs/cli.md, every
#                     merge method of the top-level help in docs/config.md
#   docs_man_page     the generated man page renders with `man -l` without warnings and
#                     lists every command and option
#   docs_ci_commands  README's Quick start installs only what building and running need,
#                     .ci/run runs README's test command, INSTALL.md lists the packages
#                     of both install scripts
add_test(NAME docs_references COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_docs.py refs ${PROJECT_SOURCE_DIR})
add_test(NAME docs_options
         COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_docs.py options ${PROJECT_SOURCE_DIR} ${LSW_BIN})
add_test(NAME docs_ci_commands COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_ci.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs_references docs_options docs_ci_commands PROPERTIES LABELS docs TIMEOUT 120)
if(LSW_BUILD_MAN)
  add_test(NAME docs_man_page COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_man.sh ${LSW_BIN} ${LSW_MAN_PAGE})
  set_tests_properties(docs_man_page PROPERTIES LABELS docs TIMEOUT 120)
endif()
