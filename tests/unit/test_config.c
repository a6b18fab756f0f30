/* test_config.c: the Lua config loader, its validation, the secret references
 * and the sandbox. Each table-driven case is its own Check loop iteration, so
 * it is reported (and can fail) as its own TAP line. */
/* Spelled with its directory: in an automake build "-I." precedes -Icore and
 * the top build directory holds autoconf's own config.h. */
#include "../../core/config.h"

#include "secret.h"
#include "tap.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A valid accounts block for tests about other keys. */
#define ACC "accounts = { { id = \"a\", hottok = \"hottok-aaaa\", api_token = \"token-aaaa\" } }\n"
#define ACCOUNT(id, hot, api) "{ id = \"" id "\", hottok = \"" hot "\", api_token = \"" api "\" }"
/* One account with more keys (integrations, segmentations) after the secrets. */
#define ACC_WITH(extra) "accounts = { { id = 'a', hottok = 'hottok-aaaa', api_token = 'token-aaaa', " extra " } }\n"
#define INTEG_MC "integrations = { { id = 'mc', provider = 'sandbox' } }"
/* A valid segmentation body for tests that change one key of it. */
#define SEG_OK                                                                                                 \
    "name = 'buyers', product = '4123456', trigger = 'purchase_approved', integration = 'mc', "               \
    "actions = { { action = 'tag_add', params = { tag = 'x' } } }"
/* The one segmentation SEG_OK after the Lua statements `mod` changed it
 * through the local s, e.g. SEG_WITH("s.name = nil"). */
#define SEG_WITH(mod) "local s = { " SEG_OK " }\n" mod "\n" ACC_WITH(INTEG_MC ", segmentations = { s }")
/* The one integration { id = 'mc', provider = 'sandbox' } after `mod` (on i). */
#define INTEG_WITH(mod) "local i = { id = 'mc', provider = 'sandbox' }\n" mod "\n" ACC_WITH("integrations = { i }")
#define SEG1 "accounts[1].segmentations[1]"
#define INT1 "accounts[1].integrations[1]"

/* The folders the loader defaults to: the same macros the build passes it. */
#ifdef LB_PLUGINDIR
#define WANT_PLUGIN_DIR LB_PLUGINDIR
#else
#define WANT_PLUGIN_DIR "plugins"
#endif
#ifdef LB_RULESDIR
#define WANT_RULES_DIR LB_RULESDIR
#else
#define WANT_RULES_DIR "rules"
#endif

/* ---- helpers ------------------------------------------------------------ */

static lb_config *load(const char *src, lb_error *err)
{
    return lb_config_load_string(src, "test.lua", err);
}

/* Loads src, which must succeed. */
static lb_config *load_ok(const char *src)
{
    lb_error err;
    lb_config *cfg = load(src, &err);
    ck_assert_msg(cfg != NULL, "%s: %s (config: %s)", err.field, err.message, src);
    return cfg;
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

#define SCAN_ACCOUNTS "\naccounts = { { id = 'a', hottok = 'hottok-aaaaaaaa', api_token = 'token-aaaaaaaa' } }"

START_TEST(club_scan_interval_default_value_and_errors)
{
    lb_error err = {0};
    lb_config *cfg = lb_config_load_string(SCAN_ACCOUNTS, "=t", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->club_scan_interval_s, 60);
    lb_config_free(cfg);
    cfg = lb_config_load_string("club_scan_interval = 5" SCAN_ACCOUNTS, "=t", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->club_scan_interval_s, 5);
    lb_config_free(cfg);
    static const char *const bad[] = {"club_scan_interval = 0", "club_scan_interval = 86401",
                                      "club_scan_interval = 1.5", "club_scan_interval = '10'",
                                      "club_scan_interval = -3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char chunk[256];
        snprintf(chunk, sizeof chunk, "%s%s", bad[i], SCAN_ACCOUNTS);
        lb_error_clear(&err);
        ck_assert_msg(lb_config_load_string(chunk, "=t", &err) == NULL, "accepted: %s", bad[i]);
        ck_assert_str_eq(err.field, "club_scan_interval");
    }
}
END_TEST

START_TEST(max_connections_default_value_and_errors)
{
    lb_error err = {0};
    lb_config *cfg = lb_config_load_string(SCAN_ACCOUNTS, "=t", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->max_connections, 10000);
    lb_config_free(cfg);
    cfg = lb_config_load_string("max_connections = 16" SCAN_ACCOUNTS, "=t", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->max_connections, 16);
    lb_config_free(cfg);
    static const char *const bad[] = {"max_connections = 15", "max_connections = 1000001", "max_connections = 1e3 + 0.5",
                                      "max_connections = '100'", "max_connections = -1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char chunk[256];
        snprintf(chunk, sizeof chunk, "%s%s", bad[i], SCAN_ACCOUNTS);
        lb_error_clear(&err);
        ck_assert_msg(lb_config_load_string(chunk, "=t", &err) == NULL, "accepted: %s", bad[i]);
        ck_assert_str_eq(err.field, "max_connections");
    }
}
END_TEST

START_TEST(environment_moves_the_folder_defaults_only)
{
    lb_error err = {0};
    setenv("LISTBOSS_PLUGIN_DIR", "/tmp/p", 1);
    setenv("LISTBOSS_RULES_DIR", "/tmp/r", 1);
    lb_config *cfg = lb_config_load_string(lb_config_demo, "=demo", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->plugin_dir, "/tmp/p");
    ck_assert_str_eq(cfg->rules_dir, "/tmp/r");
    lb_config_free(cfg);
    cfg = lb_config_load_string("rules_dir = 'mine'\naccounts = { { id = 'a', hottok = 'hottok-aaaaaaaa',"
                                " api_token = 'token-aaaaaaaa' } }",
                                "=t", &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->rules_dir, "mine");
    ck_assert_str_eq(cfg->plugin_dir, "/tmp/p");
    lb_config_free(cfg);
    unsetenv("LISTBOSS_PLUGIN_DIR");
    unsetenv("LISTBOSS_RULES_DIR");
}
END_TEST

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
    ck_assert_str_eq(cfg->plugin_dir, WANT_PLUGIN_DIR);
    ck_assert_str_eq(cfg->rules_dir, WANT_RULES_DIR);
    ck_assert_ptr_null(cfg->custom_rules_dir);
    lb_config_free(cfg);
}
END_TEST

