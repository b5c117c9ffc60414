# Run by `cmake --install` (install(CODE) in LswInstall.cmake), with LSW_VERSION,
# LSW_BINDIR, LSW_MANDIR, LSW_DATADIR, LSW_DOCDIR, LSW_PLUGINDIR (empty: no
# plugin) and LSW_MODULE_TEMPLATE set.  CMAKE_INSTALL_PREFIX is the prefix of
# this install (--prefix wins over the configured one); files land under
# $ENV{DESTDIR}.  Writes:
#   <datadir>/layerswap/slurm/lsw-install.sh   sourced by lsw-job.sh: the binary and
#       plugin folder, relative to the templates' folder (the prefix may be moved)
#   <datadir>/modulefiles/layerswap/<version>.lua   Lmod modulefile with this prefix

function(lsw_abs out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

lsw_abs(bindir "${LSW_BINDIR}")
lsw_abs(mandir "${LSW_MANDIR}")
lsw_abs(datadir "${LSW_DATADIR}")
lsw_abs(docdir "${LSW_DOCDIR}")
set(slurmdir "${datadir}/layerswap/slurm")
if(LSW_PLUGINDIR)
  lsw_abs(plugindir "${LSW_PLUGINDIR}")
else()
  set(plugindir "")
endif()

# lsw-install.sh
file(RELATIVE_PATH rel_bin "${slurmdir}" "${bindir}")
string(CONCAT text "# Written by `cmake --install` for layerswap ${LSW_VERSION}: where this installation's\n"
         "# binary and HDF5 filter plugin are, relative to this folder, so that the prefix\n"
         "# may be moved.  Sourced by lsw-job.sh, with LSW_SLURM_DIR set to this folder.\n"
         "LSW_INSTALL_BIN=$(cd \"$LSW_SLURM_DIR/${rel_bin}\" 2>/dev/null && pwd)/layerswap\n")
if(plugindir)
  file(RELATIVE_PATH rel_plugin "${slurmdir}" "${plugindir}")
  string(APPEND text "LSW_INSTALL_PLUGIN_DIR=$(cd \"$LSW_SLURM_DIR/${rel_plugin}\" 2>/dev/null && pwd)\n")
else()
  string(APPEND text "LSW_INSTALL_PLUGIN_DIR=   # built without HDF5\n")
endif()
set(dest "$ENV{DESTDIR}${slurmdir}/lsw-install.sh")
message(STATUS "Installing: ${dest}")
file(WRITE "${dest}" "${text}")
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")

# the Lmod modulefile
set(LSW_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(LSW_ABS_BINDIR "${bindir}")
set(LSW_ABS_MANDIR "${mandir}")
set(LSW_ABS_DOCDIR "${docdir}")
set(LSW_ABS_PLUGINDIR "${plugindir}")
set(LSW_ABS_SLURMDIR "${slurmdir}")
set(LSW_ABS_DATADIR "${datadir}")
set(dest "$ENV{DESTDIR}${datadir}/modulefiles/layerswap/${LSW_VERSION}.lua")
message(STATUS "Installing: ${dest}")
configure_file("${LSW_MODULE_TEMPLATE}" "${dest}" @ONLY)
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")
