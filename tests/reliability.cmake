# Reliability (issue 10): nothing lost, nobody trampled.  Label: reliability (and cli /
# unit / mpi as the case is).  Drivers in tests/cli/ (Debian's /usr/bin/python3).
lsw_unit_test(unit_lock unit_lock.c)
set_tests_properties(unit_lock PROPERTIES LABELS "unit;reliability" TIMEOUT 120)

# data safety: every spelling of "output folder = an input", with and without --overwrite
lsw_cli_test(guard test_guard.py)
# one owner per output folder: a second run 0.1-0.5 s later exits 1; stale locks taken over
lsw_cli_test(lock test_lock.py)
foreach(t guard lock)
  set_tests_properties(cli_${t} PROPERTIES LABELS "cli;reliability")
endforeach()

# limits are clean exits: ulimit -f, a tiny tmpfs (up front and part-way), a read-only
# folder, stop signals during start-up; then the same command resumes to identical bytes
lsw_cli_test(limits test_limits.py)
# untrusted inputs checked before the first byte: HDF5 names, the reference config.json,
# side files (FIFO, device, symlink, 200 MB), FIFOs as models, inspect = merge's checks
lsw_cli_test(untrusted test_untrusted.py)
# many short singleton runs at once on one host all succeed (Open MPI session folders)
lsw_cli_test(session test_session.py)
foreach(t limits untrusted)
  set_tests_properties(cli_${t} PROPERTIES LABELS "cli;reliability")
endforeach()
# 240 start-ups test Open MPI's session folders, nothing a sanitizer looks at (and
# cost a minute and a half under LeakSanitizer): not run in the sanitizer tree
set_tests_properties(cli_session PROPERTIES LABELS "cli;reliability;nosanitize")

# kill -9 at 10 seeded random moments (bytes written or read), at 1 and 3 ranks; every
# rerun ends with the bytes of an uninterrupted run and verify passes
foreach(driver merge hdf5 sweep stats)
  foreach(n 1 3)
    lsw_cli_test(kill_${driver}_n${n} test_killrandom.py --driver ${driver} --ranks ${n}
                 --mpiexec ${MPIEXEC_EXECUTABLE})
    set_tests_properties(cli_kill_${driver}_n${n} PROPERTIES LABELS "cli;mpi;reliability")
  endforeach()
endforeach()
