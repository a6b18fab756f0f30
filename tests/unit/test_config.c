/* test_config.c: the Lua config loader, its validation, the secret references
 * and the sandbox. Each table-driven case is its own Check loop iteration, so
 * it is reported (and can fail) as its own TAP line. */
/* Spelled with its directory: in an automake build "-I." precedes -Icore and
 * the top build directory holds autoconf's own config.h. */
#include "../../core/config.h"

#include "secret.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A valid accounts block for tests about other keys. */
#define ACC "accounts = { { id = \"a\", hottok = \"hottok-aaaa\", api_token = \"token-aaaa\" } }\n"
#define ACCOUNT(id, hot, api) "{ id = \"" id "\", hottok = \"" hot "\", api_token = \"" api "\" }"

/* ---- helpers ------------------------------------------------------------ */

static lb_config *load(const char *src, lb_error *err)
{
    return lb_config_load_string(src, "test.lua", err);
}

/* Asserts that src fails with exactly `field` and a message containing `msg`. */
static void expect_error(const char *src, const char *field, const char *msg)
{
    lb_error err;
    lb_config *cfg = load(src, &err);
    ck_assert_msg(cfg == NULL, "config loaded but should fail: %s", src);
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(strstr(err.message, msg) != NULL, "message \"%s\" lacks \"%s\"", err.message, msg);
}

