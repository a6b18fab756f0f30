"""The experiments in bench/patches/ still apply to this tree and compile.

They are kept out of the daemon on purpose, so nothing else builds them, and
a change to a file they touch breaks them silently: the next person to
reproduce a figure of docs/benchmarks.md finds out. Each set is applied in
the order the docs give to a scratch copy of core/ and include/, and each
patched C file is compiled there (syntax and warnings, with the build's
flags)."""
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from lbtest import run

SRCDIR = os.environ.get("LB_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PATCHES = os.path.join(SRCDIR, "bench", "patches")
CC = shlex.split(os.environ.get("LB_CC", "cc"))
CFLAGS = shlex.split(os.environ.get("LB_PATCH_CFLAGS", "-Wall -Wextra -Werror"))


def touched(patch):
    with open(patch) as f:
        return sorted(set(re.findall(r"^\+\+\+ b/(\S+)", f.read(), re.M)))


def apply_and_compile(*names):
    paths = [os.path.join(PATCHES, n) for n in names]
    scratch = tempfile.mkdtemp(prefix="lb-patches-")
    try:
        for p in paths:
            assert touched(p), "%s patches no file" % os.path.basename(p)
        files = sorted({f for p in paths for f in touched(p)})
        # the whole of core/ and include/: a patched header must be the one
        # every file includes, also through an unpatched header
        for d in ("core", "include"):
            shutil.copytree(os.path.join(SRCDIR, d), os.path.join(scratch, d))
        for p in paths:
            with open(p, "rb") as diff:
                r = subprocess.run(["patch", "-p1", "--forward", "--batch", "--fuzz=0", "--no-backup-if-mismatch", "-d", scratch],
                                   stdin=diff, capture_output=True, text=True)
            assert r.returncode == 0, "%s no longer applies (tools/refresh-bench-patches rewrites it):\n%s%s" % (
                os.path.basename(p), r.stdout, r.stderr)
        for f in files:
            if not f.endswith(".c"):
                continue
            cmd = CC + ["-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(scratch, "core"),
                        "-I" + os.path.join(scratch, "include")] + CFLAGS + ["-fsyntax-only", os.path.join(scratch, f)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, "%s patched by %s does not compile:\n%s" % (f, " + ".join(names), r.stderr)
    finally:
        shutil.rmtree(scratch)


def test_the_request_timing_patch_applies_and_compiles():
    apply_and_compile("request-timing.diff")


def test_the_answer_mid_turn_patch_applies_on_the_timing_one_and_compiles():
    apply_and_compile("request-timing.diff", "answer-mid-turn.diff")


def test_the_overlapped_sync_patch_applies_and_compiles():
    apply_and_compile("overlapped-sync.diff")


def test_every_patch_is_checked_here():
    checked = {"request-timing.diff", "answer-mid-turn.diff", "overlapped-sync.diff"}
    assert set(n for n in os.listdir(PATCHES) if n.endswith(".diff")) == checked


run(globals())
