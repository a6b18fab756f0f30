"""Plugin loading and the lbplug test host.

Builds tiny plugins with `cc` into a temporary folder (a good one, a wrong ABI
major, a descriptor shorter than its own header, a missing callback, a bad name,
default limits out of range, a NULL-returning entry, not a plugin at all) and checks that lbplug (env LBPLUG) loads the good one and refuses each of
the others with a clear message and exit 2; that it reports plugins breaking
the exactly-once contract with exit 3; that the registry refuses a duplicate
name and loads the rest; and that the example plugin builds with only the
installed header and works against a small fake server.
"""
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading

from lbtest import run

SRCDIR = os.environ.get("LB_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
LBPLUG = os.environ.get("LBPLUG", "lbplug")
CC = os.environ.get("CC", "cc")
INCLUDE = os.path.join(SRCDIR, "include")
WORK = tempfile.mkdtemp(prefix="lbplug-test-")

# One source, many plugins: -D switches pick the defect.
PLUGIN_SRC = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <listboss/plugin.h>

static const lb_core_api *core;
static const lb_settings *settings_of_call; /* a test plugin has one instance */
static const lb_config_decl config[] = {
    {"mode", 0, "ok", "ok | double | never | zero | late | chain"},
    {"url", 0, "http://127.0.0.1:1", "server for chain and late"},
    {"token", LB_CFG_SECRET, NULL, "a secret, never printed"},
    {NULL, 0, NULL, NULL},
};
#if defined(UNTERMINATED_PARAMS)
/* every entry named: no { NULL } where the loader looks for one */
static const lb_param_decl params[1024] = {[0 ... 1023] = {"p", 0, NULL, NULL}};
#elif defined(LONG_PARAM)
static const lb_param_decl params[] = {{LONG_PARAM, 0, NULL, NULL}, {NULL, 0, NULL, NULL}};
#else
static const lb_param_decl *const params = NULL;
#endif
static const lb_action_decl actions[] = {{"contact_upsert", "Upsert", params, NULL, NULL},
                                         {NULL, NULL, NULL, NULL, NULL}};

static int p_init(const lb_core_api *api, const lb_settings *s, void **inst, char *err, size_t n)
{
    (void)err, (void)n;
    core = api;
    settings_of_call = s;
    *inst = (void *)s;
    return 0;
}

static void finish(lb_call *call, lb_status st)
{
    lb_result r;
    memset(&r, 0, sizeof r);
    r.status = st;
    strcpy(r.reason, "done");
    core->complete(call, &r);
}

static void chained(const lb_http_resp *resp, void *ud)
{
    lb_call *call = ud;
    char path[64] = "", url[256];
    core->json_get(resp->body, resp->body_len, "path", path, sizeof path);
    if (strcmp(path, "/open/1") == 0) { /* a done callback may queue the next request */
        snprintf(url, sizeof url, "%s/open/2", core->setting(settings_of_call, "url"));
        lb_http_req req = {"GET", url, NULL, NULL, 0, 0};
        core->http_request(call, &req, chained, call);
        return;
    }
    lb_result r;
    memset(&r, 0, sizeof r);
    r.status = core->http_classify(resp, &r.retry_after_ms);
    r.http_status = (int)resp->status;
    snprintf(r.provider_ref, sizeof r.provider_ref, "%s", path);
    core->complete(call, &r);
}

static void get(lb_call *call, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", core->setting(settings_of_call, "url"), path);
    lb_http_req req = {"GET", url, NULL, NULL, 0, 0};
    core->http_request(call, &req, chained, call);
}

static void p_verify(void *inst, lb_call *call)
{
    const char *mode = core->setting(inst, "mode");
    char tok[64];
    if (core->secret(inst, "token", tok, sizeof tok) > 0)
        core->log(inst, LB_LEVEL_INFO, "token is %s", tok); /* the host must redact it */
    if (strcmp(mode, "never") == 0)
        return;
    if (strcmp(mode, "chain") == 0) {
        get(call, "/open/1");
        return;
    }
    if (strcmp(mode, "zero") == 0) {
        lb_result r;
        memset(&r, 0, sizeof r);
        core->complete(call, &r);
        return;
    }
    finish(call, LB_OK);
    if (strcmp(mode, "double") == 0)
        finish(call, LB_OK);
    if (strcmp(mode, "late") == 0)
        get(call, "/open/late"); /* the call is finished: a bug */
}

static void p_submit(void *inst, lb_call *call, const lb_job *job) { (void)job; p_verify(inst, call); }
__attribute__((unused)) static void p_cancel(void *inst, lb_call *call) { (void)inst, (void)call; }
static void p_destroy(void *inst) { (void)inst; }

#ifndef NAME
#define NAME "good"
#endif
#ifndef RATE
#define RATE 0.0
#endif
#ifndef CONCURRENCY
#define CONCURRENCY 0
#endif
#ifdef NO_CANCEL
#define CANCEL NULL
#else
#define CANCEL p_cancel
#endif

#if defined(WRONG_ABI) || defined(NULL_ENTRY) || defined(STRUCT_SIZE)
/* Hand-written entry points: what LB_PLUGIN_REGISTER would never produce. */
#ifndef STRUCT_SIZE
#define STRUCT_SIZE sizeof(lb_plugin)
#endif
#ifdef WRONG_ABI
#define DESC_MAJOR (LB_ABI_MAJOR + 1)
#else
#define DESC_MAJOR LB_ABI_MAJOR
#endif
static const lb_plugin desc = {
    .struct_size = STRUCT_SIZE, .abi_major = DESC_MAJOR, .abi_minor = 0, .name = NAME,
    .version = "9.9", .config = config, .actions = actions, .init = p_init, .verify = p_verify,
    .submit = p_submit, .cancel = p_cancel, .destroy = p_destroy};
LB_PLUGIN_EXPORT const lb_plugin *lb_plugin_entry(uint32_t major, const lb_core_api *api);
LB_PLUGIN_EXPORT const lb_plugin *lb_plugin_entry(uint32_t major, const lb_core_api *api)
{
    (void)major, (void)api;
#ifdef NULL_ENTRY
    return major == 0 ? &desc : NULL; /* refuses every real core */
#else
    return &desc;
#endif
}
#else
LB_PLUGIN_REGISTER(.name = NAME, .display_name = "Good", .version = VERSION, .config = config,
                   .actions = actions, .default_rate_per_s = RATE, .default_concurrency = CONCURRENCY,
                   .init = p_init, .verify = p_verify, .submit = p_submit, .cancel = CANCEL, .destroy = p_destroy)
#endif
"""

NOT_A_PLUGIN_SRC = "int lb_not_a_plugin(void);\nint lb_not_a_plugin(void) { return 1; }\n"

# A registry driver: loads a folder the way listbossd will.
REGISTRY_SRC = r"""
#include <stdio.h>
#include "plugin_loader.h"
int main(int argc, char **argv)
{
    (void)argc;
    lb_core_api api = {.struct_size = sizeof api, .abi_major = LB_ABI_MAJOR, .abi_minor = LB_ABI_MINOR};
    lb_plugin_registry *r = lb_registry_new();
    lb_error err;
    int n = lb_registry_load_dir(r, argv[1], &api, &err);
    printf("loaded %d\n", n);
    for (size_t i = 0; i < lb_registry_count(r); i++)
        printf("plugin %s %s\n", lb_registry_at(r, i)->desc.name, lb_registry_at(r, i)->desc.version);
    printf("find good: %s\n", lb_registry_find(r, "good") ? "yes" : "no");
    lb_registry_free(r);
    return 0;
}
"""


def write(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def build(name, *defines, src=PLUGIN_SRC, folder=WORK):
    """Compiles a plugin the way an out-of-tree author would: only the installed header."""
    os.makedirs(folder, exist_ok=True)
    c = write(name + ".c", src)
    so = os.path.join(folder, name + ".so")
    flags = ["-D" + d for d in defines]
    if not any(d.startswith("VERSION=") for d in defines):
        flags.append('-DVERSION="1.0"')
    r = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden",
                        "-I" + INCLUDE] + flags + ["-o", so, c], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return so


def lbplug(*args, env=None):
    return subprocess.run([LBPLUG] + list(args), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def refused(so, *words):
    r = lbplug(so, "describe")
    assert r.returncode == 2, r
    assert r.stdout == "", r
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert so in r.stderr, r.stderr  # the message names the file


# --- loading --------------------------------------------------------------------

def test_good_plugin_loads_and_describes_itself():
    so = build("good")
    r = lbplug(so, "describe")
    assert r.returncode == 0, r
    d = json.loads(r.stdout)
    assert d["name"] == "good" and d["version"] == "1.0" and d["abi"] == "1.0", d
    assert d["config"][0] == {"key": "mode", "required": False, "secret": False,
                              "default": "ok", "help": "ok | double | never | zero | late | chain"}, d
    assert d["config"][2]["key"] == "token" and d["config"][2]["secret"] is True, d
    assert d["actions"][0]["name"] == "contact_upsert" and d["can_list_resources"] is False, d


def test_good_plugin_verifies():
    r = lbplug(build("good"), "verify")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["status"] == "ok" and out["requests"] == 0 and out["reason"] == "done", out


def test_wrong_abi_major_is_refused():
    refused(build("wrongabi", "WRONG_ABI"), "ABI 2.0", "this core speaks 1.0")


def test_descriptor_shorter_than_its_header_is_refused():
    """A struct_size below 8 does not even cover struct_size, abi_major and
    abi_minor: the refusal says so, not "built for plugin ABI 0.0" from the
    version fields the loader never read."""
    for size in (0, 4, 7):
        so = build("shortheader%d" % size, "STRUCT_SIZE=%d" % size)
        refused(so, "descriptor struct_size %d is smaller than the ABI header (8 bytes" % size)
        stderr = lbplug(so, "describe").stderr
        assert "ABI 0.0" not in stderr and "rebuild" not in stderr, stderr


def test_missing_callback_is_refused():
    refused(build("nocancel", "NO_CANCEL"), "no cancel callback")


def test_daemon_refuses_bad_plugins_and_keeps_serving():
    """A plugin folder with a wrong ABI major and a plugin missing a callback:
    the daemon logs each refusal, loads the good one, and serves."""
    import lbtest
    folder = os.path.join(WORK, "daemon-plugins")
    build("dgood", 'NAME="dgood"', folder=folder)
    build("dwrongabi", "WRONG_ABI", 'NAME="dwrongabi"', folder=folder)
    build("dnocancel", "NO_CANCEL", 'NAME="dnocancel"', folder=folder)
    d = lbtest.Daemon(env={"LISTBOSS_PLUGIN_DIR": folder})
    try:
        d.start()
        log = d.stderr()
        assert "dwrongabi.so" in log and "ABI 2.0" in log, log
        assert "dnocancel.so" in log and "no cancel callback" in log, log
        assert "plugin loaded" in log and "plugin=dgood" in log, log
        body = lbtest.with_id(lbtest.fixture("PURCHASE_APPROVED"), "plugin-refusal-test")
        assert d.post_hotmart(body).status == 200
        assert d.get("/healthz").status == 200
    finally:
        d.cleanup()


def test_bad_name_is_refused():
    refused(build("badname", 'NAME="Bad-Name"'), "Bad-Name", "[a-z0-9_]")


def test_null_entry_is_refused():
    refused(build("nullentry", "NULL_ENTRY"), "returned NULL")


def test_shared_object_without_entry_is_refused():
    refused(build("notaplugin", src=NOT_A_PLUGIN_SRC), "no lb_plugin_entry symbol")


def test_unterminated_or_long_declarations_are_refused():
    refused(build("untermparams", "UNTERMINATED_PARAMS"), "params table has no { NULL } terminator")
    refused(build("longparam", 'LONG_PARAM="%s"' % ("p" * 65)), "parameter 0's name is empty or longer than 64 bytes")
    refused(build("longversion", 'VERSION="%s"' % ("1" * 65)), "version is longer than 64 bytes")


def test_bad_default_limits_are_refused():
    """A descriptor's default limits meet the config's rules for the same
    limits: a rate is 0 (unlimited) or finite and at least one a day, a
    concurrency 0 (unlimited) to 1024. The refusal names the field."""
    rates = ("-1.0", '__builtin_nan("")', "__builtin_inf()", "1e-6", "1e-320")
    for i, rate in enumerate(rates):
        refused(build("badrate%d" % i, "RATE=(%s)" % rate), "default_rate_per_s ",
                "is neither 0 (unlimited) nor a finite number of requests per second of at least 1/86400")
    refused(build("badconcurrency", "CONCURRENCY=1025"), "default_concurrency 1025 is above 1024")


def test_default_limits_at_their_bounds_load():
    """0 (unlimited), the slowest rate (one a day) and the largest concurrency load."""
    bounds = (("0.0", 0.0, 0), ("(1.0 / 86400)", 1 / 86400, 1024), ("5.0", 5.0, 4))
    for i, (rate_src, rate, concurrency) in enumerate(bounds):
        r = lbplug(build("limits%d" % i, "RATE=" + rate_src, "CONCURRENCY=%d" % concurrency), "describe")
        assert r.returncode == 0, r
        limits = json.loads(r.stdout)["default_limits"]
        assert abs(limits["rate_per_s"] - rate) <= 1e-12 * rate, limits
        assert limits["concurrency"] == concurrency, limits


def test_a_fifo_named_like_a_plugin_is_refused_without_blocking():
    path = os.path.join(WORK, "fifo.so")
    os.mkfifo(path)
    refused(path, "not a regular file")  # dlopen would have waited for a writer for ever


def test_non_elf_file_is_refused():
    path = write("garbage.so", "this is not an ELF file\n")
    refused(path, "cannot load")


def test_registry_refuses_duplicates_and_loads_the_rest():
    folder = os.path.join(WORK, "registry")
    build("a_good", 'VERSION="1.0"', folder=folder)
    build("b_dup", 'VERSION="2.0"', folder=folder)  # also named "good"
    build("c_other", 'NAME="other"', folder=folder)
    build("d_wrongabi", "WRONG_ABI", 'NAME="wrong"', folder=folder)
    driver = os.path.join(WORK, "registry_driver")
    core = os.path.join(SRCDIR, "core")
    r = subprocess.run([CC, "-std=c11", "-D_GNU_SOURCE", "-I" + core, "-I" + INCLUDE, "-o", driver,
                        write("registry_driver.c", REGISTRY_SRC), os.path.join(core, "plugin_loader.c"),
                        os.path.join(core, "error.c"), os.path.join(core, "log.c"), "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([driver, folder], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    assert "loaded 2" in r.stdout and "plugin good 1.0" in r.stdout and "plugin other 1.0" in r.stdout, r.stdout
    assert "find good: yes" in r.stdout
    refusals = [l for l in r.stderr.splitlines() if "plugin refused" in l]
    assert len(refusals) == 2, r.stderr
    dup = [l for l in refusals if "b_dup.so" in l][0]
    assert "already taken" in dup and "a_good.so" in dup and "2.0" in dup and "1.0" in dup, dup
    wrong = [l for l in refusals if "d_wrongabi.so" in l][0]
    assert "ABI 2.0" in wrong and "core ABI 1.0" in wrong, wrong


# --- the contract -----------------------------------------------------------------

def contract(mode):
    r = lbplug(build("good"), "--set", "mode=" + mode, "verify")
    return r, json.loads(r.stdout)


def test_double_completion_is_a_contract_breach():
    r, out = contract("double")
    assert r.returncode == 3, r
    assert "2 times" in out["contract_error"] and "2 times" in r.stderr, r


def test_never_completing_is_a_contract_breach():
    r, out = contract("never")
    assert r.returncode == 3 and out["status"] == "none" and "never completed" in out["contract_error"], r


def test_zeroed_result_is_a_contract_breach():
    r, out = contract("zero")
    assert r.returncode == 3 and out["status"] == "invalid" and "invalid status 0" in out["contract_error"], r


def test_request_after_complete_is_a_contract_breach():
    r, out = contract("late")
    assert r.returncode == 3 and out["status"] == "ok" and "after complete" in out["contract_error"], r
    assert out["requests"] == 0, out


def test_done_callbacks_can_chain_requests():
    def scenario(base):
        r = lbplug(build("good"), "--set", "mode=chain", "--set", "url=" + base.rstrip("/"), "verify")
        assert r.returncode == 0, r
        out = json.loads(r.stdout)
        assert out["status"] == "ok" and out["requests"] == 2 and out["provider_ref"] == "/open/2", out
        assert [s[1] for s in FakeExample.seen] == ["/v1/open/1", "/v1/open/2"], FakeExample.seen
    with_fake(scenario)


# --- usage and settings -------------------------------------------------------------

def test_usage_errors_exit_2():
    so = build("good")
    for args in ([], [so], [so, "frobnicate"], [so, "list"], [so, "submit", "contact_upsert"],
                 [so, "--set", "novalue", "verify"], [so, "verify", "extra"],
                 [so, "submit", "contact_upsert", "--email", "a@x.com", "--attempt", "0"]):
        r = lbplug(*args)
        assert r.returncode == 2 and "usage" in r.stderr, (args, r)


def test_settings_errors_exit_2():
    so = build("good")
    r = lbplug(so, "--set", "colour=red", "verify")
    assert r.returncode == 2 and "colour" in r.stderr and "mode, url, token" in r.stderr, r
    r = lbplug(so, "--set", "token=env:LB_TEST_UNSET_VAR", "verify", env={"LB_TEST_UNSET_VAR": ""})
    assert r.returncode == 2 and "LB_TEST_UNSET_VAR" in r.stderr, r
    r = lbplug(so, "submit", "tag_add", "--email", "a@x.com")
    assert r.returncode == 2 and "not an action" in r.stderr, r
    r = lbplug(so, "list", "tags")
    assert r.returncode == 2 and "cannot list" in r.stderr, r


def test_secrets_are_resolved_and_redacted():
    secret = "s3cret-value-from-env"
    r = lbplug(build("good"), "--set", "token=env:LB_TEST_TOKEN", "verify", env={"LB_TEST_TOKEN": secret})
    assert r.returncode == 0, r
    assert "token is [REDACTED]" in r.stderr and secret not in r.stderr + r.stdout, r.stderr


# --- the example plugin against a fake server ----------------------------------------

EXAMPLE_KEY = "example-key-0123456789"


class FakeExample(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        FakeExample.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.path.startswith("/v1/open/"):
            return self.answer(200, {"path": self.path[3:]})
        if self.headers.get("Authorization") != "Bearer " + EXAMPLE_KEY:
            return self.answer(401, {"error": {"message": "invalid key"}})
        if self.path == "/v1/me":
            return self.answer(200, {"id": "me"})
        if self.path == "/v1/tags" and self.command == "GET":
            return self.answer(200, {"tags": [{"id": "t1", "name": "Buyers"}, {"id": "t2", "name": "Leads"}]})
        if self.path == "/v1/tags" and body["tag"] == "busy":
            return self.answer(429, {"error": {"message": "slow down"}}, [("Retry-After", "30")])
        if self.path == "/v1/tags":
            return self.answer(201, {"contact": {"id": "c-42"}})
        return self.answer(404, {"error": {"message": "no such route"}})

    do_GET = do_POST = route


def example_so():
    """The example, built with nothing but the public header, as docs/plugins.md says."""
    so = os.path.join(WORK, "example.so")
    if not os.path.exists(so):
        src = os.path.join(SRCDIR, "plugins", "example", "example.c")
        r = subprocess.run([CC, "-std=c11", "-pedantic", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                            "-fvisibility=hidden", "-I" + INCLUDE, "-o", so, src], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return so


def test_example_builds_with_only_the_public_header():
    so = example_so()
    r = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True)
    if r.returncode == 0:  # nm is binutils: present wherever cc is, but do not insist
        symbols = [l.split()[-1] for l in r.stdout.splitlines() if l.split()[1:2] == ["T"]]
        assert symbols == ["lb_plugin_entry"], r.stdout


def with_fake(fn):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeExample)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeExample.seen = []
    try:
        return fn("http://127.0.0.1:%d/v1/" % server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def example(base, *args, key="env:LB_TEST_EXAMPLE_KEY"):
    r = lbplug(example_so(), "--set", "base_url=" + base, "--set", "api_key=" + key, *args,
               env={"LB_TEST_EXAMPLE_KEY": EXAMPLE_KEY})
    assert r.returncode == 0, r
    assert EXAMPLE_KEY not in r.stderr and EXAMPLE_KEY not in r.stdout, r
    return json.loads(r.stdout)


def test_example_against_a_fake_server():
    def scenario(base):
        out = example(base, "submit", "tag_add", "--email", "Ana@Example.com", "--param", "tag=buyer")
        assert out == {"status": "ok", "http_status": 201, "retry_after_ms": 0, "rate_limited": False,
                       "provider_ref": "c-42", "reason": "tag added", "requests": 1}, out
        assert FakeExample.seen[-1] == ("POST", "/v1/tags", "Bearer " + EXAMPLE_KEY,
                                        {"email": "ana@example.com", "tag": "buyer"}), FakeExample.seen
        out = example(base, "submit", "tag_add", "--email", "a@x.com", "--param", "tag=busy")
        assert out["status"] == "retry" and out["retry_after_ms"] == 30000 and out["rate_limited"], out
        assert example(base, "verify")["status"] == "ok"
        out = example(base, "verify", key="wrong-key-0123456789")
        assert out["status"] == "auth" and out["http_status"] == 401 and out["reason"] == "invalid key", out
        out = example(base, "list", "tags")
        assert out["resources"] == [{"id": "t1", "name": "Buyers"}, {"id": "t2", "name": "Leads"}], out
    with_fake(scenario)


def test_unreachable_server_is_retry():
    out = example("http://127.0.0.1:1/v1", "verify")
    assert out["status"] == "retry" and out["http_status"] == 0 and out["requests"] == 1, out


def teardown():
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    run(globals(), teardown)