/* Writes `content` to a fresh temp file; path must hold 32 bytes. */
static void write_temp(char *path, const char *content, size_t len)
{
    strcpy(path, "/tmp/lb_test_secretXXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
}

/* Loads a one-account config whose hottok is "file:PATH" of a temp file with
 * `content`; returns the config (or NULL with err). */
static lb_config *load_with_hottok_file(const char *content, size_t len, lb_error *err)
{
    char path[32], src[256];
    write_temp(path, content, len);
    snprintf(src, sizeof src, "accounts = { { id = \"a\", hottok = \"file:%s\", api_token = \"token-aaaa\" } }",
             path);
    lb_config *cfg = load(src, err);
    unlink(path);
    return cfg;
}

static void env_setup(void)
{
    setenv("LB_TEST_HOTTOK", "env-hottok-1234", 1);
    setenv("LB_TEST_EMPTY", "", 1);
    setenv("LB_TEST_SHORT", "s3cr", 1);
    unsetenv("LB_TEST_UNSET");
}

static void env_teardown(void) {}

/* ---- valid configs ------------------------------------------------------- */

START_TEST(demo_loads_with_defaults)
{
    lb_error err;
    lb_config *cfg = lb_config_load_string(lb_config_demo, "demo", &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
    ck_assert_str_eq(cfg->database, "var/listboss.db");
    ck_assert_uint_eq(cfg->max_body, 256 * 1024);
    ck_assert_str_eq(cfg->log_level, "info");
    ck_assert(!cfg->ignore_test_events);
    ck_assert(cfg->sync_full);
    ck_assert_uint_eq(cfg->n_accounts, 1);
    ck_assert_str_eq(cfg->accounts[0].id, "demo");
    ck_assert_str_eq(cfg->accounts[0].hottok, "TESTHOTTOK0000000000000000000000000000000");
    ck_assert_str_eq(cfg->accounts[0].api_token, "demo-api-token-0000");
    lb_config_free(cfg);
}
END_TEST

START_TEST(minimal_config_gets_defaults)
{
    lb_error err;
    lb_config *cfg = load(ACC, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
    ck_assert_str_eq(cfg->database, "var/listboss.db");
    ck_assert_uint_eq(cfg->max_body, 262144);
    ck_assert_str_eq(cfg->log_level, "info");
    ck_assert(!cfg->ignore_test_events);
    ck_assert(cfg->sync_full);
    ck_assert_str_eq(err.field, "");
    ck_assert_str_eq(err.message, "");
    lb_config_free(cfg);
}
END_TEST

START_TEST(every_key_parsed)
{
    static const char src[] =
        "listen = '0.0.0.0:9090'\n"
        "database = '/srv/lb/events.db'\n"
        "max_body = '1m'\n"
        "log_level = 'debug'\n"
        "ignore_test_events = true\n"
        "synchronous = 'normal'\n"
        "accounts = {\n"
        "  " ACCOUNT("shop_1", "hottok-1111", "token-1111") ",\n"
        "  " ACCOUNT("shop-2", "env:LB_TEST_HOTTOK", "token-2222") ",\n"
        "}\n";
    lb_error err;
    lb_config *cfg = load(src, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->listen, "0.0.0.0:9090");
    ck_assert_str_eq(cfg->database, "/srv/lb/events.db");
    ck_assert_uint_eq(cfg->max_body, 1024 * 1024);
    ck_assert_str_eq(cfg->log_level, "debug");
    ck_assert(cfg->ignore_test_events);
    ck_assert(!cfg->sync_full);
    ck_assert_uint_eq(cfg->n_accounts, 2);
    ck_assert_str_eq(cfg->accounts[0].id, "shop_1");
    ck_assert_str_eq(cfg->accounts[0].hottok, "hottok-1111");
    ck_assert_str_eq(cfg->accounts[0].api_token, "token-1111");
    ck_assert_str_eq(cfg->accounts[1].id, "shop-2");
    ck_assert_str_eq(cfg->accounts[1].hottok, "env-hottok-1234");
    ck_assert_str_eq(cfg->accounts[1].api_token, "token-2222");
    lb_config_free(cfg);
}
END_TEST

static const struct {
    const char *value;
    size_t bytes;
} max_body_forms[] = {
    {"'256k'", 262144},   {"'256K'", 262144},        {"'1m'", 1048576}, {"'1M'", 1048576},
    {"'1k'", 1024},       {"'64m'", 67108864},       {"'2048'", 2048},  {"4096", 4096},
    {"2^20", 1048576},    {"64 * 1024 * 1024", 67108864},
};

START_TEST(max_body_forms_parse)
{
    char src[256];
    snprintf(src, sizeof src, "max_body = %s\n" ACC, max_body_forms[_i].value);
    lb_error err;
    lb_config *cfg = load(src, &err);
    ck_assert_msg(cfg != NULL, "%s: %s: %s", max_body_forms[_i].value, err.field, err.message);
    ck_assert_uint_eq(cfg->max_body, max_body_forms[_i].bytes);
    lb_config_free(cfg);
}
END_TEST

static const char *const valid_levels[] = {"debug", "info", "warn", "error"};

START_TEST(log_levels_accepted)
{
    char src[256];
    snprintf(src, sizeof src, "log_level = '%s'\n" ACC, valid_levels[_i]);
    lb_config *cfg = load(src, NULL);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->log_level, valid_levels[_i]);
    lb_config_free(cfg);
}
END_TEST

START_TEST(ipv6_listen_in_brackets)
{
    lb_config *cfg = load("listen = '[::1]:8443'\n" ACC, NULL);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->listen, "[::1]:8443");
    lb_config_free(cfg);
}
END_TEST

/* Locals and helper calls are allowed and are not keys; only assignments to
 * globals are. */
START_TEST(locals_and_helpers_usable)
{
    static const char src[] =
        "local host, port = '127.0.0.1', 7000 + 1\n"
        "listen = string.format('%s:%d', host, port)\n"
        "local parts = {}\n"
        "for _, w in ipairs({'var', 'lb.db'}) do parts[#parts + 1] = w end\n"
        "database = table.concat(parts, '/')\n"
        "max_body = math.max(2048, tonumber('1024'))\n"
        "log_level = select(2, 'x', 'warn')\n"
        "local n = 0 for _ in pairs({a = 1, b = 2}) do n = n + 1 end\n"
        "assert(n == 2 and type(n) == 'number' and tostring(n) == '2')\n"
        "assert(utf8.char(72, 105) == 'Hi')\n"
        "assert(not pcall(error, 'caught'))\n"
        "local suffix = ('%04d'):format(7)\n"
        "accounts = { { id = 'a', hottok = 'hottok-' .. suffix, api_token = 'token-' .. suffix } }\n";
    lb_error err;
    lb_config *cfg = load(src, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->listen, "127.0.0.1:7001");
    ck_assert_str_eq(cfg->database, "var/lb.db");
    ck_assert_uint_eq(cfg->max_body, 2048);
    ck_assert_str_eq(cfg->log_level, "warn");
    ck_assert_str_eq(cfg->accounts[0].hottok, "hottok-0007");
    lb_config_free(cfg);
}
END_TEST

/* ---- the example and file loading ---------------------------------------- */

/* `make check` exports LB_SRCDIR; the fixtures macro locates the source tree
 * when the binary is run by hand from elsewhere; "." covers ad-hoc builds. */
static void example_path(char *buf, size_t cap)
{
    const char *srcdir = getenv("LB_SRCDIR");
#ifdef LB_TEST_FIXTURES
    if (!srcdir)
        srcdir = LB_TEST_FIXTURES "/../../..";
#endif
    snprintf(buf, cap, "%s/etc/listboss.lua", srcdir ? srcdir : ".");
}

START_TEST(example_config_loads_with_env)
{
    char path[4096];
    example_path(path, sizeof path);
    setenv("LISTBOSS_DEMO_HOTTOK", "example-hottok-1", 1);
    setenv("LISTBOSS_DEMO_TOKEN", "example-token-1", 1);
    lb_error err;
    lb_config *cfg = lb_config_load_file(path, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->accounts[0].id, "demo");
    ck_assert_str_eq(cfg->accounts[0].hottok, "example-hottok-1");
    ck_assert_str_eq(cfg->accounts[0].api_token, "example-token-1");
    ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
    lb_config_free(cfg);
}
END_TEST

START_TEST(example_config_without_env_names_variable)
{
    char path[4096];
    example_path(path, sizeof path);
    unsetenv("LISTBOSS_DEMO_HOTTOK");
    lb_error err;
    ck_assert_ptr_null(lb_config_load_file(path, &err));
    ck_assert_str_eq(err.field, "accounts[1].hottok");
    ck_assert_str_eq(err.message, "environment variable LISTBOSS_DEMO_HOTTOK is not set");
}
END_TEST

START_TEST(missing_file_names_path)
{
    lb_error err;
    ck_assert_ptr_null(lb_config_load_file("/nonexistent/listboss.lua", &err));
    ck_assert_str_eq(err.field, "/nonexistent/listboss.lua");
    ck_assert_ptr_nonnull(strstr(err.message, "No such file"));
}
END_TEST

START_TEST(file_with_nul_byte_rejected)
{
    char path[32];
    static const char text[] = "listen = '127.0.0.1:8080'\0junk";
    write_temp(path, text, sizeof text - 1);
    lb_error err;
    lb_config *cfg = lb_config_load_file(path, &err);
    unlink(path);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.field, path);
    ck_assert_ptr_nonnull(strstr(err.message, "NUL"));
}
END_TEST

