# Multi-host tests (label: multihost; `ctest -L multihost` runs them alone): layerswap
# under Open MPI and under Slurm across the 3 nodes of a virtual cluster built from Linux
# namespaces on this machine (tests/multihost/vcluster.sh: per node a network namespace
# on a private subnet joined by a bridge in a namespace of its own, a hostname, its own
# /tmp and /dev/shm; the build tree is the shared file system).  See docs/cluster.md.
#   multihost_mpi_*    fixture multihost_mpi: the cluster in multihost/mpi-state;
#                      mpirun on node1 starts orted on the others through
#                      tests/multihost/rsh-agent.sh (tests/multihost/mpi-test.sh)
#   multihost_slurm_*  fixture multihost_slurm: another cluster, in multihost/slurm-state,
#                      with munged + slurmd on every node and slurmctld on node1
#                      (tests/multihost/vslurm.sh, tests/multihost/slurm-test.sh)
# The *_down tests stop every process on the nodes and fail if one is left, or if the
# machine's own network interfaces changed.  Where namespaces are not permitted (not
# root, an unprivileged container) every test prints why and is skipped (exit 77);
# LSW_MULTIHOST_REQUIRED=1 in the environment turns that skip into a failure.
# RESOURCE_LOCK multihost: one at a time (the two clusters never interfere, but the
# cases are timed by what 2 cores can do), in parallel with the other labels.
set(LSW_MH_SRC ${CMAKE_CURRENT_SOURCE_DIR}/multihost)
set(LSW_MH_WORK ${CMAKE_CURRENT_BINARY_DIR}/multihost)

function(lsw_multihost_fixture name up_cmd down_cmd)
  add_test(NAME multihost_${name}_up COMMAND ${up_cmd})
  # VCLUSTER_TTL: the nodes end themselves after an hour even if this ctest is killed
  # before multihost_*_down runs
  set_tests_properties(multihost_${name}_up PROPERTIES LABELS multihost FIXTURES_SETUP multihost_${name}
                       RESOURCE_LOCK multihost TIMEOUT 600 SKIP_RETURN_CODE 77 ENVIRONMENT VCLUSTER_TTL=3600)
  add_test(NAME multihost_${name}_down COMMAND ${down_cmd})
  set_tests_properties(multihost_${name}_down PROPERTIES LABELS multihost FIXTURES_CLEANUP multihost_${name}
                       RESOURCE_LOCK multihost TIMEOUT 120)
endfunction()

lsw_multihost_fixture(mpi "${LSW_MH_SRC}/vcluster.sh;up;${LSW_MH_WORK}/mpi-state;3"
                          "${LSW_MH_SRC}/vcluster.sh;down;${LSW_MH_WORK}/mpi-state")
lsw_multihost_fixture(slurm "${LSW_MH_SRC}/vslurm.sh;up;${LSW_MH_WORK}/slurm-state;3"
                            "${LSW_MH_SRC}/vslurm.sh;down;${LSW_MH_WORK}/slurm-state")

# multihost_<fixture>_<case> runs tests/multihost/<fixture>-test.sh <case> (see its header)
set(lsw_mh_cases mpi:cluster|120 mpi:merge|300 mpi:sweep|300 mpi:stats|300 mpi:kill|600
                 slurm:merge|300 slurm:array|300 slurm:preempt|600)
if(LSW_WITH_HDF5)
  list(APPEND lsw_mh_cases mpi:hdf5|300)
endif()
foreach(spec ${lsw_mh_cases})
  string(REGEX MATCH "^([a-z]+):([a-z0-9_]+)\\|([0-9]+)$" _ "${spec}")
  set(fx ${CMAKE_MATCH_1})
  set(case ${CMAKE_MATCH_2})
  add_test(NAME multihost_${fx}_${case}
           COMMAND ${LSW_MH_SRC}/${fx}-test.sh ${case} ${LSW_BIN} ${LSW_MH_WORK}/${fx}-state ${LSW_MH_WORK}/${fx}-${case})
  set_tests_properties(multihost_${fx}_${case} PROPERTIES LABELS multihost FIXTURES_REQUIRED multihost_${fx}
                       RESOURCE_LOCK multihost TIMEOUT ${CMAKE_MATCH_3} SKIP_RETURN_CODE 77)
endforeach()
