# `cmake --install` into a temporary prefix and the installation used from there
# (label: install).  install_prefix installs into ${LSW_INSTALL_TEST}/prefix once
# (fixture lsw_installed); the other cases use that installation with the build tree
# out of sight.  tests/install/check_install.sh CASE: see its header.
#   install_run        the binary (RUNPATH, demo, h5dump through the installed plugin),
#                      man, bash completion, DESTDIR staging
#   install_templates  the installed Slurm templates find the installed binary and plugin
#   install_lmod       the generated modulefile, with Debian's Lmod
#   install_slurm      the installed template on the private Slurm cluster (label slurm)
#   packaging_recipes  Spack package, EasyBuild easyconfig, Lmod template (against stubs)
#   ci_install_test_deps  .ci/install-test-deps leaves no Slurm/munge service enabled or
#                      running (against stand-ins for apt-get and the init system)
#   (the cases that read model.h5 through the installed plugin need LSW_WITH_HDF5 and the
#   man page, so they are registered only in builds that have both)
set(LSW_INSTALL_TEST ${CMAKE_CURRENT_BINARY_DIR}/install-test)
set(LSW_INSTALL_SH ${CMAKE_CURRENT_SOURCE_DIR}/install/check_install.sh)

if(LSW_WITH_HDF5 AND LSW_BUILD_MAN)
  add_test(NAME install_prefix
           COMMAND ${LSW_INSTALL_SH} install ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} ${LSW_INSTALL_TEST})
  set_tests_properties(install_prefix PROPERTIES LABELS install FIXTURES_SETUP lsw_installed TIMEOUT 300
                       RESOURCE_LOCK lsw_install_prefix)
  foreach(case run templates lmod)
    add_test(NAME install_${case}
             COMMAND ${LSW_INSTALL_SH} ${case} ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} ${LSW_INSTALL_TEST})
    set_tests_properties(install_${case} PROPERTIES LABELS install FIXTURES_REQUIRED lsw_installed TIMEOUT 300)
  endforeach()
  # install_run's DESTDIR staging re-runs cmake --install: not at the same time as install_prefix
  set_tests_properties(install_run PROPERTIES RESOURCE_LOCK lsw_install_prefix)

  add_test(NAME install_slurm
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/check_installed_slurm.sh ${LSW_INSTALL_TEST}/prefix
                   ${CMAKE_CURRENT_BINARY_DIR}/slurm/state ${LSW_INSTALL_TEST}/slurm)
  set_tests_properties(install_slurm PROPERTIES LABELS "install;slurm" FIXTURES_REQUIRED "slurm;lsw_installed"
                       RESOURCE_LOCK slurm TIMEOUT 300
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")

  add_test(NAME packaging_recipes
           COMMAND ${LSW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/install/check_packaging.py ${PROJECT_SOURCE_DIR}
                   ${LSW_INSTALL_TEST}/prefix)
  set_tests_properties(packaging_recipes PROPERTIES LABELS install FIXTURES_REQUIRED lsw_installed TIMEOUT 120)
endif()

add_test(NAME ci_install_test_deps
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/check_install_test_deps.sh ${PROJECT_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/ci-install-test-deps)
set_tests_properties(ci_install_test_deps PROPERTIES LABELS install TIMEOUT 120)