START_TEST(file_errors_carry_file_name_and_line)
{
    char path[32];
    static const char text[] = "listen = '127.0.0.1:8080'\nx = = 1\n";
    write_temp(path, text, sizeof text - 1);
    lb_error err;
    lb_config *cfg = lb_config_load_file(path, &err);
    ck_assert_ptr_null(cfg);
    char want[64];
    snprintf(want, sizeof want, "%s:2:", path);
    unlink(path);
    ck_assert_str_eq(err.field, "");
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s", err.message);
}
END_TEST

/* ---- validation errors ------------------------------------------------------ */

struct bad_case {
    const char *src;
    const char *field;
    const char *msg;
};

static const struct bad_case bad_scalars[] = {
    {"lisen = '127.0.0.1:8080'\n" ACC, "lisen", "unknown key"},
    {"listen = 8080\n" ACC, "listen", "expected a string, got number"},
    {"listen = '127.0.0.1'\n" ACC, "listen", "ADDR:PORT"},
    {"listen = '127.0.0.1:0'\n" ACC, "listen", "port from 1 to 65535"},
    {"listen = '127.0.0.1:65536'\n" ACC, "listen", "port from 1 to 65535"},
    {"listen = ':8080'\n" ACC, "listen", "ADDR:PORT"},
    {"listen = '127.0.0.1:80a'\n" ACC, "listen", "ADDR:PORT"},
    {"listen = '127.0.0.1:'\n" ACC, "listen", "ADDR:PORT"},
    {"listen = '::1:8080'\n" ACC, "listen", "brackets"},
    {"database = true\n" ACC, "database", "expected a string, got boolean"},
    {"database = ''\n" ACC, "database", "must not be empty"},
    {"database = 'var/a\\0b'\n" ACC, "database", "NUL"},
    {"max_body = '512'\n" ACC, "max_body", "between 1k (1024) and 64m"},
    {"max_body = 1023\n" ACC, "max_body", "between 1k"},
    {"max_body = '65m'\n" ACC, "max_body", "between 1k"},
    {"max_body = 64 * 1024 * 1024 + 1\n" ACC, "max_body", "between 1k"},
    {"max_body = -4096\n" ACC, "max_body", "between 1k"},
    {"max_body = '99999999999999999999999999k'\n" ACC, "max_body", "between 1k"},
    {"max_body = '12x'\n" ACC, "max_body", "expected a byte count"},
    {"max_body = ''\n" ACC, "max_body", "expected a byte count"},
    {"max_body = '1.5m'\n" ACC, "max_body", "expected a byte count"},
    {"max_body = ' 256k'\n" ACC, "max_body", "expected a byte count"},
    {"max_body = 'k'\n" ACC, "max_body", "expected a byte count"},
    {"max_body = 1500.5\n" ACC, "max_body", "whole number"},
    {"max_body = true\n" ACC, "max_body", "expected a number or a string"},
    {"log_level = 'verbose'\n" ACC, "log_level", "expected one of \"debug\", \"info\", \"warn\", \"error\""},
    {"log_level = 'INFO'\n" ACC, "log_level", "expected one of"},
    {"log_level = 1\n" ACC, "log_level", "expected a string, got number"},
    {"ignore_test_events = 'yes'\n" ACC, "ignore_test_events", "expected a boolean"},
    {"ignore_test_events = 1\n" ACC, "ignore_test_events", "expected a boolean"},
    {"synchronous = 'off'\n" ACC, "synchronous", "expected one of \"full\", \"normal\""},
    {"synchronous = false\n" ACC, "synchronous", "expected a string, got boolean"},
    {"_ENV[1] = 'x'\n" ACC, "", "keys must be names"},
    {"string = 'x'\n" ACC, "string", "unknown key"},
};

