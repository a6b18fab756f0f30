"""lbtest: what the end-to-end tests share.

Starts the real listbossd on a free loopback port with a config written to a
temporary folder, talks to it over real HTTP, reads its SQLite store, and
reports every test function as a TAP line so `make check` counts each one.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

LISTBOSSD = os.environ.get("LISTBOSSD", "listbossd")
FIXTURES = os.environ.get("LB_FIXTURES", os.path.join(os.path.dirname(__file__), "..", "fixtures", "hotmart"))

HOTTOK_A = "hottok-acme-0123456789abcdef"
TOKEN_A = "api-token-acme-0123456789"
HOTTOK_B = "hottok-beta-fedcba9876543210"
TOKEN_B = "api-token-beta-9876543210"

DEFAULT_CONFIG = """
listen = "127.0.0.1:{port}"
database = "{dir}/listboss.db"
max_body = "64k"
accounts = {{
  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A" }},
  {{ id = "beta", hottok = "file:{dir}/beta.hottok", api_token = "{token_b}" }},
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json"), "rb") as f:
        return f.read()


def fixture_names():
    return sorted(n[:-5] for n in os.listdir(FIXTURES) if n.endswith(".json"))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


class Daemon:
    """One listbossd process with its own folder, port and database."""

    def __init__(self, config=DEFAULT_CONFIG, args=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="lbtest-")
        self.port = free_port()
        self.db = os.path.join(self.dir, "listboss.db")
        self.config_path = os.path.join(self.dir, "listboss.lua")
        with open(os.path.join(self.dir, "beta.hottok"), "w") as f:
            f.write(HOTTOK_B + "\n")
        self.write_config(config)
        self.env = dict(os.environ, LB_TEST_HOTTOK_A=HOTTOK_A, LB_TEST_TOKEN_A=TOKEN_A)
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.log_path = os.path.join(self.dir, "stderr.log")

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text.format(port=self.port, dir=self.dir, token_b=TOKEN_B))

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        argv = [LISTBOSSD, "-c", self.config_path] + self.args
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=self.env, cwd=self.dir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("listbossd exited with %s:\n%s" % (self.proc.returncode, self.stderr()))
            try:
                if self.get("/healthz").status == 200:
                    return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("listbossd did not become ready:\n" + self.stderr())

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("listbossd did not stop on %s" % sig)
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        try:
            self.stop(signal.SIGKILL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- HTTP ---------------------------------------------------------------

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            if own:
                conn.close()

    def get(self, path):
        return self.request("GET", path)

    def post_hotmart(self, body, hottok=HOTTOK_A, content_type="application/json", conn=None):
        headers = {"Content-Type": content_type}
        if hottok is not None:
            headers["X-HOTMART-HOTTOK"] = hottok
        return self.request("POST", "/webhooks/hotmart", body, headers, conn)

    def post_event(self, doc, token=TOKEN_A, content_type="application/json"):
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        body = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
        return self.request("POST", "/v1/events", body, headers)

    def raw(self, data, read_timeout=5):
        """Sends bytes as they are and returns everything the server answers."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout) as s:
            s.sendall(data)
            chunks = []
            try:
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    chunks.append(c)
            except socket.timeout:
                pass
            return b"".join(chunks)

    # --- store --------------------------------------------------------------

    def query(self, sql, *params):
        db = sqlite3.connect(self.db, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


def with_id(body, new_id):
    doc = json.loads(body)
    doc["id"] = new_id
    return json.dumps(doc).encode()


# --- TAP runner -------------------------------------------------------------

def run(namespace, teardown=None):
    """Runs every test_* function of the module in file order as one TAP stream."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    failed = 0
    try:
        failed = _run_tests(tests)
    finally:
        if teardown:
            teardown()
    print("1..%d" % len(tests), flush=True)
    sys.exit(1 if failed else 0)


def _run_tests(tests):
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        try:
            fn()
            print("ok %d - %s" % (i, name), flush=True)
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
    return failed
