# What `cmake --install build [--prefix P]` puts where (paths relative to the prefix;
# GNUInstallDirs defaults shown):
#   bin/layerswap                                  the program (install RPATH: see CMakeLists.txt)
#   lib/hdf5/plugins/libh5zstd.so                  HDF5 filter plugin (LSW_INSTALL_PLUGINDIR; plugins/)
#   share/man/man1/layerswap.1                     man page (LSW_BUILD_MAN; man/)
#   share/bash-completion/completions/layerswap    bash completion (completion/)
#   share/layerswap/slurm/                         batch templates + lsw-install.sh (written here)
#   share/layerswap/configs/                       example merge and sweep configs
#   share/doc/layerswap/                           the reference (docs/)
#   share/modulefiles/layerswap/<version>.lua      Lmod modulefile for this prefix (packaging/lmod)
# The last two generated files hold install-time paths, so they are written by
# install(CODE) with the prefix of the actual install (--prefix, DESTDIR honoured).

install(TARGETS layerswap RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---- man page: generated from the built binary's --help texts --------------------------
if(LSW_BUILD_MAN)
  set(LSW_MAN_PAGE ${PROJECT_BINARY_DIR}/man/layerswap.1)
  add_custom_command(
    OUTPUT ${LSW_MAN_PAGE}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
            sh ${PROJECT_SOURCE_DIR}/man/gen-man.sh $<TARGET_FILE:layerswap>
               ${PROJECT_SOURCE_DIR}/man/layerswap.1.in ${LSW_MAN_PAGE}
    DEPENDS layerswap ${PROJECT_SOURCE_DIR}/man/gen-man.sh ${PROJECT_SOURCE_DIR}/man/help2roff.awk
            ${PROJECT_SOURCE_DIR}/man/layerswap.1.in
    COMMENT "Generating man/layerswap.1 from the --help texts"
    VERBATIM)
  add_custom_target(man ALL DEPENDS ${LSW_MAN_PAGE})
  install(FILES ${LSW_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

# ---- bash completion (loaded on demand by Debian's bash-completion) --------------------
install(FILES ${PROJECT_SOURCE_DIR}/completion/layerswap.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME layerswap)

# ---- Slurm templates, example configs, the reference ----------------------------------
set(LSW_INSTALL_SLURMDIR ${CMAKE_INSTALL_DATADIR}/layerswap/slurm)
file(GLOB LSW_SBATCH CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/slurm/*.sbatch)
install(PROGRAMS ${LSW_SBATCH} DESTINATION ${LSW_INSTALL_SLURMDIR})
install(FILES ${PROJECT_SOURCE_DIR}/slurm/lsw-job.sh ${PROJECT_SOURCE_DIR}/slurm/README.md
        DESTINATION ${LSW_INSTALL_SLURMDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/layerswap/configs
        PATTERN "out" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- files that name install-time paths ------------------------------------------------
# Handed to cmake/lsw_install_paths.cmake as they are at configure time (relative
# to the prefix, or absolute); the prefix itself is read at install time.
if(LSW_WITH_HDF5)
  set(lsw_plugindir ${LSW_INSTALL_PLUGINDIR})
else()
  set(lsw_plugindir "")
endif()
install(CODE "
  set(LSW_VERSION \"${PROJECT_VERSION}\")
  set(LSW_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(LSW_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(LSW_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
  set(LSW_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  set(LSW_PLUGINDIR \"${lsw_plugindir}\")
  set(LSW_MODULE_TEMPLATE \"${PROJECT_SOURCE_DIR}/packaging/lmod/layerswap.lua.in\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/lsw_install_paths.cmake\")
")
