#!/usr/bin/env bash
# check_install_test_deps.sh SOURCE_DIR WORK_DIR
# .ci/install-test-deps installs the test-only packages without leaving a Slurm or munge
# service enabled or running, and touches nothing else.  Run against stand-ins (apt-get,
# dpkg-query, update-rc.d, deb-systemd-helper and init scripts that only log what they
# are asked), with the policy-rc.d path and the init script folder pointed into
# WORK_DIR, so that this machine's packages and services are never touched:
#   A. nothing installed, no policy-rc.d: while apt-get installs, policy-rc.d exists
#      and forbids every start (101); afterwards it is gone again; munge, slurmctld
#      and slurmd are disabled (sysv links and systemd units), a running one stopped;
#   B. munge already installed, an existing policy-rc.d that allows starts: restored
#      byte for byte afterwards; munge's service left as it was, the new ones disabled;
#   C. everything installed: apt-get is not run at all;
#   D. apt-get fails: the script fails, and the original policy-rc.d is back.
set -uo pipefail
src=$1 work=$2
fail=0
bad() { echo "FAIL: $*"; fail=1; }
rm -rf "$work" && mkdir -p "$work" || exit 1
W=$(cd "$work" && pwd)
mkdir -p "$W/bin" "$W/initd"
# ---- stand-ins ---------------------------------------------------------------------------
cat > "$W/bin/dpkg-query" <<'SH'
#!/bin/sh
# dpkg-query -W -f='${Status}' PKG: installed iff $STUB/installed/PKG exists
for a; do p=$a; done
[ -e "$STUB/installed/$p" ] && { printf 'install ok installed'; exit 0; }
exit 1
SH
cat > "$W/bin/apt-get" <<'SH'
#!/bin/sh
echo "apt-get $*" >> "$STUB/log"
case " $* " in *" update "*) exit 0 ;; esac
[ -n "${STUB_APT_FAIL:-}" ] && exit 100
# what a package's postinst does: invoke-rc.d asks policy-rc.d before any start
for p; do
  case $p in -*) continue ;; install) continue ;; esac
  : > "$STUB/installed/$p"
  case $p in munge|slurmctld|slurmd)
    if [ -x "$POLICY" ]; then "$POLICY" "$p" start; echo "policy $p start -> $?" >> "$STUB/log"
    else echo "policy $p start -> none (service would start)" >> "$STUB/log"; fi ;;
  esac
done
SH
for c in update-rc.d deb-systemd-helper systemctl; do
  printf '#!/bin/sh\necho "%s $*" >> "$STUB/log"\n' "$c" > "$W/bin/$c"
done
for s in munge slurmctld slurmd; do
  # slurmd "runs" (status 0): it must be stopped; the others are not running (status 3)
  st=3; [ $s = slurmd ] && st=0
  printf '#!/bin/sh\necho "init.d/%s $*" >> "$STUB/log"\n[ "$1" = status ] && exit %s\nexit 0\n' $s $st > "$W/initd/$s"
done
chmod +x "$W"/bin/* "$W"/initd/*
pkgs=$(sed -n '/^pkgs=(/,/^)/p' "$src/.ci/install-test-deps" | sed '1d;$d' | sed 's/#.*//' | awk 'NF {print $1}')
run() { # CASE: runs the script with the stand-ins; its output in $W/CASE.out
  STUB=$W/$1 POLICY=$W/$1/policy-rc.d PATH=$W/bin:$PATH LSW_POLICY_RC_D=$W/$1/policy-rc.d LSW_INITD=$W/initd \
    bash "$src/.ci/install-test-deps" > "$W/$1.out" 2>&1
}
setup() { mkdir -p "$W/$1/installed"; : > "$W/$1/log"; }
# ---- A -------------------------------------------------------------------------------------
setup A
run A; rc=$?
[ $rc -eq 0 ] || { bad "A: exit $rc"; cat "$W/A.out"; }
grep -q '^apt-get install ' "$W/A/log" || bad "A: apt-get install was not run"
for s in munge slurmctld slurmd; do
  grep -q "^policy $s start -> 101\$" "$W/A/log" || bad "A: during the install, policy-rc.d did not forbid starting $s"
  grep -q "^update-rc.d $s disable\$" "$W/A/log" || bad "A: $s not disabled (update-rc.d)"
  grep -q "^deb-systemd-helper disable $s.service\$" "$W/A/log" || bad "A: $s.service not disabled (deb-systemd-helper)"
done
grep -q '^init.d/slurmd stop$' "$W/A/log" || bad "A: the running slurmd was not stopped"
grep -q '^init.d/munge stop$' "$W/A/log" && bad "A: munge was stopped although it was not running"
[ -e "$W/A/policy-rc.d" ] && bad "A: policy-rc.d left behind"
ls "$W/A"/policy-rc.d.lsw-saved.* >/dev/null 2>&1 && bad "A: a saved policy-rc.d copy left behind"
for p in $pkgs; do [ -e "$W/A/installed/$p" ] || bad "A: $p not installed"; done
grep -q 'disabled and not running' "$W/A.out" || bad "A: no message about the services"
# ---- B -------------------------------------------------------------------------------------
setup B
: > "$W/B/installed/munge"
printf '#!/bin/sh\n# the site'"'"'s own policy\nexit 0\n' > "$W/B/policy-rc.d" && chmod 0750 "$W/B/policy-rc.d"
cp -p "$W/B/policy-rc.d" "$W/B.policy.orig"
run B; rc=$?
[ $rc -eq 0 ] || { bad "B: exit $rc"; cat "$W/B.out"; }
cmp -s "$W/B/policy-rc.d" "$W/B.policy.orig" || bad "B: the existing policy-rc.d was not restored byte for byte"
[ "$(stat -c %a "$W/B/policy-rc.d")" = 750 ] || bad "B: the existing policy-rc.d lost its mode"
grep -q 'munge' "$W/B/log" && grep -E -q '(update-rc.d|deb-systemd-helper|init.d/)munge|munge.service' "$W/B/log" \
  && bad "B: munge was installed before, yet its service was touched"
for s in slurmctld slurmd; do
  grep -q "^policy $s start -> 101\$" "$W/B/log" || bad "B: during the install, policy-rc.d did not forbid starting $s"
  grep -q "^update-rc.d $s disable\$" "$W/B/log" || bad "B: $s not disabled"
done
grep -q '^apt-get install .* munge' "$W/B/log" && bad "B: munge installed again"
# ---- C -------------------------------------------------------------------------------------
setup C
for p in $pkgs; do : > "$W/C/installed/$p"; done
run C; rc=$?
[ $rc -eq 0 ] || bad "C: exit $rc"
[ -s "$W/C/log" ] && { bad "C: something ran although every package is present:"; cat "$W/C/log"; }
grep -q 'packages present' "$W/C.out" || bad "C: no 'packages present' message"
# ---- D -------------------------------------------------------------------------------------
setup D
printf '#!/bin/sh\nexit 0\n' > "$W/D/policy-rc.d" && chmod 0755 "$W/D/policy-rc.d" && cp "$W/D/policy-rc.d" "$W/D.policy.orig"
STUB_APT_FAIL=1 run D; rc=$?
[ $rc -ne 0 ] || bad "D: apt-get failed but the script exited 0"
cmp -s "$W/D/policy-rc.d" "$W/D.policy.orig" || bad "D: after a failed install, the original policy-rc.d is not back"
for c in A B C D; do echo "--- case $c:"; cat "$W/$c.out"; done
[ $fail -eq 0 ] && echo ok
exit $fail
