/* test_plugin_api.c: the event-loop-free half of lb_core_api (JSON, URL, MD5,
 * headers, classification, settings, redaction) and the loader's descriptor
 * checks. Loading real .so files is tested in tests/e2e/test_plugin_loader.py. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin_api.h"
#include "plugin_loader.h"
#include "tap.h"

/* ---- json_get --------------------------------------------------------------- */

static const char doc[] =
    "{\"contact\":{\"id\":\"c-1\",\"n\":42,\"ok\":true,\"f\":1.5,\"nil\":null,\"tags\":[\"a\",\"b\"],"
    "\"o\":{\"k\":\"v\"}},\"errors\":[{\"code\":\"E1\",\"field\":\"email\"},{\"code\":7}],"
    "\"0\":\"zero key\",\"esc\":\"a\\\"b\\u00e9\",\"nul\":\"a\\u0000b\",\"m\":[[1,2],[3]]}";

static int jget(const char *path, char *out, size_t outlen)
{
    return lb_json_get(doc, strlen(doc), path, out, outlen);
}

START_TEST(json_get_nested_and_scalars)
{
    char out[64];
    ck_assert_int_eq(jget("contact.id", out, sizeof out), 3);
    ck_assert_str_eq(out, "c-1");
    ck_assert_int_eq(jget("contact.n", out, sizeof out), 2);
    ck_assert_str_eq(out, "42");
    ck_assert_int_eq(jget("contact.ok", out, sizeof out), 4);
    ck_assert_str_eq(out, "true");
    ck_assert_int_eq(jget("contact.f", out, sizeof out), 3);
    ck_assert_str_eq(out, "1.5");
    ck_assert_int_eq(jget("esc", out, sizeof out), 5);
    ck_assert_str_eq(out, "a\"b\xc3\xa9");
    ck_assert_int_eq(jget("0", out, sizeof out), 8); /* a digit key on an object is a key */
    ck_assert_str_eq(out, "zero key");
}
END_TEST

START_TEST(json_get_arrays)
{
    char out[64];
    ck_assert_int_eq(jget("errors.0.code", out, sizeof out), 2);
    ck_assert_str_eq(out, "E1");
    ck_assert_int_eq(jget("errors.1.code", out, sizeof out), 1);
    ck_assert_str_eq(out, "7");
    ck_assert_int_eq(jget("contact.tags.1", out, sizeof out), 1);
    ck_assert_str_eq(out, "b");
    ck_assert_int_eq(jget("m.0.1", out, sizeof out), 1);
    ck_assert_str_eq(out, "2");
    ck_assert_int_eq(jget("errors.2.code", out, sizeof out), -1);
    ck_assert_int_eq(jget("errors.x", out, sizeof out), -1);
    ck_assert_int_eq(jget("errors.-1", out, sizeof out), -1);
}
END_TEST

START_TEST(json_get_containers_as_json)
{
    char out[64];
    ck_assert_int_eq(jget("contact.o", out, sizeof out), (int)strlen("{\"k\":\"v\"}"));
    ck_assert_str_eq(out, "{\"k\":\"v\"}");
    ck_assert_int_eq(jget("contact.tags", out, sizeof out), (int)strlen("[\"a\",\"b\"]"));
    ck_assert_str_eq(out, "[\"a\",\"b\"]");
}
END_TEST

