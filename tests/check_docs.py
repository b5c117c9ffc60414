#!/usr/bin/python3
"""check_docs — the reference in docs/ has no dangling reference, and says what the binary does.

usage: /usr/bin/python3 check_docs.py CHECK SOURCE_DIR [LAYERSWAP]

CHECK is one of:
  refs     every file of the source tree (C, headers, scripts, CMake, Markdown, help
           texts...): no reference to a section of "SPEC" (the word followed by a section
           sign, "section N", or ".md" and a section sign) is left: the user reference is
           docs/, not a document users do not have; every mention of a docs page
           (docs/<page>.md, with or without #anchor) names a page and
           a heading that exist; every relative Markdown link of every .md file
           resolves (file, and anchor in a .md file, by GitHub's heading slugs);
           docs/README.md lists every page of docs/.
  options  every option in every `layerswap COMMAND --help` appears in docs/cli.md (for
           stats: cli.md or statistics.md), every command of `layerswap --help` has a
           section in cli.md, and every merge method of the top-level help is in
           config.md.
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


SKIP_DIRS = {".git", "__pycache__", "data", "out", "bench-out"}
TEXT_EXT = {".c", ".h", ".py", ".sh", ".cmake", ".txt", ".md", ".json", ".sbatch", ".in", ".awk",
            ".bash", ".lua", ".eb", ".yaml", ".yml", ".dict", ""}


def source_files(root):
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not (rel == "." and x.startswith("build"))]
        for f in files:
            p = os.path.join(d, f)
            if os.path.splitext(f)[1] in TEXT_EXT or f.startswith("."):
                try:
                    with open(p, encoding="utf-8") as fh:
                        yield p, fh.read()
                except (UnicodeDecodeError, OSError):
                    pass


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    h = heading.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(md_text):
    """Anchors of a Markdown file's headings (fenced code skipped; duplicates get -1, -2)."""
    out, seen, fence = set(), {}, False
    for line in md_text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else "%s-%d" % (s, n))
    return out


def check_refs(src):
    docs = os.path.join(src, "docs")
    pages = {f for f in os.listdir(docs) if f.endswith(".md")} if os.path.isdir(docs) else set()
    for need in ("README.md", "cli.md", "config.md", "numerics.md", "output.md", "sweep.md", "hdf5.md",
                 "input-validation.md", "exit-codes.md", "statistics.md", "mergekit.md", "cluster.md"):
        if need not in pages:
            fail("docs/%s is missing" % need)
    anchor_cache = {}

    def anchors_of(path):
        if path not in anchor_cache:
            with open(path, encoding="utf-8") as fh:
                anchor_cache[path] = anchors(fh.read())
        return anchor_cache[path]

    spec_re = re.compile(r"SPEC(\.md)?\s*(§|section\s+\d)")
    docref_re = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)(#[A-Za-z0-9_-]+)?")
    link_re = re.compile(r"\]\(([^)\s]+)\)")
    nfiles = nlinks = 0
    for path, text in source_files(src):
        nfiles += 1
        rel = os.path.relpath(path, src)
        for i, line in enumerate(text.splitlines(), 1):
            if spec_re.search(line):
                fail("%s:%d: a SPEC reference is left (point at a docs/ page): %s" % (rel, i, line.strip()[:120]))
            for m in docref_re.finditer(line):
                nlinks += 1
                page, anchor = m.group(1), m.group(2)
                if page not in pages:
                    fail("%s:%d: docs/%s does not exist" % (rel, i, page))
                elif anchor and anchor[1:] not in anchors_of(os.path.join(docs, page)):
                    fail("%s:%d: docs/%s has no heading for %s" % (rel, i, page, anchor))
        if not path.endswith(".md"):
            continue
        fence = False
        for i, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            for m in link_re.finditer(line):
                target = m.group(1)
                if re.match(r"^[a-z]+:", target):   # http:, https:, mailto:
                    continue
                nlinks += 1
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(dest):
                    fail("%s:%d: link to %s: no such file" % (rel, i, target))
                elif anchor and dest.endswith(".md") and anchor not in anchors_of(dest):
                    fail("%s:%d: link to %s: %s has no such heading" % (rel, i, target, os.path.relpath(dest, src)))
    if os.path.isfile(os.path.join(docs, "README.md")):
        with open(os.path.join(docs, "README.md"), encoding="utf-8") as fh:
            index = fh.read()
        for p in sorted(pages - {"README.md"}):
            if "(%s)" % p not in index:
                fail("docs/README.md does not list %s" % p)
    print("refs: %d files, %d references and links checked" % (nfiles, nlinks))


def run_help(binary, *args):
    p = subprocess.run([binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if p.returncode != 0:
        fail("layerswap %s exited with %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout


def help_options(text):
    """The options a --help text offers: synopsis words and option lines."""
    opts, syn = set(), False
    for line in text.splitlines():
        if line.startswith("Usage:"):
            syn = True
        elif syn and not re.match(r"^ +[^ -]", line):
            syn = False
        if syn:
            opts |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
            continue
        m = re.match(r"^( {1,4})(-.*)$", line)
        if m:
            head = re.split(r" {2,}", m.group(2))[0]
            opts |= set(re.findall(r"(?<![\w-])--?[a-zA-Z][a-zA-Z0-9-]*", head))
    return opts


def check_options(src, binary):
    def read(name):
        with open(os.path.join(src, "docs", name), encoding="utf-8") as fh:
            return fh.read()
    cli, config = read("cli.md"), read("config.md")
    stats_doc = read("statistics.md")
    top = run_help(binary, "--help")
    cmds = re.findall(r"^  ([a-z]+) ", top.split("Commands:", 1)[-1].split("\n\n", 1)[0], re.M)
    if not cmds:
        fail("no commands found in layerswap --help")
    nopts = 0
    for c in cmds:
        if c == "help":
            continue
        if not re.search(r"^## %s$" % c, cli, re.M):
            fail("docs/cli.md has no section '## %s'" % c)
        for o in sorted(help_options(run_help(binary, c, "--help"))):
            nopts += 1
            pat = re.compile(r"`[^`\n]*%s(?![\w-])[^`\n]*`" % re.escape(o))
            where = cli + (stats_doc if c == "stats" else "")
            if not pat.search(where):
                fail("option %s of 'layerswap %s --help' is not in docs/cli.md%s"
                     % (o, c, " or docs/statistics.md" if c == "stats" else ""))
    for o in ("--version", "-V", "--help"):
        if not re.search(r"`[^`\n]*%s(?![\w-])" % re.escape(o), cli):
            fail("docs/cli.md does not mention %s" % o)
    methods = re.findall(r"^  ([a-z_]+) ", top.split("Merge methods", 1)[-1].split("\n\n", 1)[0], re.M)
    if len(methods) < 2:
        fail("no merge methods found in layerswap --help")
    for m in methods:
        if "`%s`" % m not in config:
            fail("method %s (layerswap --help) is not in docs/config.md" % m)
    print("options: %d commands, %d options, %d methods checked" % (len(cmds), nopts, len(methods)))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("refs", "options"):
        print(__doc__)
        return 1
    src = os.path.abspath(sys.argv[2])
    if sys.argv[1] == "refs":
        check_refs(src)
    else:
        check_options(src, sys.argv[3])
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