START_TEST(bad_scalar_rejected)
{
    expect_error(bad_scalars[_i].src, bad_scalars[_i].field, bad_scalars[_i].msg);
}
END_TEST

static const struct bad_case bad_accounts[] = {
    {"listen = '127.0.0.1:8080'\n", "accounts", "is required"},
    {"accounts = {}\n", "accounts", "at least one account"},
    {"accounts = 'demo'\n", "accounts", "expected a list of account tables, got string"},
    {"accounts = { 'demo' }\n", "accounts[1]", "expected a table"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", extra = {} }\n", "accounts", "named keys"},
    {"accounts = { [2] = " ACCOUNT("a", "hottok-aaaa", "token-aaaa") " }\n", "accounts", "gaps"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", { id = 'b', hotok = 'hottok-bbbb', "
     "api_token = 'token-bbbb' } }\n",
     "accounts[2].hotok", "unknown key"},
    {"accounts = { { 'x', id = 'a', hottok = 'hottok-aaaa', api_token = 'token-aaaa' } }\n", "accounts[1]",
     "keys must be names"},
    {"accounts = { { hottok = 'hottok-aaaa', api_token = 'token-aaaa' } }\n", "accounts[1].id", "is required"},
    {"accounts = { { id = 7, hottok = 'hottok-aaaa', api_token = 'token-aaaa' } }\n", "accounts[1].id",
     "expected a string, got number"},
    {"accounts = { " ACCOUNT("Demo", "hottok-aaaa", "token-aaaa") " }\n", "accounts[1].id", "a-z, 0-9"},
    {"accounts = { " ACCOUNT("", "hottok-aaaa", "token-aaaa") " }\n", "accounts[1].id", "1 to 64"},
    {"accounts = { " ACCOUNT("a b", "hottok-aaaa", "token-aaaa") " }\n", "accounts[1].id", "a-z, 0-9"},
    {"accounts = { { id = string.rep('a', 65), hottok = 'hottok-aaaa', api_token = 'token-aaaa' } }\n",
     "accounts[1].id", "1 to 64"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", " ACCOUNT("a", "hottok-bbbb",
                                                                          "token-bbbb") " }\n",
     "accounts[2].id", "duplicate account id \"a\" (also accounts[1])"},
    {"accounts = { { id = 'a', api_token = 'token-aaaa' } }\n", "accounts[1].hottok", "is required"},
    {"accounts = { { id = 'a', hottok = 12345678, api_token = 'token-aaaa' } }\n", "accounts[1].hottok",
     "expected a string, got number"},
    {"accounts = { { id = 'a', hottok = 'hottok-aaaa' } }\n", "accounts[1].api_token", "is required"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", " ACCOUNT("b", "hottok-aaaa",
                                                                          "token-bbbb") " }\n",
     "accounts[2].hottok", "same value as accounts[1].hottok"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", " ACCOUNT("b", "hottok-bbbb",
                                                                          "token-aaaa") " }\n",
     "accounts[2].api_token", "same value as accounts[1].api_token"},
    {"accounts = { " ACCOUNT("a", "same-value-1", "same-value-1") " }\n", "accounts[1].api_token",
     "same value as accounts[1].hottok"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "token-aaaa") ", " ACCOUNT("b", "hottok-bbbb",
                                                                          "hottok-aaaa") " }\n",
     "accounts[2].api_token", "same value as accounts[1].hottok"},
    {"accounts = { " ACCOUNT("a", "short", "token-aaaa") " }\n", "accounts[1].hottok",
     "shorter than 8 characters"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "") " }\n", "accounts[1].api_token", "shorter than 8"},
    {"accounts = { " ACCOUNT("a", "ENV:LB_TEST_HOTTOK", "token-aaaa") " }\n", "accounts[1].hottok",
     "lower case"},
    {"accounts = { " ACCOUNT("a", "env:LB_TEST_UNSET", "token-aaaa") " }\n", "accounts[1].hottok",
     "environment variable LB_TEST_UNSET is not set"},
    {"accounts = { " ACCOUNT("a", "env:LB_TEST_EMPTY", "token-aaaa") " }\n", "accounts[1].hottok",
     "environment variable LB_TEST_EMPTY is empty"},
    {"accounts = { " ACCOUNT("a", "env:LB_TEST_SHORT", "token-aaaa") " }\n", "accounts[1].hottok",
     "environment variable LB_TEST_SHORT is shorter than 8"},
    {"accounts = { " ACCOUNT("a", "env:", "token-aaaa") " }\n", "accounts[1].hottok", "needs a variable name"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "file:/nonexistent/api_token") " }\n",
     "accounts[1].api_token", "cannot open secret file /nonexistent/api_token"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "file:") " }\n", "accounts[1].api_token", "needs a path"},
    {"accounts = { " ACCOUNT("a", "hottok-aaaa", "file:/") " }\n", "accounts[1].api_token",
     "not a regular file"},
};