START_TEST(json_get_missing_and_wrong_types)
{
    char out[64] = "stale";
    ck_assert_int_eq(jget("contact.nope", out, sizeof out), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(jget("contact.id.deeper", out, sizeof out), -1); /* through a string */
    ck_assert_int_eq(jget("contact.n.0", out, sizeof out), -1);      /* through a number */
    ck_assert_int_eq(jget("contact.nil", out, sizeof out), -1);      /* null is absent */
    ck_assert_int_eq(jget("nul", out, sizeof out), -1);              /* embedded NUL */
    ck_assert_int_eq(jget("contact.", out, sizeof out), -1);
    ck_assert_int_eq(jget("contact..id", out, sizeof out), -1);
    ck_assert_int_eq(jget(".contact", out, sizeof out), -1);
}
END_TEST

START_TEST(json_get_bad_input)
{
    char out[16];
    ck_assert_int_eq(lb_json_get("{\"a\":", 5, "a", out, sizeof out), -1);
    ck_assert_int_eq(lb_json_get("not json", 8, "a", out, sizeof out), -1);
    ck_assert_int_eq(lb_json_get("", 0, "a", out, sizeof out), -1);
    ck_assert_int_eq(lb_json_get(NULL, 4, "a", out, sizeof out), -1);
    ck_assert_int_eq(lb_json_get("{\"a\":1}", 7, NULL, out, sizeof out), -1);
    /* Only len bytes are read: the body need not end where the JSON does. */
    ck_assert_int_eq(lb_json_get("{\"a\":12}GARBAGE", 8, "a", out, sizeof out), 2);
    ck_assert_str_eq(out, "12");
    ck_assert_int_eq(lb_json_get("[\"x\",\"y\"]", 9, "1", out, sizeof out), 1);
    ck_assert_str_eq(out, "y");
}
END_TEST

START_TEST(json_get_truncation)
{
    char out[4] = "xxx";
    ck_assert_int_eq(jget("contact.id", out, 4), 3); /* exactly fits with its NUL */
    ck_assert_str_eq(out, "c-1");
    char small[8];
    memset(small, 'x', sizeof small);
    ck_assert_int_eq(lb_json_get(doc, strlen(doc), "esc", small, 5), -1); /* 5 bytes need 6 */
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(small[5], 'x'); /* nothing written past outlen */
    ck_assert_int_eq(jget("contact.id", NULL, 0), -1);
    ck_assert_int_eq(jget("contact.o", out, sizeof out), -1);
}
END_TEST

/* ---- json_quote, url_encode ------------------------------------------------- */

START_TEST(json_quote_escapes)
{
    char out[64];
    ck_assert_int_eq(lb_json_quote("plain", out, sizeof out), 7);
    ck_assert_str_eq(out, "\"plain\"");
    ck_assert_int_eq(lb_json_quote("a\"b\\c\nd\te\x01", out, sizeof out), (int)strlen(out));
    ck_assert_str_eq(out, "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
    ck_assert_int_eq(lb_json_quote("Jos\xc3\xa9", out, sizeof out), 7); /* UTF-8 kept */
    ck_assert_str_eq(out, "\"Jos\xc3\xa9\"");
    ck_assert_int_eq(lb_json_quote("", out, sizeof out), 2);
    ck_assert_str_eq(out, "\"\"");
    ck_assert_int_eq(lb_json_quote(NULL, out, sizeof out), 4);
    ck_assert_str_eq(out, "null");
}
END_TEST

START_TEST(json_quote_truncation)
{
    char out[8];
    ck_assert_int_eq(lb_json_quote("abcde", out, 8), 7); /* "abcde" + NUL = 8 */
    ck_assert_int_eq(lb_json_quote("abcdef", out, 8), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(lb_json_quote("\n\n\n", out, 8), -1); /* escapes count */
    ck_assert_int_eq(lb_json_quote("a", out, 0), -1);
}
END_TEST

START_TEST(url_encode_rfc3986)
{
    char out[64];
    ck_assert_int_eq(lb_url_encode("AZaz09-._~", out, sizeof out), 10);
    ck_assert_str_eq(out, "AZaz09-._~");
    lb_url_encode("ana+test@example.com", out, sizeof out);
    ck_assert_str_eq(out, "ana%2Btest%40example.com");
    lb_url_encode("a b/c?d=e&f#g%", out, sizeof out);
    ck_assert_str_eq(out, "a%20b%2Fc%3Fd%3De%26f%23g%25");
    lb_url_encode("\xc3\xa9", out, sizeof out);
    ck_assert_str_eq(out, "%C3%A9");
    ck_assert_int_eq(lb_url_encode("", out, sizeof out), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(url_encode_truncation)
{
    char out[4];
    ck_assert_int_eq(lb_url_encode("abc", out, 4), 3);
    ck_assert_int_eq(lb_url_encode("a@", out, 4), -1); /* "a%40" needs 5 */
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(lb_url_encode(NULL, out, 4), -1);
}
END_TEST

/* ---- MD5 --------------------------------------------------------------------- */

START_TEST(md5_rfc1321_vectors)
{
    static const char *const vectors[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char out[33];
        lb_md5_hex(vectors[i][0], out);
        ck_assert_str_eq(out, vectors[i][1]);
    }
}
END_TEST

/* Lengths around the padding boundaries: 55 fits one tail block, 56 needs two. */
START_TEST(md5_block_boundaries)
{
    static const struct { size_t n; const char *hex; } cases[] = {
        {55, "ef1772b6dff9a122358552954ad0df65"}, {56, "3b0c8ac703f828b04c6c197006d17218"},
        {63, "b06521f39153d618550606be297466d5"}, {64, "014842d480b571495a4a0363793f7367"},
        {65, "c743a45e0d2e6a95cb859adae0248435"},
    };
    char s[80], out[33];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(s, 'a', cases[i].n);
        s[cases[i].n] = '\0';
        lb_md5_hex(s, out);
        ck_assert_str_eq(out, cases[i].hex);
    }
    lb_md5_hex("ana@example.com", out); /* Mailchimp's subscriber hash */
    ck_assert_str_eq(out, "cdb9d6a1dddc375a09cc83e3001598dc");
}
END_TEST

/* ---- headers and classification ------------------------------------------- */

static void add_line(lb_header_list *h, const char *line) { ck_assert_int_eq(lb_header_list_add(h, line, strlen(line)), 0); }

static lb_http_resp resp_with(long status, lb_header_list *h)
{
    lb_http_resp r = {.status = status, .body = "", .priv = h};
    return r;
}

START_TEST(header_lookup)
{
    lb_header_list h = {NULL, 0, 0};
    add_line(&h, "HTTP/1.1 100 Continue\r\n");
    add_line(&h, "X-Old: gone\r\n");
    add_line(&h, "HTTP/1.1 200 OK\r\n"); /* a new response: the interim headers go */
    add_line(&h, "Content-Type: application/json\r\n");
    add_line(&h, "retry-after:\t 30 \r\n");
    add_line(&h, "X-Empty:\r\n");
    add_line(&h, "X-Twice: first\r\n");
    add_line(&h, "x-twice: second\r\n");
    add_line(&h, "\r\n");
    lb_http_resp r = resp_with(200, &h);
    ck_assert_int_eq((int)h.count, 5);
    ck_assert_str_eq(lb_http_header(&r, "X-Twice"), "second"); /* the last one wins */
    ck_assert_str_eq(lb_http_header(&r, "content-type"), "application/json");
    ck_assert_str_eq(lb_http_header(&r, "Retry-After"), "30 ");
    ck_assert_str_eq(lb_http_header(&r, "X-Empty"), "");
    ck_assert_ptr_null(lb_http_header(&r, "X-Old"));
    ck_assert_ptr_null(lb_http_header(&r, "Content"));
    r.priv = NULL;
    ck_assert_ptr_null(lb_http_header(&r, "Content-Type"));
    ck_assert_ptr_null(lb_http_header(NULL, "Content-Type"));
    lb_header_list_clear(&h);
}
END_TEST

START_TEST(classify_every_class)
{
    static const struct { long status; lb_status want; } cases[] = {
        {200, LB_OK},    {201, LB_OK},    {204, LB_OK},    {299, LB_OK},    {401, LB_AUTH},
        {403, LB_AUTH},  {408, LB_RETRY}, {429, LB_RETRY}, {500, LB_RETRY}, {502, LB_RETRY},
        {503, LB_RETRY}, {599, LB_RETRY}, {400, LB_FAIL},  {404, LB_FAIL},  {409, LB_FAIL},
        {422, LB_FAIL},  {301, LB_FAIL},  {302, LB_FAIL},  {0, LB_RETRY},   {600, LB_RETRY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_http_resp r = resp_with(cases[i].status, NULL);
        uint32_t ms = 99;
        ck_assert_int_eq(lb_http_classify(&r, &ms), cases[i].want);
        ck_assert_uint_eq(ms, 0);
    }
    lb_http_resp t = {.status = 0, .transport_error = 1, .error = "connection refused", .body = ""};
    ck_assert_int_eq(lb_http_classify(&t, NULL), LB_RETRY);
    ck_assert_int_eq(lb_http_classify(NULL, NULL), LB_RETRY);
}
END_TEST

START_TEST(classify_retry_after_seconds)
{
    lb_header_list h = {NULL, 0, 0};
    add_line(&h, "Retry-After: 120\r\n");
    uint32_t ms = 0;
    lb_http_resp r = resp_with(429, &h);
    ck_assert_int_eq(lb_http_classify(&r, &ms), LB_RETRY);
    ck_assert_uint_eq(ms, 120000);
    r.status = 503;
    ck_assert_int_eq(lb_http_classify(&r, &ms), LB_RETRY);
    ck_assert_uint_eq(ms, 120000);
    r.status = 200; /* a hint on a success is ignored */
    ck_assert_int_eq(lb_http_classify(&r, &ms), LB_OK);
    ck_assert_uint_eq(ms, 0);
    r.status = 400;
    ck_assert_int_eq(lb_http_classify(&r, &ms), LB_FAIL);
    ck_assert_uint_eq(ms, 0);
    lb_header_list_clear(&h);
    add_line(&h, "Retry-After: soon\r\n");
    r.status = 429;
    ck_assert_int_eq(lb_http_classify(&r, &ms), LB_RETRY);
    ck_assert_uint_eq(ms, 0);
    lb_header_list_clear(&h);
}
END_TEST

static const char *fixed_header(const lb_http_resp *resp, const char *name)
{
    (void)resp;
    return strcmp(name, "Retry-After") == 0 ? "3" : NULL;
}

START_TEST(classify_with_another_header_store)
{
    lb_http_resp r = {.status = 503, .body = "", .priv = "not a header list"};
    uint32_t ms = 0;
    ck_assert_int_eq(lb_http_classify_with(&r, &ms, fixed_header), LB_RETRY);
    ck_assert_uint_eq(ms, 3000);
    ck_assert_int_eq(lb_http_classify_with(&r, &ms, NULL), LB_RETRY);
    ck_assert_uint_eq(ms, 0);
}
END_TEST

START_TEST(retry_after_forms)
{
    time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    uint32_t ms = 1;
    ck_assert_int_eq(lb_retry_after_parse("0", now, &ms), 0);
    ck_assert_uint_eq(ms, 0);
    ck_assert_int_eq(lb_retry_after_parse(" 5 ", now, &ms), 0);
    ck_assert_uint_eq(ms, 5000);
    ck_assert_int_eq(lb_retry_after_parse("99999999999999", now, &ms), 0);
    ck_assert_uint_eq(ms, UINT32_MAX); /* saturates, never wraps */
    /* leading zeros (RFC 9110 allows them) do not count towards the length */
    ck_assert_int_eq(lb_retry_after_parse("0000000000001", now, &ms), 0);
    ck_assert_uint_eq(ms, 1000);
    ck_assert_int_eq(lb_retry_after_parse(" 00000000000000000000120 ", now, &ms), 0);
    ck_assert_uint_eq(ms, 120000);
    ms = 1;
    ck_assert_int_eq(lb_retry_after_parse("0000000000000000", now, &ms), 0);
    ck_assert_uint_eq(ms, 0);
    ck_assert_int_eq(lb_retry_after_parse("000099999999999999", now, &ms), 0);
    ck_assert_uint_eq(ms, UINT32_MAX);
    ck_assert_int_eq(lb_retry_after_parse("Sun, 06 Nov 1994 08:50:37 GMT", now, &ms), 0);
    ck_assert_uint_eq(ms, 60000);
    ck_assert_int_eq(lb_retry_after_parse("Sunday, 06-Nov-94 08:49:47 GMT", now, &ms), 0);
    ck_assert_uint_eq(ms, 10000);
    ck_assert_int_eq(lb_retry_after_parse("Sun Nov  6 08:49:57 1994", now, &ms), 0);
    ck_assert_uint_eq(ms, 20000);
    ck_assert_int_eq(lb_retry_after_parse("Sun, 06 Nov 1994 08:00:00 GMT", now, &ms), 0);
    ck_assert_uint_eq(ms, 0); /* already past */
    ck_assert_int_eq(lb_retry_after_parse("-5", now, &ms), -1);
    ck_assert_int_eq(lb_retry_after_parse("1.5", now, &ms), -1);
    ck_assert_int_eq(lb_retry_after_parse("", now, &ms), -1);
    ck_assert_int_eq(lb_retry_after_parse("tomorrow", now, &ms), -1);
    ck_assert_int_eq(lb_retry_after_parse(NULL, now, &ms), -1);
}
END_TEST

/* ---- settings ---------------------------------------------------------------- */

static const lb_config_decl test_config[] = {
    {"base_url", 0, "https://api.example.com", "API root"},
    {"api_key", LB_CFG_REQUIRED | LB_CFG_SECRET, NULL, "the key"},
    {"list_id", LB_CFG_REQUIRED, NULL, NULL},
    {"mode", 0, NULL, NULL},
    {NULL, 0, NULL, NULL},
};
static const lb_action_decl test_actions[] = {{"tag_add", "Add a tag", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL, NULL}};

static void noop_cb(void *i) { (void)i; }
static void noop_call(void *i, lb_call *c) { (void)i, (void)c; }
static void noop_submit(void *i, lb_call *c, const lb_job *j) { (void)i, (void)c, (void)j; }
static int noop_init(const lb_core_api *a, const lb_settings *s, void **i, char *e, size_t n)
{
    (void)a, (void)s, (void)i, (void)e, (void)n;
    return 0;
}

static lb_plugin test_plugin(void)
{
    lb_plugin p = {.struct_size = sizeof(lb_plugin), .abi_major = LB_ABI_MAJOR, .abi_minor = LB_ABI_MINOR,
                   .name = "test", .version = "1.0", .config = test_config, .actions = test_actions,
                   .init = noop_init, .verify = noop_call, .submit = noop_submit, .cancel = noop_call,
                   .destroy = noop_cb};
    return p;
}

static lb_settings *settings_of(const char *const *kv)
{
    lb_settings *s = lb_settings_new("test");
    for (; *kv; kv += 2)
        ck_assert_int_eq(lb_settings_set(s, kv[0], kv[1], false), 0);
    return s;
}

START_TEST(settings_defaults_and_secrets)
{
    static const char *const kv[] = {"api_key", "key-0123456789", "list_id", "L1", NULL};
    lb_plugin p = test_plugin();
    lb_settings *s = settings_of(kv);
    lb_error err;
    lb_error_clear(&err);
    ck_assert_int_eq(lb_plugin_validate_settings(&p, s, &err), 0);
    ck_assert_str_eq(lb_api_setting(s, "base_url"), "https://api.example.com");
    ck_assert_str_eq(lb_api_setting(s, "list_id"), "L1");
    ck_assert_ptr_null(lb_api_setting(s, "mode")); /* optional, no default */
    ck_assert_ptr_null(lb_api_setting(s, "api_key")); /* secret: not through setting() */
    ck_assert(lb_settings_is_secret(s, "api_key"));
    char buf[32];
    ck_assert_int_eq(lb_api_secret(s, "api_key", buf, sizeof buf), 14);
    ck_assert_str_eq(buf, "key-0123456789");
    ck_assert_int_eq(lb_api_secret(s, "api_key", buf, 14), -1); /* no truncated tokens */
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(lb_api_secret(s, "nope", buf, sizeof buf), -1);
    ck_assert_str_eq(lb_settings_label(s), "test");
    lb_settings_free(s);
}
END_TEST

START_TEST(settings_refusals)
{
    static const char *const unknown[] = {"api_key", "k-0123456789", "list_id", "L", "colour", "red", NULL};
    static const char *const missing[] = {"list_id", "L", NULL};
    static const char *const empty[] = {"api_key", "k-0123456789", "list_id", "", NULL};
    lb_plugin p = test_plugin();
    lb_error err;
    lb_settings *s = settings_of(unknown);
    ck_assert_int_eq(lb_plugin_validate_settings(&p, s, &err), -1);
    ck_assert_str_eq(err.field, "colour");
    ck_assert_ptr_nonnull(strstr(err.message, "base_url, api_key, list_id, mode"));
    lb_settings_free(s);
    s = settings_of(missing);
    ck_assert_int_eq(lb_plugin_validate_settings(&p, s, &err), -1);
    ck_assert_str_eq(err.field, "api_key");
    ck_assert_ptr_nonnull(strstr(err.message, "required"));
    lb_settings_free(s);
    s = settings_of(empty);
    ck_assert_int_eq(lb_plugin_validate_settings(&p, s, &err), -1);
    ck_assert_str_eq(err.field, "list_id");
    lb_settings_free(s);
}
END_TEST

START_TEST(settings_resolve_and_replace)
{
    static const char *const kv[] = {"api_key", "env:LB_TEST_PLUGIN_KEY", "list_id", "L", "base_url", "env:X", NULL};
    setenv("LB_TEST_PLUGIN_KEY", "from-the-environment", 1);
    lb_plugin p = test_plugin();
    lb_settings *s = settings_of(kv);
    lb_error err;
    ck_assert_int_eq(lb_plugin_validate_settings(&p, s, &err), 0);
    ck_assert_int_eq(lb_settings_resolve_secrets(s, &err), 0);
    ck_assert_str_eq(lb_settings_raw(s, "api_key"), "from-the-environment");
    ck_assert_str_eq(lb_api_setting(s, "base_url"), "env:X"); /* only secrets are references */
    ck_assert_int_eq(lb_settings_set(s, "list_id", "L2", false), 0);
    ck_assert_str_eq(lb_api_setting(s, "list_id"), "L2");
    ck_assert_uint_eq(lb_settings_count(s), 3);
    unsetenv("LB_TEST_PLUGIN_KEY");
    ck_assert_int_eq(lb_settings_set(s, "api_key", "env:LB_TEST_PLUGIN_KEY", true), 0);
    ck_assert_int_eq(lb_settings_resolve_secrets(s, &err), -1);
    ck_assert_str_eq(err.field, "api_key");
    ck_assert_ptr_null(strstr(err.message, "from-the-environment"));
    lb_settings_free(s);
}
END_TEST

/* What a reload compares to keep an integration running: a changed value or
 * flag, or a secret whose reference now resolves to another value, differs;
 * the order of the keys does not. */
START_TEST(settings_equal)
{
    static const char *const ab[] = {"a", "1", "b", "2", NULL}, *const ba[] = {"b", "2", "a", "1", NULL};
    static const char *const b3[] = {"a", "1", "b", "3", NULL}, *const a[] = {"a", "1", NULL};
    lb_settings *s = settings_of(ab), *t = settings_of(ba), *u = settings_of(b3), *v = settings_of(a);
    ck_assert(lb_settings_equal(s, t));
    ck_assert(!lb_settings_equal(s, u));
    ck_assert(!lb_settings_equal(s, v) && !lb_settings_equal(v, s));
    ck_assert_int_eq(lb_settings_set(t, "b", "2", true), 0); /* the same value, now a secret */
    ck_assert(!lb_settings_equal(s, t));
    lb_error err;
    setenv("LB_TEST_ROTATED", "key-before", 1);
    ck_assert_int_eq(lb_settings_set(u, "b", "env:LB_TEST_ROTATED", true), 0);
    ck_assert_int_eq(lb_settings_set(v, "b", "env:LB_TEST_ROTATED", true), 0);
    ck_assert_int_eq(lb_settings_resolve_secrets(u, &err), 0);
    ck_assert_int_eq(lb_settings_resolve_secrets(v, &err), 0);
    ck_assert(lb_settings_equal(u, v));
    ck_assert_int_eq(lb_settings_set(v, "b", "env:LB_TEST_ROTATED", true), 0);
    setenv("LB_TEST_ROTATED", "key-after", 1);
    ck_assert_int_eq(lb_settings_resolve_secrets(v, &err), 0);
    ck_assert(!lb_settings_equal(u, v));
    unsetenv("LB_TEST_ROTATED");
    lb_settings_free(s);
    lb_settings_free(t);
    lb_settings_free(u);
    lb_settings_free(v);
}
END_TEST

START_TEST(redaction)
{
    lb_settings *s = lb_settings_new("t");
    lb_settings_set(s, "api_key", "sk-live-abcdef", true);
    lb_settings_set(s, "list", "abc", false);
    char out[128];
    lb_redact(s, "url=https://x/?k=sk-live-abcdef&l=abc", out, sizeof out);
    ck_assert_str_eq(out, "url=https://x/?k=[REDACTED]&l=abc");
    lb_redact(s, "Authorization: Basic dXNlcjpwYXNz\r\nX: y", out, sizeof out);
    ck_assert_str_eq(out, "Authorization: [REDACTED]\r\nX: y");
    lb_redact(NULL, "authorization:Bearer t", out, sizeof out);
    ck_assert_str_eq(out, "authorization:[REDACTED]");
    lb_redact(s, "key sk-live-abcdef", out, 8); /* no room for the mark: cut, never leak */
    ck_assert_str_eq(out, "key ");
    lb_settings_free(s);
}
END_TEST

START_TEST(api_table_fill)
{
    lb_core_api api;
    lb_core_api_fill(&api);
    ck_assert_uint_eq(api.struct_size, sizeof api);
    ck_assert_int_eq(api.abi_major, LB_ABI_MAJOR);
    ck_assert(LB_API_HAS(&api, md5_hex));
    ck_assert(LB_API_HAS(&api, secret));
    ck_assert(!LB_API_HAS(&api, complete)); /* the host adds the loop-bound members */
    ck_assert(!LB_API_HAS(&api, http_classify));
    api.struct_size = (uint32_t)offsetof(lb_core_api, md5_hex); /* an older core */
    ck_assert(!LB_API_HAS(&api, md5_hex));
    ck_assert(LB_API_HAS(&api, url_encode));
}
END_TEST

/* ---- the loader's descriptor checks ---------------------------------------- */

START_TEST(descriptor_checks)
{
    lb_error err;
    lb_plugin p = test_plugin();
    ck_assert_int_eq(lb_plugin_check(&p, &err), 0);
    p.abi_major = 2;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "ABI 2.0"));
    p = test_plugin();
    p.struct_size = 16;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "smaller"));
    p.struct_size = 7; /* below the header: its ABI fields are not the plugin's */
    p.abi_major = 2;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "struct_size 7 is smaller than the ABI header (8 bytes"));
    p = test_plugin();
    p.name = "Bad-Name";
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    p.name = NULL;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    p = test_plugin();
    p.cancel = NULL;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "cancel"));
    p = test_plugin();
    p.actions = NULL;
    ck_assert_int_eq(lb_plugin_check(&p, &err), -1);
    p = test_plugin();
    p.list_resources = NULL; /* optional */
    ck_assert_int_eq(lb_plugin_check(&p, &err), 0);
}
END_TEST

