# The slurm/ batch templates on a real single-node Slurm cluster (label: slurm).
# slurm_up starts munged, slurmctld and slurmd by hand (tests/slurm/slurm-up.sh, which
# installs the Debian packages when missing), once for every slurm test (ctest fixture
# "slurm"); slurm_down stops them by PID.  Everything lives under
# ${CMAKE_CURRENT_BINARY_DIR}/slurm (state/: config, keys, logs; <case>/: work folders),
# so two build trees do not collide (own ports, own munge socket).  RESOURCE_LOCK slurm:
# the slurm tests run one after another (the node has as many CPUs as the machine), in
# parallel with the other labels.  A cluster that cannot start fails slurm_up, and every
# slurm test with it (reported "Not Run", a failure); only the sweep array and stats
# cases skip (77), while `layerswap sweep` / `layerswap stats` do not exist.
set(LSW_SLURM_SRC ${CMAKE_CURRENT_SOURCE_DIR}/slurm)
set(LSW_SLURM_WORK ${CMAKE_CURRENT_BINARY_DIR}/slurm)
set(LSW_SLURM_STATE ${LSW_SLURM_WORK}/state)
# jobs inherit this environment (sbatch --export=ALL): Open MPI as root, 2+ ranks on few cores
set(LSW_SLURM_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)

add_test(NAME slurm_up COMMAND ${LSW_SLURM_SRC}/slurm-up.sh ${LSW_SLURM_STATE})
set_tests_properties(slurm_up PROPERTIES LABELS slurm FIXTURES_SETUP slurm RESOURCE_LOCK slurm TIMEOUT 600)
add_test(NAME slurm_down COMMAND ${LSW_SLURM_SRC}/slurm-down.sh ${LSW_SLURM_STATE})
set_tests_properties(slurm_down PROPERTIES LABELS slurm FIXTURES_CLEANUP slurm RESOURCE_LOCK slurm TIMEOUT 120)

# slurm_CASE runs tests/slurm/slurm-test.sh CASE (see its header for what each proves)
foreach(spec merge|180 array|300 requeue|600 stats|180 cancel|120 array_requeue|180 guard|120)
  string(REPLACE "|" ";" spec "${spec}")
  list(GET spec 0 case)
  list(GET spec 1 timeout)
  add_test(NAME slurm_${case}
           COMMAND ${LSW_SLURM_SRC}/slurm-test.sh ${case} ${LSW_BIN} ${LSW_SLURM_STATE} ${LSW_SLURM_WORK}/${case})
  set_tests_properties(slurm_${case} PROPERTIES LABELS slurm FIXTURES_REQUIRED slurm RESOURCE_LOCK slurm
                       ENVIRONMENT "${LSW_SLURM_ENV}" TIMEOUT ${timeout} SKIP_RETURN_CODE 77)
endforeach()