START_TEST(bad_account_rejected)
{
    expect_error(bad_accounts[_i].src, bad_accounts[_i].field, bad_accounts[_i].msg);
}
END_TEST

/* With several unknown keys the report must not depend on hash order. */
START_TEST(first_unknown_key_reported_alphabetically)
{
    expect_error("zeta = 1\nalpha = 2\nmid = 3\n" ACC, "alpha", "unknown key");
}
END_TEST

/* ---- secrets from files ------------------------------------------------------ */

START_TEST(file_secret_strips_one_newline)
{
    lb_error err;
    lb_config *cfg = load_with_hottok_file("file-hottok-1\n", 14, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->accounts[0].hottok, "file-hottok-1");
    lb_config_free(cfg);

    cfg = load_with_hottok_file("file-hottok-2\n\n", 15, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->accounts[0].hottok, "file-hottok-2\n");
    lb_config_free(cfg);
}
END_TEST

START_TEST(file_secret_crlf_and_no_newline)
{
    lb_error err;
    lb_config *cfg = load_with_hottok_file("file-hottok-3\r\n", 15, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->accounts[0].hottok, "file-hottok-3");
    lb_config_free(cfg);

    cfg = load_with_hottok_file("file-hottok-4", 13, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(cfg->accounts[0].hottok, "file-hottok-4");
    lb_config_free(cfg);
}
END_TEST

START_TEST(file_secret_empty_rejected)
{
    lb_error err;
    ck_assert_ptr_null(load_with_hottok_file("\n", 1, &err));
    ck_assert_str_eq(err.field, "accounts[1].hottok");
    ck_assert_ptr_nonnull(strstr(err.message, "is empty"));
}
END_TEST

START_TEST(file_secret_too_large_rejected)
{
    size_t len = LB_SECRET_FILE_MAX + 1;
    char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', len);
    lb_error err;
    lb_config *cfg = load_with_hottok_file(big, len, &err);
    free(big);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.field, "accounts[1].hottok");
    ck_assert_ptr_nonnull(strstr(err.message, "larger than 64 KiB"));
}
END_TEST

