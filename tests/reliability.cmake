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