/* The default limits meet the config's rules for rate and concurrency; 0
 * is "unlimited" for both, and any burst is usable (0: a second's worth). */
static const struct {
    double rate;
    uint32_t concurrency;
    const char *refusal; /* NULL: accepted */
} default_limits[] = {
    {0, 0, NULL},
    {1.0 / 86400, 1024, NULL},
    {5.0, 4, NULL},
    {1e9, 1, NULL},
    {-1.0, 0, "default_rate_per_s -1 is neither 0 (unlimited) nor a finite number"},
    {NAN, 0, "default_rate_per_s nan is neither"},
    {INFINITY, 0, "default_rate_per_s inf is neither"},
    {-INFINITY, 0, "default_rate_per_s -inf is neither"},
    {1.0 / 86400 * 0.999, 0, "of at least 1/86400 (one a day)"},
    {1e-320, 0, "default_rate_per_s 9.99989e-321 is neither"},
    {0, 1025, "default_concurrency 1025 is above 1024 (0 means unlimited)"},
    {0, UINT32_MAX, "default_concurrency 4294967295 is above 1024"},
};

START_TEST(descriptor_default_limits)
{
    lb_error err;
    lb_plugin p = test_plugin();
    p.default_rate_per_s = default_limits[_i].rate;
    p.default_concurrency = default_limits[_i].concurrency;
    p.default_burst = UINT32_MAX;
    int rc = lb_plugin_check(&p, &err);
    if (default_limits[_i].refusal == NULL) {
        ck_assert_msg(rc == 0, "row %d refused: %s", _i, err.message);
        return;
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err.message, default_limits[_i].refusal) != NULL, "row %d: \"%s\" lacks \"%s\"", _i,
                  err.message, default_limits[_i].refusal);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("plugin_api");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json_get_nested_and_scalars);
    tcase_add_test(tc, json_get_arrays);
    tcase_add_test(tc, json_get_containers_as_json);
    tcase_add_test(tc, json_get_missing_and_wrong_types);
    tcase_add_test(tc, json_get_bad_input);
    tcase_add_test(tc, json_get_truncation);
    tcase_add_test(tc, json_quote_escapes);
    tcase_add_test(tc, json_quote_truncation);
    tcase_add_test(tc, url_encode_rfc3986);
    tcase_add_test(tc, url_encode_truncation);
    tcase_add_test(tc, md5_rfc1321_vectors);
    tcase_add_test(tc, md5_block_boundaries);
    tcase_add_test(tc, header_lookup);
    tcase_add_test(tc, classify_every_class);
    tcase_add_test(tc, classify_retry_after_seconds);
    tcase_add_test(tc, classify_with_another_header_store);
    tcase_add_test(tc, retry_after_forms);
    tcase_add_test(tc, settings_defaults_and_secrets);
    tcase_add_test(tc, settings_refusals);
    tcase_add_test(tc, settings_resolve_and_replace);
    tcase_add_test(tc, settings_equal);
    tcase_add_test(tc, redaction);
    tcase_add_test(tc, api_table_fill);
    tcase_add_test(tc, descriptor_checks);
    tcase_add_loop_test(tc, descriptor_default_limits, 0, sizeof default_limits / sizeof default_limits[0]);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