START_TEST(file_secret_at_cap_accepted)
{
    size_t len = LB_SECRET_FILE_MAX;
    char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', len);
    lb_error err;
    lb_config *cfg = load_with_hottok_file(big, len, &err);
    free(big);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    ck_assert_uint_eq(strlen(cfg->accounts[0].hottok), LB_SECRET_FILE_MAX);
    lb_config_free(cfg);
}
END_TEST

START_TEST(file_secret_short_content_not_quoted)
{
    lb_error err;
    ck_assert_ptr_null(load_with_hottok_file("s3cr\n", 5, &err));
    ck_assert_str_eq(err.field, "accounts[1].hottok");
    ck_assert_ptr_nonnull(strstr(err.message, "shorter than 8"));
    ck_assert_ptr_null(strstr(err.message, "s3cr"));
}
END_TEST

/* ---- Lua errors ----------------------------------------------------------------- */

START_TEST(syntax_error_has_line)
{
    expect_error("listen = '127.0.0.1:8080'\n\nx = = 1\n", "", "test.lua:3:");
    expect_error("accounts = {\n", "", "test.lua:2:");
}
END_TEST

START_TEST(runtime_error_has_line_and_message)
{
    expect_error(ACC "error('no database for you')\n", "", "test.lua:2: no database for you");
    expect_error("local t = nil\nlisten = t.addr\n", "", "test.lua:2: attempt to index a nil value");
}
END_TEST

START_TEST(non_string_error_value_reported)
{
    expect_error("error({})\n", "", "error value of type table");
}
END_TEST

START_TEST(binary_chunk_refused)
{
    expect_error("\x1bLua\x54", "", "binary chunk");
}
END_TEST

START_TEST(default_chunk_name)
{
    lb_error err;
    ck_assert_ptr_null(lb_config_load_string("x = = 1", NULL, &err));
    ck_assert_msg(strncmp(err.message, "config:1:", 9) == 0, "%s", err.message);
    /* a NULL err is allowed and must not crash */
    ck_assert_ptr_null(lb_config_load_string("x = = 1", NULL, NULL));
    lb_config_free(NULL);
}
END_TEST

/* ---- the sandbox -------------------------------------------------------------- */