/* The demo drives the sandbox provider from the Hotmart fixtures' product. */
START_TEST(demo_has_sandbox_integration_and_segmentations)
{
    lb_config *cfg = lb_config_load_string(lb_config_demo, "demo", NULL);
    ck_assert_ptr_nonnull(cfg);
    const lb_account *acc = &cfg->accounts[0];
    ck_assert_uint_eq(acc->n_integrations, 1);
    ck_assert_str_eq(acc->integrations[0].id, "sandbox");
    ck_assert_str_eq(acc->integrations[0].provider, "sandbox");
    ck_assert_uint_eq(acc->integrations[0].n_settings, 0);
    ck_assert(acc->integrations[0].rate_per_s == 0);
    ck_assert_uint_eq(acc->integrations[0].burst, 0);
    ck_assert_uint_eq(acc->integrations[0].concurrency, 0);
    ck_assert_str_eq(acc->segmentations_json,
                     "[{\"name\":\"buyers\",\"product\":\"4123456\","
                     "\"trigger\":{\"id\":\"purchase_approved\",\"params\":{}},\"conditions\":[],"
                     "\"integration\":\"sandbox\",\"actions\":["
                     "{\"action\":\"list_add\",\"params\":{\"list\":\"buyers\"}},"
                     "{\"action\":\"tag_add\",\"params\":{\"tag\":\"customer\"}}],"
                     "\"options\":{},\"enabled\":true},"
                     "{\"name\":\"refunds\",\"product\":\"4123456\","
                     "\"trigger\":{\"id\":\"purchase_refunded\",\"params\":{}},\"conditions\":[],"
                     "\"integration\":\"sandbox\",\"actions\":["
                     "{\"action\":\"tag_remove\",\"params\":{\"tag\":\"customer\"}},"
                     "{\"action\":\"tag_add\",\"params\":{\"tag\":\"refunded\"}}],"
                     "\"options\":{},\"enabled\":true}]");
    /* and it is JSON a parser accepts, not merely the string above */
    json_object *doc = json_tokener_parse(acc->segmentations_json);
    ck_assert_ptr_nonnull(doc);
    ck_assert_uint_eq(json_object_array_length(doc), 2);
    json_object_put(doc);
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
    ck_assert_str_eq(cfg->plugin_dir, WANT_PLUGIN_DIR);
    ck_assert_str_eq(cfg->rules_dir, WANT_RULES_DIR);
    ck_assert_ptr_null(cfg->custom_rules_dir);
    ck_assert_uint_eq(cfg->accounts[0].n_integrations, 0);
    ck_assert_ptr_null(cfg->accounts[0].integrations);
    ck_assert_ptr_null(cfg->accounts[0].segmentations_json);
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
        "plugin_dir = '/opt/lb/plugins'\n"
        "rules_dir = '/opt/lb/rules'\n"
        "custom_rules_dir = '/etc/lb/custom'\n"
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
    ck_assert_str_eq(cfg->plugin_dir, "/opt/lb/plugins");
    ck_assert_str_eq(cfg->rules_dir, "/opt/lb/rules");
    ck_assert_str_eq(cfg->custom_rules_dir, "/etc/lb/custom");
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
    const lb_account *acc = &cfg->accounts[0];
    ck_assert_uint_eq(acc->n_integrations, 1);
    ck_assert_str_eq(acc->integrations[0].id, "local");
    ck_assert_str_eq(acc->integrations[0].provider, "sandbox");
    ck_assert_ptr_nonnull(acc->segmentations_json);
    ck_assert_ptr_nonnull(strstr(acc->segmentations_json, "\"name\":\"buyers\",\"product\":\"4123456\""));
    ck_assert_ptr_nonnull(strstr(acc->segmentations_json, "\"integration\":\"local\""));
    ck_assert_ptr_nonnull(
        strstr(acc->segmentations_json, "{\"id\":\"payment_method\",\"params\":{\"in\":[\"CREDIT_CARD\",\"PIX\"]}}"));
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

/* ---- integrations -------------------------------------------------------------- */

START_TEST(integration_every_key_parsed)
{
    static const char src[] = ACC_WITH(
        "integrations = {\n"
        "  { id = 'mc', provider = 'mailchimp', rate = 2.5, burst = 10, concurrency = 1024,\n"
        "    settings = { base_url = 'http://127.0.0.1:9000/3.0', api_key = 'env:LB_TEST_HOTTOK',\n"
        "      token = 'file:/nonexistent/key', unset = 'env:LB_TEST_UNSET', n = 42, f = 2.5, w = 10.0,\n"
        "      neg = -3, yes = true, no = false, empty = '' } },\n"
        "  { id = 'kit-2', provider = 'convert_kit', rate = 1 },\n"
        "}");
    lb_config *cfg = load_ok(src);
    const lb_account *acc = &cfg->accounts[0];
    ck_assert_uint_eq(acc->n_integrations, 2);
    const lb_integration_config *mc = &acc->integrations[0];
    ck_assert_str_eq(mc->id, "mc");
    ck_assert_str_eq(mc->provider, "mailchimp");
    ck_assert(mc->rate_per_s == 2.5);
    ck_assert_uint_eq(mc->burst, 10);
    ck_assert_uint_eq(mc->concurrency, 1024);
    /* sorted by name; references kept as written, never resolved here */
    static const char *const want[][2] = {
        {"api_key", "env:LB_TEST_HOTTOK"}, {"base_url", "http://127.0.0.1:9000/3.0"}, {"empty", ""},
        {"f", "2.5"}, {"n", "42"}, {"neg", "-3"}, {"no", "false"}, {"token", "file:/nonexistent/key"},
        {"unset", "env:LB_TEST_UNSET"}, {"w", "10"}, {"yes", "true"},
    };
    ck_assert_uint_eq(mc->n_settings, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < mc->n_settings; i++) {
        ck_assert_str_eq(mc->keys[i], want[i][0]);
        ck_assert_str_eq(mc->values[i], want[i][1]);
    }
    const lb_integration_config *kit = &acc->integrations[1];
    ck_assert_str_eq(kit->id, "kit-2");
    ck_assert_str_eq(kit->provider, "convert_kit");
    ck_assert_uint_eq(kit->n_settings, 0);
    ck_assert(kit->rate_per_s == 1);
    ck_assert_uint_eq(kit->burst, 0);
    ck_assert_uint_eq(kit->concurrency, 0);
    ck_assert_ptr_null(acc->segmentations_json);
    lb_config_free(cfg);
}
END_TEST

/* Ids and names are unique per account, not across accounts. */
START_TEST(same_ids_in_two_accounts_allowed)
{
    static const char src[] =
        "local function acc(id)\n"
        "  return { id = id, hottok = 'hottok-' .. id, api_token = 'token-' .. id, " INTEG_MC ",\n"
        "    segmentations = { { " SEG_OK " } } }\n"
        "end\n"
        "accounts = { acc('one1'), acc('two2') }\n";
    lb_config *cfg = load_ok(src);
    ck_assert_str_eq(cfg->accounts[0].integrations[0].id, "mc");
    ck_assert_str_eq(cfg->accounts[1].integrations[0].id, "mc");
    ck_assert_str_eq(cfg->accounts[0].segmentations_json, cfg->accounts[1].segmentations_json);
    lb_config_free(cfg);
}
END_TEST

START_TEST(empty_lists_declare_nothing)
{
    lb_config *cfg = load_ok(ACC_WITH("integrations = {}, segmentations = {}"));
    ck_assert_uint_eq(cfg->accounts[0].n_integrations, 0);
    ck_assert_ptr_null(cfg->accounts[0].segmentations_json);
    lb_config_free(cfg);
}
END_TEST

/* ---- segmentations --------------------------------------------------------------- */

START_TEST(segmentation_every_key_json)
{
    static const char src[] =
        "local vip = {\n"
        "  name = 'VIP buyers 2.0', product = 4123456,\n"
        "  trigger = { id = 'club_progress', params = { percent = 50 } },\n"
        "  conditions = { { id = 'payment_method', params = { ['in'] = { 'CREDIT_CARD', 'PIX' } } },\n"
        "                 { id = 'offer' } },\n"
        "  custom = { file = 'vip.lua' },\n"
        "  integration = 'mc2',\n"
        "  actions = { { action = 'list_add', params = { list = '57afe96172' } },\n"
        "              { action = 'tag_add', params = { tag = 'buyer' } } },\n"
        "  options = { delay = 30, note = 'x' },\n"
        "  enabled = false,\n"
        "}\n"
        "local inline = { name = 'b', product = 4123456.0, trigger = 'purchase_approved', integration = 'mc',\n"
        "  custom = { inline = 'return true' }, actions = { { action = 'tag_add' } }, enabled = true }\n" ACC_WITH(
            "integrations = { { id = 'mc', provider = 'sandbox' }, { id = 'mc2', provider = 'sandbox' } },"
            " segmentations = { vip, inline }");
    lb_config *cfg = load_ok(src);
    ck_assert_str_eq(cfg->accounts[0].segmentations_json,
                     "[{\"name\":\"VIP buyers 2.0\",\"product\":\"4123456\","
                     "\"trigger\":{\"id\":\"club_progress\",\"params\":{\"percent\":50}},"
                     "\"conditions\":[{\"id\":\"payment_method\",\"params\":{\"in\":[\"CREDIT_CARD\",\"PIX\"]}},"
                     "{\"id\":\"offer\",\"params\":{}}],"
                     "\"custom\":{\"file\":\"vip.lua\"},\"integration\":\"mc2\","
                     "\"actions\":[{\"action\":\"list_add\",\"params\":{\"list\":\"57afe96172\"}},"
                     "{\"action\":\"tag_add\",\"params\":{\"tag\":\"buyer\"}}],"
                     "\"options\":{\"delay\":30,\"note\":\"x\"},\"enabled\":false},"
                     "{\"name\":\"b\",\"product\":\"4123456\","
                     "\"trigger\":{\"id\":\"purchase_approved\",\"params\":{}},\"conditions\":[],"
                     "\"custom\":{\"inline\":\"return true\"},\"integration\":\"mc\","
                     "\"actions\":[{\"action\":\"tag_add\",\"params\":{}}],\"options\":{},\"enabled\":true}]");
    lb_config_free(cfg);
}
END_TEST

/* Values go through as JSON would carry them: escapes are json-c's job. */
START_TEST(segmentation_strings_escaped)
{
    lb_config *cfg = load_ok(SEG_WITH("s.name = 'a \"q\"' s.name = 'ok'\n"
                                      "s.actions[1].params = { tag = 'a\"b\\\\c/d\\n\\1' }"));
    ck_assert_ptr_nonnull(
        strstr(cfg->accounts[0].segmentations_json, "\"params\":{\"tag\":\"a\\\"b\\\\c/d\\n\\u0001\"}"));
    lb_config_free(cfg);
}
END_TEST

/* Each row: a Lua params expression and the JSON it must become. */
static const struct {
    const char *lua;
    const char *json;
} param_forms[] = {
    {"{}", "{}"},
    {"{ s = 'x' }", "{\"s\":\"x\"}"},
    {"{ s = '' }", "{\"s\":\"\"}"},
    {"{ s = 'ação' }", "{\"s\":\"ação\"}"},
    {"{ i = 42, n = -7, z = 0 }", "{\"i\":42,\"n\":-7,\"z\":0}"},
    {"{ big = math.maxinteger, small = math.mininteger }",
     "{\"big\":9223372036854775807,\"small\":-9223372036854775808}"},
    {"{ f = 2.5, g = 0.1, h = -1e-7 }", "{\"f\":2.5,\"g\":0.1,\"h\":-1e-07}"},
    {"{ w = 10.0, p = 2^53 }", "{\"p\":9007199254740992,\"w\":10}"},
    {"{ e = 1e19, t = 1e300 }", "{\"e\":1e+19,\"t\":1e+300}"},
    {"{ third = 1/3 }", "{\"third\":0.3333333333333333}"},
    {"{ b = true, c = false }", "{\"b\":true,\"c\":false}"},
    {"{ l = { 'A', 'B' } }", "{\"l\":[\"A\",\"B\"]}"},
    {"{ l = { 1, 'two', true, 4.5 } }", "{\"l\":[1,\"two\",true,4.5]}"},
    {"{ o = { k = 1, j = { 'x' } } }", "{\"o\":{\"j\":[\"x\"],\"k\":1}}"},
    {"{ e = {} }", "{\"e\":{}}"},
    {"{ l = { { a = 1 }, { 2, 3 }, {} } }", "{\"l\":[{\"a\":1},[2,3],{}]}"},
    {"{ z = 1, a = 2, m = 3, A = 4, ['with space'] = 5 }", "{\"A\":4,\"a\":2,\"m\":3,\"with space\":5,\"z\":1}"},
    {"{ ['1'] = 'string key, not an index' }", "{\"1\":\"string key, not an index\"}"},
    /* the deepest allowed: the params table and 7 nested ones */
    {"(function() local p = {} local c = p for _ = 1, 7 do c.x = {} c = c.x end return p end)()",
     "{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{}}}}}}}}"},
    /* one shared table twice is fine: it is counted twice against the size budget */
    {"(function() local t = { 1 } return { a = t, b = t } end)()", "{\"a\":[1],\"b\":[1]}"},
};

START_TEST(params_convert)
{
    char src[1024], want[512];
    snprintf(src, sizeof src, "local p = %s\n%s", param_forms[_i].lua,
             SEG_WITH("s.actions = { { action = 'x', params = p } }"));
    snprintf(want, sizeof want,
             "[{\"name\":\"buyers\",\"product\":\"4123456\","
             "\"trigger\":{\"id\":\"purchase_approved\",\"params\":{}},\"conditions\":[],\"integration\":\"mc\","
             "\"actions\":[{\"action\":\"x\",\"params\":%s}],\"options\":{},\"enabled\":true}]",
             param_forms[_i].json);
    lb_config *cfg = load_ok(src);
    ck_assert_str_eq(cfg->accounts[0].segmentations_json, want);
    lb_config_free(cfg);
}
END_TEST

/* Options and trigger params take the same conversion. */
START_TEST(options_and_trigger_params_convert)
{
    lb_config *cfg = load_ok(SEG_WITH("s.options = { delay = 1.5, tags = { 'a' } }\n"
                                      "s.trigger = { id = 'club_progress', params = { percent = 50.0 } }"));
    const char *json = cfg->accounts[0].segmentations_json;
    ck_assert_ptr_nonnull(strstr(json, "\"trigger\":{\"id\":\"club_progress\",\"params\":{\"percent\":50}}"));
    ck_assert_ptr_nonnull(strstr(json, "\"options\":{\"delay\":1.5,\"tags\":[\"a\"]}"));
    lb_config_free(cfg);
}
END_TEST

/* A memory error raised while the segmentation JSON is half built (here: the
 * sorted-keys array of a 5000-key params table, once the config has eaten
 * all but a few bytes of its budget) must free that JSON: ASan's leak
 * check fails the run otherwise. */
START_TEST(memory_error_mid_segmentation_frees_json)
{
    static const char src[] =
        "local p = {} for i = 1, 5000 do p['k' .. i] = i end\n"
        "p.hog = {}\n"
        "local s = { " SEG_OK " }\n"
        "s.actions[1].params = p\n" ACC_WITH(INTEG_MC ", segmentations = { s }")
        "local function grab(n) p.hog[#p.hog + 1] = string.rep('x', n) end\n"
        "local size = 1 << 20\n"
        "while size >= 16 do\n"
        "  if not pcall(grab, size) then size = size // 2 end\n"
        "end\n";
    expect_error(src, "", "more than 16 MiB");
}
END_TEST

/* ---- new keys: errors ---------------------------------------------------------- */

static const struct bad_case bad_dirs[] = {
    {"plugin_dir = 5\n" ACC, "plugin_dir", "expected a string, got number"},
    {"plugin_dir = ''\n" ACC, "plugin_dir", "must not be empty"},
    {"rules_dir = {}\n" ACC, "rules_dir", "expected a string, got table"},
    {"rules_dir = ''\n" ACC, "rules_dir", "must not be empty"},
    {"rules_dir = 'a\\0b'\n" ACC, "rules_dir", "NUL"},
    {"custom_rules_dir = ''\n" ACC, "custom_rules_dir", "must not be empty"},
    {"custom_rules_dir = false\n" ACC, "custom_rules_dir", "expected a string, got boolean"},
    {"plugins_dir = 'x'\n" ACC, "plugins_dir", "unknown key"},
};

START_TEST(bad_dir_rejected)
{
    expect_error(bad_dirs[_i].src, bad_dirs[_i].field, bad_dirs[_i].msg);
}
END_TEST

static const struct bad_case bad_integrations[] = {
    {ACC_WITH("integrations = 'mc'"), "accounts[1].integrations", "expected a list"},
    {ACC_WITH("integrations = { x = {} }"), "accounts[1].integrations", "without named keys or gaps"},
    {ACC_WITH("integrations = { [2] = {} }"), "accounts[1].integrations", "without named keys or gaps"},
    {ACC_WITH("integrations = { 'mc' }"), INT1, "expected a table { id = ..., provider = ... }, got string"},
    {ACC_WITH("integrations = { { id = 'mc', provider = 'sandbox' }, 5 }"), "accounts[1].integrations[2]",
     "expected a table"},
    {ACC_WITH("integrationz = {}"), "accounts[1].integrationz", "unknown key"},
    {INTEG_WITH("i.rates = 1"), INT1 ".rates", "unknown key"},
    {INTEG_WITH("i[1] = 'x'"), INT1, "keys must be names, found a number key"},
    {INTEG_WITH("i.id = nil"), INT1 ".id", "is required"},
    {INTEG_WITH("i.id = 7"), INT1 ".id", "expected a string, got number"},
    {INTEG_WITH("i.id = 'MC'"), INT1 ".id", "must be 1 to 64 characters from a-z, 0-9, '_' and '-'"},
    {INTEG_WITH("i.id = ''"), INT1 ".id", "must be 1 to 64"},
    {INTEG_WITH("i.id = 'm c'"), INT1 ".id", "must be 1 to 64"},
    {INTEG_WITH("i.id = string.rep('a', 65)"), INT1 ".id", "must be 1 to 64"},
    {INTEG_WITH("i.provider = nil"), INT1 ".provider", "is required"},
    {INTEG_WITH("i.provider = true"), INT1 ".provider", "expected a string, got boolean"},
    {INTEG_WITH("i.provider = 'mail-chimp'"), INT1 ".provider", "must be 1 to 64 characters from a-z, 0-9 and '_'"},
    {INTEG_WITH("i.provider = 'Mailchimp'"), INT1 ".provider", "must be 1 to 64"},
    {INTEG_WITH("i.provider = ''"), INT1 ".provider", "must be 1 to 64"},
    {ACC_WITH("integrations = { { id = 'mc', provider = 'a' }, { id = 'mc', provider = 'b' } }"),
     "accounts[1].integrations[2].id", "duplicate integration id \"mc\" (also accounts[1].integrations[1])"},
    {INTEG_WITH("i.settings = 'api_key=x'"), INT1 ".settings",
     "expected a table of names to strings, numbers or booleans, got string"},
    {INTEG_WITH("i.settings = { 'x' }"), INT1 ".settings", "keys must be names, found a number key"},
    {INTEG_WITH("i.settings = { [true] = 'x' }"), INT1 ".settings", "keys must be names, found a boolean key"},
    {INTEG_WITH("i.settings = { [''] = 'x' }"), INT1 ".settings", "a setting name must not be empty"},
    {INTEG_WITH("i.settings = { ['a\\0b'] = 'x' }"), INT1 ".settings", "keys must not contain NUL bytes"},
    {INTEG_WITH("i.settings = { k = {} }"), INT1 ".settings.k", "expected a string, number or boolean, got table"},
    {INTEG_WITH("i.settings = { k = function() end }"), INT1 ".settings.k", "got function"},
    {INTEG_WITH("i.settings = { k = 0/0 }"), INT1 ".settings.k", "must be a finite number"},
    {INTEG_WITH("i.settings = { k = -math.huge }"), INT1 ".settings.k", "must be a finite number"},
    {INTEG_WITH("i.settings = { k = 'a\\0b' }"), INT1 ".settings.k", "NUL"},
    {INTEG_WITH("i.rate = 0"), INT1 ".rate", "must be a finite number of requests per second, at least 1/86400"},
    {INTEG_WITH("i.rate = -1"), INT1 ".rate", "at least 1/86400 (one a day)"},
    {INTEG_WITH("i.rate = 0/0"), INT1 ".rate", "at least 1/86400"},
    {INTEG_WITH("i.rate = math.huge"), INT1 ".rate", "a finite number"},
    /* near 0: the limiter's wait in ms overflowed int64 below about 1e-16 */
    {INTEG_WITH("i.rate = 1e-17"), INT1 ".rate", "at least 1/86400 (one a day)"},
    {INTEG_WITH("i.rate = 5e-324"), INT1 ".rate", "at least 1/86400"},
    {INTEG_WITH("i.rate = 1 / 86401"), INT1 ".rate", "at least 1/86400"},
    {INTEG_WITH("i.rate = '10'"), INT1 ".rate", "expected a number (requests per second), got string"},
    {INTEG_WITH("i.burst = 0"), INT1 ".burst", "must be a whole number from 1 to 4294967295"},
    {INTEG_WITH("i.burst = 1.5"), INT1 ".burst", "must be a whole number"},
    {INTEG_WITH("i.burst = 2^32"), INT1 ".burst", "from 1 to 4294967295"},
    {INTEG_WITH("i.burst = '5'"), INT1 ".burst", "expected a whole number, got string"},
    {INTEG_WITH("i.concurrency = 0"), INT1 ".concurrency", "must be a whole number from 1 to 1024"},
    {INTEG_WITH("i.concurrency = 1025"), INT1 ".concurrency", "from 1 to 1024"},
    {INTEG_WITH("i.concurrency = 2.5"), INT1 ".concurrency", "from 1 to 1024"},
    {INTEG_WITH("i.concurrency = -1"), INT1 ".concurrency", "from 1 to 1024"},
};

/* The slowest rate accepted: one a day. */
START_TEST(rate_of_one_a_day_accepted)
{
    lb_config *cfg = load_ok(INTEG_WITH("i.rate = 1 / 86400"));
    ck_assert(cfg->accounts[0].integrations[0].rate_per_s == 1.0 / 86400);
    lb_config_free(cfg);
}
END_TEST

START_TEST(bad_integration_rejected)
{
    expect_error(bad_integrations[_i].src, bad_integrations[_i].field, bad_integrations[_i].msg);
}
END_TEST

static const struct bad_case bad_segmentations[] = {
    {ACC_WITH(INTEG_MC ", segmentations = 'buyers'"), "accounts[1].segmentations", "expected a list"},
    {ACC_WITH(INTEG_MC ", segmentations = { x = {} }"), "accounts[1].segmentations", "without named keys"},
    {ACC_WITH(INTEG_MC ", segmentations = { 'buyers' }"), SEG1, "expected a table { name = ..., product"},
    {SEG_WITH("s.nmae = 'x'"), SEG1 ".nmae", "unknown key"},
    {SEG_WITH("s[1] = 'x'"), SEG1, "keys must be names, found a number key"},
    /* name */
    {SEG_WITH("s.name = nil"), SEG1 ".name", "is required"},
    {SEG_WITH("s.name = 5"), SEG1 ".name", "expected a string, got number"},
    {SEG_WITH("s.name = ''"), SEG1 ".name", "must be 1 to 100 characters from A-Z, a-z, 0-9, space"},
    {SEG_WITH("s.name = 'a/b'"), SEG1 ".name", "must be 1 to 100"},
    {SEG_WITH("s.name = 'ação'"), SEG1 ".name", "must be 1 to 100"},
    {SEG_WITH("s.name = string.rep('a', 101)"), SEG1 ".name", "must be 1 to 100"},
    {"local s = { " SEG_OK " }\n" ACC_WITH(INTEG_MC ", segmentations = { s, { " SEG_OK " } }"),
     "accounts[1].segmentations[2].name", "duplicate segmentation name \"buyers\" (also accounts[1].segmentations[1])"},
    /* product */
    {SEG_WITH("s.product = nil"), SEG1 ".product", "is required"},
    {SEG_WITH("s.product = ''"), SEG1 ".product", "must not be empty"},
    {SEG_WITH("s.product = 'a\\0b'"), SEG1 ".product", "NUL"},
    {SEG_WITH("s.product = 0"), SEG1 ".product", "expected a positive whole number or a string"},
    {SEG_WITH("s.product = -3"), SEG1 ".product", "positive whole number"},
    {SEG_WITH("s.product = 12.5"), SEG1 ".product", "positive whole number"},
    {SEG_WITH("s.product = true"), SEG1 ".product", "expected a product id (a string or a whole number), got boolean"},
    /* trigger */
    {SEG_WITH("s.trigger = nil"), SEG1 ".trigger", "is required"},
    {SEG_WITH("s.trigger = ''"), SEG1 ".trigger", "must not be empty"},
    {SEG_WITH("s.trigger = 5"), SEG1 ".trigger", "expected a trigger id or a table { id = ..., params = {...} }"},
    {SEG_WITH("s.trigger = { params = {} }"), SEG1 ".trigger.id", "is required"},
    {SEG_WITH("s.trigger = { id = '' }"), SEG1 ".trigger.id", "must not be empty"},
    {SEG_WITH("s.trigger = { id = 'x', param = {} }"), SEG1 ".trigger.param", "unknown key"},
    {SEG_WITH("s.trigger = { id = 'x', params = 'p' }"), SEG1 ".trigger.params",
     "expected a table of named values, got string"},
    {SEG_WITH("s.trigger = { id = 'x', params = { 50 } }"), SEG1 ".trigger.params", "got a list"},
    /* conditions */
    {SEG_WITH("s.conditions = 'x'"), SEG1 ".conditions", "expected a list"},
    {SEG_WITH("s.conditions = { { id = 'a' }, y = 1 }"), SEG1 ".conditions", "without named keys or gaps"},
    {SEG_WITH("s.conditions = { 'payment_method' }"), SEG1 ".conditions[1]",
     "expected a table { id = ..., params = {...} }, got string"},
    {SEG_WITH("s.conditions = { { params = {} } }"), SEG1 ".conditions[1].id", "is required"},
    {SEG_WITH("s.conditions = { { id = 'a', paramz = {} } }"), SEG1 ".conditions[1].paramz", "unknown key"},
    {SEG_WITH("s.conditions = { { id = 'a' }, { id = 'b', params = { x = function() end } } }"),
     SEG1 ".conditions[2].params.x", "expected a string, number, boolean or table, got function"},
    /* custom */
    {SEG_WITH("s.custom = 'vip.lua'"), SEG1 ".custom", "expected a table { file = ... } or { inline = ... }"},
    {SEG_WITH("s.custom = {}"), SEG1 ".custom", "set exactly one of file or inline"},
    {SEG_WITH("s.custom = { file = 'a.lua', inline = 'return true' }"), SEG1 ".custom", "exactly one"},
    {SEG_WITH("s.custom = { path = 'a.lua' }"), SEG1 ".custom.path", "unknown key"},
    {SEG_WITH("s.custom = { file = '' }"), SEG1 ".custom.file", "must not be empty"},
    {SEG_WITH("s.custom = { inline = 5 }"), SEG1 ".custom.inline", "expected a string, got number"},
    /* integration */
    {SEG_WITH("s.integration = nil"), SEG1 ".integration", "is required"},
    {SEG_WITH("s.integration = 5"), SEG1 ".integration", "expected a string, got number"},
    {SEG_WITH("s.integration = 'nope'"), SEG1 ".integration",
     "no integration with id \"nope\" in accounts[1].integrations"},
    {"local s = { " SEG_OK " }\n" ACC_WITH("segmentations = { s }"), SEG1 ".integration",
     "names \"mc\" but accounts[1] declares no integrations"},
    /* actions */
    {SEG_WITH("s.actions = nil"), SEG1 ".actions", "is required"},
    {SEG_WITH("s.actions = {}"), SEG1 ".actions", "must list at least one action"},
    {SEG_WITH("s.actions = { action = 'tag_add' }"), SEG1 ".actions", "without named keys or gaps"},
    {SEG_WITH("s.actions = { { params = {} } }"), SEG1 ".actions[1].action", "is required"},
    {SEG_WITH("s.actions = { { action = 7 } }"), SEG1 ".actions[1].action", "expected a string, got number"},
    {SEG_WITH("s.actions = { { action = 'tag_add', id = 'x' } }"), SEG1 ".actions[1].id", "unknown key"},
    {SEG_WITH("s.actions[2] = { action = 'tag_add', params = 'x' }"), "accounts[1].segmentations[1].actions[2].params",
     "expected a table of named values"},
    {SEG_WITH("s.actions = { 'tag_add' }"), SEG1 ".actions[1]",
     "expected a table { action = ..., params = {...} }, got string"},
    /* options, enabled */
    {SEG_WITH("s.options = 'x'"), SEG1 ".options", "expected a table of named values, got string"},
    {SEG_WITH("s.options = { 1 }"), SEG1 ".options", "expected a table of named values, got a list"},
    {SEG_WITH("s.options = { x = { y = function() end } }"), SEG1 ".options.x.y", "got function"},
    {SEG_WITH("s.enabled = 'yes'"), SEG1 ".enabled", "expected a boolean (true or false), got string"},
    {SEG_WITH("s.enabled = 1"), SEG1 ".enabled", "expected a boolean"},
};

START_TEST(bad_segmentation_rejected)
{
    expect_error(bad_segmentations[_i].src, bad_segmentations[_i].field, bad_segmentations[_i].msg);
}
END_TEST

/* Params conversion errors, each with the field of the offending value. */
#define P1 SEG1 ".actions[1].params"
#define WITH_PARAMS(lua) "local p = " lua "\n" SEG_WITH("s.actions[1].params = p")
static const struct bad_case bad_params[] = {
    {WITH_PARAMS("(function() local p = {} local c = p for _ = 1, 8 do c.x = {} c = c.x end return p end)()"),
     P1 ".x.x.x.x.x.x.x.x", "tables nested deeper than 8 levels"},
    {WITH_PARAMS("(function() local p = {} p.me = p return p end)()"), P1 ".me.me.me.me.me.me.me.me",
     "nested deeper than 8"},
    {WITH_PARAMS("{ l = { (function() local t = {} t[1] = t return t end)() } }"), P1 ".l[1][1][1][1][1][1][1]",
     "nested deeper than 8"},
    {WITH_PARAMS("{ m = { 'a', x = 'b' } }"), P1 ".m", "keys must be names, found a number key"},
    {WITH_PARAMS("{ l = { [1] = 'a', [3] = 'b' } }"), P1 ".l", "keys must be names, found a number key"},
    {WITH_PARAMS("{ l = { [0] = 'a' } }"), P1 ".l", "found a number key"},
    {WITH_PARAMS("{ l = { [1.5] = 'a' } }"), P1 ".l", "found a number key"},
    {WITH_PARAMS("{ [true] = 1 }"), P1, "keys must be names, found a boolean key"},
    {WITH_PARAMS("{ [{}] = 1 }"), P1, "found a table key"},
    {WITH_PARAMS("{ ['a\\0b'] = 1 }"), P1, "keys must not contain NUL bytes"},
    {WITH_PARAMS("{ x = 0/0 }"), P1 ".x", "must be a finite number"},
    {WITH_PARAMS("{ x = math.huge }"), P1 ".x", "must be a finite number"},
    {WITH_PARAMS("{ l = { 1, -math.huge } }"), P1 ".l[2]", "must be a finite number"},
    {WITH_PARAMS("{ f = function() end }"), P1 ".f", "expected a string, number, boolean or table, got function"},
    {WITH_PARAMS("{ l = { 'a', string.len } }"), P1 ".l[2]", "got function"},
    {WITH_PARAMS("{ s = 'a\\0b' }"), P1 ".s", "must not contain NUL bytes"},
    {WITH_PARAMS("{ 'list' }"), P1, "expected a table of named values, got a list"},
    /* one string, counted each time it is used */
    {WITH_PARAMS("(function() local s = string.rep('x', 600000) return { a = s, b = s } end)()"), P1,
     "too large: params and options may hold 1024 KiB"},
    /* the budget is the whole configuration's, not each table's */
    {"local big = string.rep('x', 600000)\n" SEG_WITH("s.actions[1].params = { a = big }\n"
                                                     "s.options = { b = big }"), SEG1 ".options", "too large"},
};

START_TEST(bad_params_rejected)
{
    expect_error(bad_params[_i].src, bad_params[_i].field, bad_params[_i].msg);
}
END_TEST

/* Six levels of tables whose 40 keys all point to the level below are a few
 * KiB of Lua and 40^6 values of JSON: the size budget must refuse them at
 * once, naming the params, instead of expanding them for ever. */
START_TEST(shared_tables_refused_fast)
{
    static const char src[] = "local t = { x = 1 }\n"
                              "for _ = 1, 6 do local n = {} for k = 1, 40 do n['k' .. k] = t end t = n end\n"
                              WITH_PARAMS("{ x = t }");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(src, P1, "too large");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
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

/* Library calls that loop in C, where the instruction hook never runs (each
 * kept `listbossd -t` busy for good, or for hours): they are weighed before
 * they start, so the load fails at once and says why. */
static const struct {
    const char *src;
    const char *msg;
} c_loops[] = {
    {"local _ = string.find(('a'):rep(3000), '.-.-.-.-b')", "test.lua:2: pattern too complex for a 3000-byte subject"},
    {"local _ = ('a'):rep(3000):match('(.-)(.-)(.-)(.-)b')", "test.lua:2: pattern too complex"},
    {"for _ in string.gmatch(('a'):rep(3000), 'a*a*a*a*b') do end", "test.lua:2: pattern too complex"},
    {"local _ = ('a'):rep(3000):gsub('^.-.-.-.-b', '')", "test.lua:2: pattern too complex"},
    {"local s = ('a'):rep(1 << 20) local _ = s:find(('a'):rep(1 << 19) .. 'b', 1, true)", "pattern too complex"},
    {"table.move({}, 1, math.maxinteger, 1)", "a table.move call would run past the budget of 10 million"},
    {"pcall(table.move, {}, 1, math.maxinteger - 1, 1, {}) while true do end", "a table.move call"},
    /* each call under its own bound, but a loop of them adds up */
    {"local s = ('a'):rep(150) for i = 1, 1e9 do pcall(string.find, s, '.-.-b') end",
     "at a string.find call: its pattern calls together could take more than 100 million matching steps"},
    {"local t = {} for i = 1, 1e5 do t[i] = i end for i = 1, 1e9 do table.sort(t) end", "a table.sort call"},
};

/* Wall-clock seconds that expect_error(ACC + src, "", msg) took. */
static double timed_error(const char *src, const char *msg)
{
    char buf[512];
    snprintf(buf, sizeof buf, ACC "%s\n", src);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(buf, "", msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

START_TEST(c_loops_stopped)
{
    double s = timed_error(c_loops[_i].src, c_loops[_i].msg);
    ck_assert_msg(s < 5.0, "row %d took %.3f s", _i, s); /* wall clock, sanitizers included */
}
END_TEST

/* Library calls whose work is in proportion to what the config holds count
 * as one instruction each: a loop of them on megabytes ran for about an
 * hour inside the instruction budget. The CPU budget (5 s) stops them. */
static const char *const cpu_loops[] = {
    "local t = {} for i = 1, 200000 do t[i] = i end\n"
    "for i = 1, 1e9 do table.insert(t, 1, i) table.remove(t, 1) end",
    "local s = ('a'):rep(4 << 20) for i = 1, 1e9 do local _ = s:upper() end",
    /* catching the error does not help */
    "local s = ('a'):rep(4 << 20) while true do pcall(s.upper, s) end",
};

START_TEST(cpu_loops_stopped)
{
    double s = timed_error(cpu_loops[_i], "config stopped after 5 s of CPU time; does it loop over a large string");
    /* 5 s of this thread's CPU plus one hook period, and some slack for the
     * wall clock of a busy machine */
    ck_assert_msg(s < 15.0, "row %d took %.3f s", _i, s);
}
END_TEST

/* The same calls in ordinary numbers stay far inside the CPU budget. */
START_TEST(library_work_within_cpu_budget)
{
    lb_config *cfg = load_ok("local s = ('a'):rep(1 << 20) for i = 1, 20 do s = s:upper():lower() end\n"
                             "local t = {} for i = 1, 2000 do table.insert(t, 1, i) end\n"
                             "for i = 1, 1000 do table.remove(t, 1) end\n"
                             "assert(#t == 1000 and #s == 1 << 20)\n" ACC);
    ck_assert_str_eq(cfg->accounts[0].id, "a");
    lb_config_free(cfg);
}
END_TEST

/* What a config does with those functions still works, as method calls too. */
START_TEST(library_functions_still_work)
{
    lb_config *cfg = load_ok(
        "local names = {}\n"
        "for w in ('courses, ebooks , club'):gmatch('[^,]+') do names[#names + 1] = w:match('^%s*(.-)%s*$') end\n"
        "assert(#names == 3 and names[2] == 'ebooks' and string.find('a.b', '.', 1, true) == 2)\n"
        /* past the trim idiom's static bound (~120 bytes): walked, and run */
        "local long = '  ' .. ('word '):rep(400) .. ' '\n"
        "assert(long:match('^%s*(.-)%s*$') == ('word '):rep(400):sub(1, -2))\n"
        "assert(('x'):rep(100000):find('y') == nil and select(2, ('7 '):rep(5000):gsub('%d+', '')) == 5000)\n"
        "assert(string.rep('', math.maxinteger) == '' and ('ab'):rep(3, ',') == 'ab,ab,ab')\n"
        "local t = { 3, 1, 2 } table.sort(t) table.move(t, 1, 3, 2)\n"
        "assert(t[1] == 1 and t[2] == 1 and t[4] == 3)\n"
        "listen = ('127.0.0.1:%d'):format(9090):gsub('90$', '91')\n" ACC);
    ck_assert_str_eq(cfg->listen, "127.0.0.1:9091");
    lb_config_free(cfg);
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
    /* a literal secret in an integration's settings, next to a bad value */
    ACC_WITH("integrations = { { id = 'mc', provider = 'x', settings = { api_key = '" SECRET "', z = {} } } }"),
    ACC_WITH("integrations = { { id = 'mc', provider = 'x', settings = { api_key = '" SECRET "\\0' } } }"),
    ACC_WITH("integrations = { { id = 'mc', provider = 'x', settings = { api_key = { '" SECRET "' } } } }"),
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
    tcase_add_test(tc, environment_moves_the_folder_defaults_only);
    tcase_add_test(tc, club_scan_interval_default_value_and_errors);
    tcase_add_test(tc, max_connections_default_value_and_errors);
    tcase_add_test(tc, demo_has_sandbox_integration_and_segmentations);
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

static TCase *integrations_tcase(void)
{
    TCase *tc = tcase_create("integrations");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, integration_every_key_parsed);
    tcase_add_test(tc, same_ids_in_two_accounts_allowed);
    tcase_add_test(tc, empty_lists_declare_nothing);
    tcase_add_loop_test(tc, bad_dir_rejected, 0, N(bad_dirs));
    tcase_add_loop_test(tc, bad_integration_rejected, 0, N(bad_integrations));
    tcase_add_test(tc, rate_of_one_a_day_accepted);
    return tc;
}

static TCase *segmentations_tcase(void)
{
    TCase *tc = tcase_create("segmentations");
    tcase_add_test(tc, segmentation_every_key_json);
    tcase_add_test(tc, segmentation_strings_escaped);
    tcase_add_loop_test(tc, params_convert, 0, N(param_forms));
    tcase_add_test(tc, options_and_trigger_params_convert);
    tcase_add_test(tc, memory_error_mid_segmentation_frees_json);
    tcase_add_loop_test(tc, bad_segmentation_rejected, 0, N(bad_segmentations));
    tcase_add_loop_test(tc, bad_params_rejected, 0, N(bad_params));
    tcase_add_test(tc, shared_tables_refused_fast);
    tcase_set_timeout(tc, 30);
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
    tcase_add_loop_test(tc, c_loops_stopped, 0, N(c_loops));
    tcase_add_loop_test(tc, cpu_loops_stopped, 0, N(cpu_loops));
    tcase_add_test(tc, library_functions_still_work);
    tcase_add_test(tc, library_work_within_cpu_budget);
    /* the budgets must trip well inside this even under sanitizers */
    tcase_set_timeout(tc, 30);
    return tc;
}

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    suite_add_tcase(s, valid_tcase());
    suite_add_tcase(s, invalid_tcase());
    suite_add_tcase(s, integrations_tcase());
    suite_add_tcase(s, segmentations_tcase());
    suite_add_tcase(s, secrets_tcase());
    suite_add_tcase(s, lua_tcase());
    return s;
}

int main(void)
{
    /* make check exports these for the daemon; the default tests want none */
    unsetenv("LISTBOSS_PLUGIN_DIR");
    unsetenv("LISTBOSS_RULES_DIR");
    return lb_run_suite_tap(make_suite());
}
