"""The provider SDK as a plugin author gets it: `make install` the headers and
listboss.pc, build the example provider out of tree with nothing but
pkg-config, and load it."""
import json
import os
import shutil
import subprocess
import tempfile

from lbtest import run

BUILDDIR = os.environ.get("LB_BUILDDIR", "")
SRCDIR = os.environ.get("LB_SRCDIR", "")
LBPLUG = os.environ.get("LBPLUG", "")
STAGE = tempfile.mkdtemp(prefix="lbsdk-")


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
    return r.stdout


def installed_pc_dir():
    for root, dirs, files in os.walk(STAGE):
        if "listboss.pc" in files:
            return root
    raise AssertionError("listboss.pc was not installed")


def test_make_install_ships_the_header_and_the_pc_file():
    sh(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + STAGE])
    headers = [os.path.join(r, f) for r, _, fs in os.walk(STAGE) for f in fs if f == "plugin.h"]
    assert any(h.endswith(os.path.join("listboss", "plugin.h")) for h in headers), headers
    installed_pc_dir()


def test_example_plugin_builds_out_of_tree_with_pkg_config_and_loads():
    env = dict(os.environ, PKG_CONFIG_PATH=installed_pc_dir(), PKG_CONFIG_SYSROOT_DIR=STAGE)
    cflags = sh(["pkg-config", "--cflags", "listboss"], env=env).split()
    work = tempfile.mkdtemp(prefix="lbsdk-src-")
    try:
        src = shutil.copy(os.path.join(SRCDIR, "plugins", "example", "example.c"), work)
        so = os.path.join(work, "example.so")
        # no -I into the source tree: only what pkg-config says
        sh(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden"] + cflags +
           ["-o", so, src])
        out = json.loads(sh([LBPLUG, so, "describe"]))
        assert out["name"] == "example" and out["abi"].startswith("1."), out
        assert [a["name"] for a in out["actions"]] == ["tag_add"], out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_plugins_and_rules_are_installed():
    names = {f for _, _, fs in os.walk(STAGE) for f in fs}
    for so in ["sandbox.so", "mailchimp.so", "activecampaign.so", "convertkit.so"]:
        assert so in names, so
    assert "purchase_approved.lua" in names and "payment_method.lua" in names
    assert not any(n.endswith(".la") for n in names), "libtool archives must not be installed"


run(globals(), teardown=lambda: shutil.rmtree(STAGE, ignore_errors=True))
