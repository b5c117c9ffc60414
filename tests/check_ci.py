#!/usr/bin/python3
"""check_ci — the set-up commands say what they do, and the documents say what they run.

usage: /usr/bin/python3 check_ci.py SOURCE_DIR

  1. README's Quick start installs with .ci/install-deps only (what building and
     running need), and its test command starts with .ci/install-test-deps;
  2. .ci/run runs exactly README's test command (the code block after "Run the
     whole test suite"), as its last command;
  3. INSTALL.md's package tables list exactly the packages of .ci/install-deps and
     .ci/install-test-deps, in the same order, and no package is in both scripts;
  4. the scripts parse (bash -n).
Exit 0 pass, 1 fail.
"""
import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def read(src, name):
    with open(os.path.join(src, name), encoding="utf-8") as fh:
        return fh.read()


def script_packages(text):
    """The pkgs=( ... ) array of an install script, one package per line."""
    m = re.search(r"^pkgs=\(\n(.*?)^\)", text, re.S | re.M)
    if not m:
        return None
    return [line.split("#")[0].split()[0] for line in m.group(1).splitlines() if line.split("#")[0].strip()]


def doc_packages(install_md, script):
    m = re.search(r"<!-- packages: %s -->\n(.*?)<!-- end packages -->" % re.escape(script), install_md, re.S)
    if not m:
        return None
    return re.findall(r"^\| `([^`]+)` \|", m.group(1), re.M)


def main():
    src = os.path.abspath(sys.argv[1])
    readme, run, install = read(src, "README.md"), read(src, ".ci/run"), read(src, "INSTALL.md")
    # 1, 2
    qs = readme.split("## Quick start", 1)[-1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", qs, re.S)
    if len(blocks) < 2:
        fail("README's Quick start has no build block and test block")
        blocks = ["", ""]
    build, test = blocks[0].strip(), blocks[1].strip()
    if not build.startswith(".ci/install-deps ") or "install-test-deps" in build:
        fail("README's build command must install with .ci/install-deps only: %s" % build)
    if not test.startswith(".ci/install-test-deps && "):
        fail("README's test command must start with .ci/install-test-deps: %s" % test)
    if "Run the whole test suite" not in qs:
        fail("README's Quick start has no 'Run the whole test suite' paragraph")
    run_lines = [l.strip() for l in run.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if not run_lines or run_lines[-1] != test:
        fail(".ci/run's last command %r is not README's test command %r" % (run_lines[-1] if run_lines else "", test))
    if ".ci/install-deps" not in run_lines:
        fail(".ci/run does not run .ci/install-deps")
    # 3
    lists = {}
    for script in (".ci/install-deps", ".ci/install-test-deps"):
        pk = script_packages(read(src, script))
        dk = doc_packages(install, script)
        if pk is None:
            fail("%s has no pkgs=( ... ) array" % script)
        if dk is None:
            fail("INSTALL.md has no table between <!-- packages: %s --> and <!-- end packages -->" % script)
        if pk is not None and dk is not None and pk != dk:
            fail("INSTALL.md lists %s for %s, the script installs %s" % (dk, script, pk))
        lists[script] = pk or []
        print("%s: %d packages, INSTALL.md %s" % (script, len(pk or []), "agrees" if pk == dk else "differs"))
    both = set(lists[".ci/install-deps"]) & set(lists[".ci/install-test-deps"])
    if both:
        fail("in both install scripts: %s" % sorted(both))
    # 4
    for script in (".ci/install-deps", ".ci/install-test-deps", ".ci/run"):
        p = subprocess.run(["bash", "-n", os.path.join(src, script)], stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode:
            fail("%s does not parse: %s" % (script, p.stderr.strip()))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
