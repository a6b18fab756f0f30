"""fakebase: what every fake provider server shares.

A fake is a real HTTP server on 127.0.0.1 that keeps state (contacts, lists,
tags...) and speaks one provider's documented contract. Tests steer it through
control endpoints under /_fake/, which no real provider has:

  GET  /_fake/state            the fake's state as JSON (fake-specific shape)
  POST /_fake/reset            forget all state and faults
  POST /_fake/fault            queue faults for the next requests, a JSON object:
         {"status": 429, "count": 2, "headers": {"Retry-After": "1"}, "body": {...}}
         {"delay_ms": 3000, "count": 1}     answer late (after the delay)
         {"close": true, "count": 1}        close the connection without answering
         "path_prefix": "/3.0/lists"        optional: only requests under this path
  GET  /_fake/requests         every request seen: [{"method","path","query","headers","body"}]
  POST /_fake/ratelimit        {"limit": N, "window_s": S}: answer the provider's own
                               rate-limit response once more than N requests arrive in S s

Subclasses implement route(req) -> (status, headers, body) and rate_limited(req, retry_after_s).
Run a fake with:  python3 fake_NAME.py --port PORT  (prints "listening PORT" when ready).
"""
import argparse
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query          # dict of lists, from urllib.parse.parse_qs
        self.headers = headers      # case-insensitive (email.message.Message)
        self.body = body            # bytes

    def json(self):
        return json.loads(self.body or b"null")

    def form(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body.decode()).items()}

    def q(self, name, default=None):
        return self.query.get(name, [default])[0]


def reply(status, body=None, headers=None, content_type="application/json"):
    """A route's answer: body may be a dict/list (sent as JSON), str or bytes."""
    h = dict(headers or {})
    if body is None:
        data = b""
    elif isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", content_type)
    elif isinstance(body, str):
        data = body.encode()
        h.setdefault("Content-Type", content_type)
    else:
        data = body
    return status, h, data


class Fake:
    """State and fault injection; subclass and implement route()."""
    name = "fake"

    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    # --- to override ----------------------------------------------------------
    def reset_state(self):
        pass

    def state(self):
        return {}

    def route(self, req):
        return reply(404, {"error": "not found"})

    def rate_limited(self, req, retry_after_s):
        return reply(429, {"error": "rate limited"}, {"Retry-After": str(retry_after_s)})

    # --- shared -----------------------------------------------------------------
    def reset(self):
        with self.lock:
            self.faults = []
            self.requests = []
            self.ratelimit = None
            self.window = []
            self.reset_state()

    def take_fault(self, path):
        with self.lock:
            for f in self.faults:
                if path.startswith(f.get("path_prefix", "")):
                    f["count"] = f.get("count", 1) - 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                    return f
        return None

    def check_ratelimit(self, req):
        with self.lock:
            if not self.ratelimit:
                return None
            now = time.time()
            window = self.ratelimit["window_s"]
            self.window = [t for t in self.window if t > now - window]
            if len(self.window) >= self.ratelimit["limit"]:
                oldest = self.window[0] if self.window else now  # limit 0: always limited
                retry = max(1, int(oldest + window - now + 0.999))
                return self.rate_limited(req, retry)
            self.window.append(now)
        return None

    def control(self, req):
        if req.path == "/_fake/state":
            with self.lock:
                return reply(200, self.state())
        if req.path == "/_fake/reset":
            self.reset()
            return reply(204)
        if req.path == "/_fake/fault":
            with self.lock:
                self.faults.append(req.json())
            return reply(204)
        if req.path == "/_fake/requests":
            with self.lock:
                return reply(200, self.requests)
        if req.path == "/_fake/ratelimit":
            with self.lock:
                self.ratelimit = req.json()
                self.window = []
            return reply(204)
        return reply(404, {"error": "no such control"})


def make_handler(fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(self.command, parsed.path, urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
                          self.headers, body)
            if parsed.path.startswith("/_fake/"):
                return self.send(*fake.control(req))
            with fake.lock:
                fake.requests.append({"method": req.method, "path": req.path, "query": parsed.query,
                                      "headers": dict(self.headers), "body": body.decode("utf-8", "replace")})
            fault = fake.take_fault(req.path)
            if fault:
                if fault.get("delay_ms"):
                    time.sleep(fault["delay_ms"] / 1000)
                if fault.get("close"):
                    self.close_connection = True
                    return
                if fault.get("status"):
                    return self.send(*reply(fault["status"], fault.get("body", {"error": "injected fault"}),
                                            fault.get("headers")))
            limited = fake.check_ratelimit(req)
            if limited:
                return self.send(*limited)
            with fake.lock:
                try:
                    answer = fake.route(req)
                except Exception as e:  # a bug in the fake must show, not hang the client
                    answer = reply(500, {"fake_error": repr(e)})
            self.send(*answer)

        def send(self, status, headers, data):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def serve(fake, argv=None):
    ap = argparse.ArgumentParser(description="fake %s server" % fake.name)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    srv = Server(("127.0.0.1", args.port), make_handler(fake))
    print("listening %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
