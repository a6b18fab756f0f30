"""fakeproc: a fake provider server (tests/fakes/fake_NAME.py) in its own
process, and where the built plugins are. Shared by the provider tests."""
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("LB_SRCDIR", os.path.join(HERE, "..", ".."))
FAKES = os.environ.get("LB_FAKES", os.path.join(SRCDIR, "tests", "fakes"))
if FAKES not in sys.path:
    sys.path.insert(0, FAKES)


def plugin_path(name):
    folder = os.environ.get("LB_PLUGIN_DIR", os.path.join(SRCDIR, "build", "plugins", "built"))
    for candidate in (name + ".so", os.path.join(".libs", name + ".so")):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise AssertionError("%s.so not found under %s" % (name, folder))


class FakeProcess:
    """Starts `fake_NAME.py --port 0` and steers it through /_fake/."""

    def __init__(self, name, api_prefix=""):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, os.path.join(FAKES, "fake_%s.py" % name), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().split()
        if line[:1] != ["listening"] or len(line) != 2:
            self.stop()
            raise AssertionError("fake %s did not start: %r" % (name, line))
        self.root = "http://127.0.0.1:%s" % line[1]
        self.base = self.root + api_prefix  # what a plugin's base_url points at

    def control(self, path, doc=None, method=None):
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.root + "/_fake/" + path, data=data,
                                     method=method or ("GET" if doc is None else "POST"),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def state(self):
        return self.control("state")

    def seen(self):
        """Provider requests seen, in arrival order (control requests are not recorded)."""
        return self.control("requests")

    def requests(self):
        """(method, path) of every provider request seen since the last reset."""
        return [(r["method"], r["path"]) for r in self.seen()]

    def fault(self, **spec):
        self.control("fault", spec)

    def reset(self):
        self.control("reset", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class SharedFake:
    """One fake for a whole test file: started on first use, reset for each
    test that asks for it, stopped by the file's teardown."""

    def __init__(self, name, api_prefix=""):
        self.name, self.api_prefix, self.proc = name, api_prefix, None

    def get(self, reset=True):
        if self.proc is None:
            self.proc = FakeProcess(self.name, self.api_prefix)
        if reset:
            self.proc.reset()
        return self.proc

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