static const struct {
    const char *src;
    const char *msg;
} forbidden[] = {
    {"local f = io.open('/etc/passwd')", "global 'io'"},
    {"os.exit(3)", "global 'os'"},
    {"local m = require('os')", "global 'require'"},
    {"local f = load('return 1')", "global 'load'"},
    {"local f = loadfile('/etc/passwd')", "global 'loadfile'"},
    {"dofile('/etc/passwd')", "global 'dofile'"},
    {"print('hello')", "global 'print'"},
    {"package.loaded.os.exit(3)", "global 'package'"},
    {"local r = debug.getregistry()", "global 'debug'"},
    {"collectgarbage('stop')", "global 'collectgarbage'"},
    {"setmetatable(_ENV, nil)", "global 'setmetatable'"},
    {"local mt = getmetatable('')", "global 'getmetatable'"},
    {"rawset(_ENV, 'x', 1)", "global 'rawset'"},
    {"local f = string.dump(function() end)", "field 'dump'"},
    {"local co = coroutine.create(function() end)", "global 'coroutine'"},
    {"local g = _G.os", "global '_G'"},
};

START_TEST(sandbox_denies)
{
    char src[512];
    snprintf(src, sizeof src, ACC "%s\n", forbidden[_i].src);
    expect_error(src, "", forbidden[_i].msg);
}
END_TEST

START_TEST(infinite_loop_stopped)
{
    expect_error("while true do end\n", "", "loop forever");
}
END_TEST

/* pcall must not let a config swallow the budget error and keep spinning. */
START_TEST(infinite_loop_behind_pcall_stopped)
{
    expect_error("while true do pcall(function() while true do end end) end\n", "", "loop forever");
}
END_TEST

START_TEST(memory_bomb_stopped)
{
    expect_error("local s = string.rep('x', 1 << 30)\n", "", "more than 16 MiB");
    expect_error("local t = {} for i = 1, 1e9 do t[i] = i end\n", "", "memory");
}
END_TEST

/* A caught memory error leaves a usable state: the limit is per allocation
 * attempt, not a poison. */
START_TEST(caught_memory_error_still_loads)
{
    lb_error err;
    lb_config *cfg = load("assert(not pcall(string.rep, 'x', 1 << 30))\n" ACC, &err);
    ck_assert_msg(cfg != NULL, "%s: %s", err.field, err.message);
    lb_config_free(cfg);
}
END_TEST

/* ---- secrets never appear in errors ------------------------------------------- */

#define SECRET "SECRETVALUE-0123"

static const char *const leaky[] = {
    "accounts = { " ACCOUNT("a", SECRET, SECRET) " }\n",
    "accounts = { " ACCOUNT("a", SECRET, "token-aaaa") ", " ACCOUNT("b", SECRET, "token-bbbb") " }\n",
    "accounts = { " ACCOUNT("a", "hottok-aaaa", SECRET) ", " ACCOUNT("b", "hottok-bbbb", SECRET) " }\n",
    "accounts = { " ACCOUNT("A", SECRET, "token-aaaa") " }\n",
    "accounts = { { id = 'a', hottok = '" SECRET "', api_token = 'token-aaaa', hotok = '" SECRET "' } }\n",
    "accounts = { { id = 'a', hottok = '" SECRET "', api_token = 42 } }\n",
    "accounts = { { id = 'a', hottok = '" SECRET "' '" SECRET "' } }\n",
    "accounts = { { id = 'a', hottok = [[" SECRET "]] [[x]] } }\n",
    "accounts = { { id = 'a', hottok = '" SECRET "\n",
    "local h = '" SECRET "' & 1\n",
    "local h = '" SECRET "'\naccounts = { { id = 'a', hottok = h, api_token = 'x' } }\n",
    "accounts = { " ACCOUNT("a", "ENV:" SECRET, "token-aaaa") " }\n",
};

START_TEST(error_never_contains_secret)
{
    lb_error err;
    lb_config *cfg = load(leaky[_i], &err);
    ck_assert_msg(cfg == NULL, "case %d loaded", _i);
    ck_assert(err.message[0] != '\0');
    ck_assert_msg(strstr(err.message, "SECRETVALUE") == NULL, "leak: %s", err.message);
    ck_assert_msg(strstr(err.field, "SECRETVALUE") == NULL, "leak in field: %s", err.field);
}
END_TEST

/* ---- the secret API directly ------------------------------------------------- */

START_TEST(secret_resolve_forms)
{
    lb_error err;
    char *s = lb_secret_resolve("literal-secret", "f", &err);
    ck_assert_str_eq(s, "literal-secret");
    lb_secret_free(s);
    s = lb_secret_resolve("env:LB_TEST_HOTTOK", "f", &err);
    ck_assert_str_eq(s, "env-hottok-1234");
    lb_secret_free(s);
    ck_assert_ptr_null(lb_secret_resolve("1234567", "the.field", &err));
    ck_assert_str_eq(err.field, "the.field");
    s = lb_secret_resolve("12345678", "f", &err);
    ck_assert_str_eq(s, "12345678");
    lb_secret_free(s);
    lb_secret_free(NULL);
}
END_TEST

/* ---- suite -------------------------------------------------------------------- */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static TCase *valid_tcase(void)
{
    TCase *tc = tcase_create("valid");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, demo_loads_with_defaults);
    tcase_add_test(tc, minimal_config_gets_defaults);
    tcase_add_test(tc, every_key_parsed);
    tcase_add_loop_test(tc, max_body_forms_parse, 0, N(max_body_forms));
    tcase_add_loop_test(tc, log_levels_accepted, 0, N(valid_levels));
    tcase_add_test(tc, ipv6_listen_in_brackets);
    tcase_add_test(tc, locals_and_helpers_usable);
    tcase_add_test(tc, example_config_loads_with_env);
    tcase_add_test(tc, example_config_without_env_names_variable);
    tcase_add_test(tc, missing_file_names_path);
    tcase_add_test(tc, file_with_nul_byte_rejected);
    tcase_add_test(tc, file_errors_carry_file_name_and_line);
    return tc;
}

static TCase *invalid_tcase(void)
{
    TCase *tc = tcase_create("invalid");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_loop_test(tc, bad_scalar_rejected, 0, N(bad_scalars));
    tcase_add_loop_test(tc, bad_account_rejected, 0, N(bad_accounts));
    tcase_add_test(tc, first_unknown_key_reported_alphabetically);
    return tc;
}

static TCase *secrets_tcase(void)
{
    TCase *tc = tcase_create("secrets");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, file_secret_strips_one_newline);
    tcase_add_test(tc, file_secret_crlf_and_no_newline);
    tcase_add_test(tc, file_secret_empty_rejected);
    tcase_add_test(tc, file_secret_too_large_rejected);
    tcase_add_test(tc, file_secret_at_cap_accepted);
    tcase_add_test(tc, file_secret_short_content_not_quoted);
    tcase_add_loop_test(tc, error_never_contains_secret, 0, N(leaky));
    tcase_add_test(tc, secret_resolve_forms);
    return tc;
}

static TCase *lua_tcase(void)
{
    TCase *tc = tcase_create("lua");
    tcase_add_test(tc, syntax_error_has_line);
    tcase_add_test(tc, runtime_error_has_line_and_message);
    tcase_add_test(tc, non_string_error_value_reported);
    tcase_add_test(tc, binary_chunk_refused);
    tcase_add_test(tc, default_chunk_name);
    tcase_add_loop_test(tc, sandbox_denies, 0, N(forbidden));
    tcase_add_test(tc, infinite_loop_stopped);
    tcase_add_test(tc, infinite_loop_behind_pcall_stopped);
    tcase_add_test(tc, memory_bomb_stopped);
    tcase_add_test(tc, caught_memory_error_still_loads);
    /* the budgets must trip well inside this even under sanitizers */
    tcase_set_timeout(tc, 30);
    return tc;
}

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    suite_add_tcase(s, valid_tcase());
    suite_add_tcase(s, invalid_tcase());
    suite_add_tcase(s, secrets_tcase());
    suite_add_tcase(s, lua_tcase());
    return s;
}

int main(void)
{
    return lb_run_suite_tap(make_suite());
}
