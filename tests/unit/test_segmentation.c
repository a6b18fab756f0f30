/* test_segmentation.c: segmentations (core/segmentation.c): parsing,
 * serializing, every consistency rule, re-checks; the engine
 * (core/seg_engine.c): jobs from the real Hotmart fixtures, keys, lead data,
 * rule errors, dry runs. Provider descriptors are static structs here: the
 * checks only read their declarations, so no plugin is loaded. */

#include <listboss/plugin.h>

#include "hotmart.h"
#include "seg_engine.h"
#include "segmentation.h"
#include "tap.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- provider descriptors --------------------------------------------------------- */

static const lb_param_decl p_none[] = {{NULL, 0, NULL, NULL}};
static const lb_param_decl p_tag[] = {{"tag", LB_PARAM_REQUIRED, "tags", NULL}, {NULL, 0, NULL, NULL}};
static const lb_param_decl p_form[] = {{"form", LB_PARAM_REQUIRED, "forms", NULL}, {NULL, 0, NULL, NULL}};
static const lb_param_decl p_list[] = {
    {"list", LB_PARAM_REQUIRED, "lists", NULL}, {"double_optin", 0, NULL, NULL}, {NULL, 0, NULL, NULL}};
static const lb_param_decl p_machine[] = {
    {"machine", LB_PARAM_REQUIRED, "machines", NULL}, {"level", 0, NULL, NULL}, {NULL, 0, NULL, NULL}};

/* ConvertKit-like: removing a tag needs an add of that tag. */
static const lb_action_decl kit_actions[] = {
    {"contact_upsert", "Upsert", p_none, NULL, NULL},
    {"tag_add", "Add tag", p_tag, NULL, NULL},
    {"tag_remove", "Remove tag", p_tag, "tag_add", "tag"},
    {"list_add", "Add to form", p_form, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
/* The same provider after an upgrade that dropped list_add. */
static const lb_action_decl kit2_actions[] = {
    {"tag_add", "Add tag", p_tag, NULL, NULL},
    {"tag_remove", "Remove tag", p_tag, "tag_add", "tag"},
    {NULL, NULL, NULL, NULL, NULL},
};
/* Leadlovers-like: move needs an add into the same machine; remove needs
 * any add (no requires_param); can send the bank-slip link. */
static const lb_action_decl ll_actions[] = {
    {"lead_add", "Add lead", p_machine, NULL, NULL},
    {"lead_move", "Move lead", p_machine, "lead_add", "machine"},
    {"lead_remove", "Remove lead", p_none, "lead_add", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
static const lb_action_decl mc_actions[] = {
    {"list_add", "Add to list", p_list, NULL, NULL},
    {"tag_add", "Add tag", p_tag, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define DESC(n, acts, billet)                                                                          \
    {.struct_size = sizeof(lb_plugin), .abi_major = LB_ABI_MAJOR, .abi_minor = LB_ABI_MINOR, .name = n, \
     .display_name = n, .actions = acts, .can_send_billet = billet}
static const lb_plugin kitlike = DESC("kitlike", kit_actions, 0);
static const lb_plugin kitlike2 = DESC("kitlike", kit2_actions, 0);
static const lb_plugin leadlike = DESC("leadlike", ll_actions, 1);
static const lb_plugin mclike = DESC("mclike", mc_actions, 0);

/* ---- test environment ---------------------------------------------------------------- */

#define MAX_SEGS 16

typedef struct env {
    lb_rules *rules;
    lb_seg_integration igs[8];
    lb_seg_ctx ctx;
    lb_segmentation *segs[MAX_SEGS];
    size_t n;
} env;

static void env_open(env *e)
{
    memset(e, 0, sizeof *e);
    lb_error err;
    e->rules = lb_rules_load(LB_TEST_RULES_DIR, NULL, NULL, &err);
    ck_assert_msg(e->rules != NULL, "rules: %s: %s", err.field, err.message);
    const lb_seg_integration igs[] = {
        {"acme", "mc", "mclike", &mclike},     {"acme", "ck", "kitlike", &kitlike},
        {"acme", "ck2", "kitlike", &kitlike},  {"acme", "ll", "leadlike", &leadlike},
        {"acme", "gone", "drip", NULL},        {"other", "mc", "mclike", &mclike},
        {"other", "zz", "mclike", &mclike},    {"other", "ck", "kitlike", &kitlike},
    };
    memcpy(e->igs, igs, sizeof igs);
    e->ctx = (lb_seg_ctx){e->rules, e->igs, sizeof igs / sizeof igs[0], e->segs, 0};
}

static void env_close(env *e)
{
    for (size_t i = 0; i < e->n; i++)
        lb_segmentation_free(e->segs[i]);
    lb_rules_free(e->rules);
}

/* JSON written with ' for " keeps the declarations readable. */
static char *dq(const char *sq)
{
    char *s = strdup(sq);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static lb_segmentation *parse_sq(const char *account, const char *sq, lb_error *err)
{
    char *text = dq(sq);
    lb_segmentation *seg = lb_segmentation_parse_text(text, account, err);
    free(text);
    return seg;
}

/* Parses and keeps (the env frees it); ctx.siblings follows. */
static lb_segmentation *add_for(env *e, const char *account, const char *sq)
{
    lb_error err;
    lb_segmentation *seg = parse_sq(account, sq, &err);
    ck_assert_msg(seg != NULL, "parse: %s: %s", err.field, err.message);
    ck_assert_uint_lt(e->n, MAX_SEGS);
    e->segs[e->n++] = seg;
    e->ctx.n_siblings = e->n;
    return seg;
}

static lb_segmentation *add(env *e, const char *sq)
{
    return add_for(e, "acme", sq);
}

/* A new array of seg's reasons (against every segmentation in e). */
static json_object *check(env *e, const lb_segmentation *seg, int *count)
{
    json_object *reasons = json_object_new_array();
    *count = lb_segmentation_check(seg, &e->ctx, reasons);
    ck_assert_int_eq(*count, (int)json_object_array_length(reasons));
    ck_assert_int_eq(*count, lb_segmentation_check(seg, &e->ctx, NULL));
    return reasons;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool has_reason(json_object *reasons, const char *code, const char *field)
{
    for (size_t i = 0; i < json_object_array_length(reasons); i++) {
        json_object *r = json_object_array_get_idx(reasons, i);
        if (strcmp(str_of(r, "code"), code) == 0 && strcmp(str_of(r, "field"), field) == 0 && str_of(r, "message")[0])
            return true;
    }
    return false;
}

#define ASSERT_REASON(reasons, code, field)                                                            \
    ck_assert_msg(has_reason(reasons, code, field), "expected %s at %s in %s", code, field,           \
                  json_object_to_json_string(reasons))

/* Asserts seg has exactly one reason, code at field. */
static void expect_one(env *e, const lb_segmentation *seg, const char *code, const char *field)
{
    int n = 0;
    json_object *reasons = check(e, seg, &n);
    ck_assert_msg(n == 1, "expected 1 reason, got %s", json_object_to_json_string(reasons));
    ASSERT_REASON(reasons, code, field);
    json_object_put(reasons);
}

static void expect_ok(env *e, const lb_segmentation *seg)
{
    int n = 0;
    json_object *reasons = check(e, seg, &n);
    ck_assert_msg(n == 0, "expected no reason, got %s", json_object_to_json_string(reasons));
    json_object_put(reasons);
}

#define MC_BUYERS                                                                                      \
    "{'id':11,'name':'buyers','product':'4123456','trigger':{'id':'purchase_approved','params':{}},"  \
    "'conditions':[{'id':'payment_method','params':{'in':['CREDIT_CARD']}}],'integration':'mc',"       \
    "'actions':[{'action':'list_add','params':{'list':'57afe96172'}},{'action':'tag_add','params':{'tag':'buyer'}}]," \
    "'options':{'send_billet_link':false},'enabled':true}"

/* A segmentation on integration `ig` with one action, as text. */
static char *one_action(char *buf, size_t cap, const char *name, const char *ig, const char *action, const char *params)
{
    snprintf(buf, cap,
             "{'name':'%s','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'%s',"
             "'actions':[{'action':'%s','params':%s}]}",
             name, ig, action, params);
    return buf;
}

/* ---- parsing --------------------------------------------------------------------------- */

START_TEST(parse_full_declaration)
{
    lb_error err;
    char *text = dq("{'id':7,'name':'buyers','product':'4123456','trigger':{'id':'club_progress','params':{'percent':50}},"
                    "'conditions':[{'id':'buyer_country','params':{'in':['BR']}},{'id':'offer','params':{'in':['x']}}],"
                    "'custom':{'file':'vip.lua'},'integration':'mc',"
                    "'actions':[{'action':'list_add','params':{'list':57,'double_optin':'yes'}},{'action':'tag_add','params':{'tag':'buyer'}}],"
                    "'options':{'send_billet_link':true},'enabled':false}");
    json_object *decl = json_tokener_parse(text);
    free(text);
    lb_segmentation *seg = lb_segmentation_parse(decl, "acme", &err);
    json_object_put(decl); /* nothing may be borrowed from it */
    ck_assert_msg(seg != NULL, "%s: %s", err.field, err.message);
    ck_assert_int_eq(seg->id, 7);
    ck_assert_str_eq(seg->account, "acme");
    ck_assert_str_eq(seg->name, "buyers");
    ck_assert_str_eq(seg->product, "4123456");
    ck_assert_str_eq(seg->trigger, "club_progress");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(seg->trigger_params, "percent")), 50);
    ck_assert_uint_eq(seg->n_conditions, 2);
    ck_assert_str_eq(seg->conditions[1], "offer");
    ck_assert_str_eq(json_object_to_json_string_ext(seg->condition_params[0], JSON_C_TO_STRING_PLAIN), "{\"in\":[\"BR\"]}");
    ck_assert_str_eq(seg->custom_file, "vip.lua");
    ck_assert_ptr_null(seg->custom_inline);
    ck_assert_str_eq(seg->integration, "mc");
    ck_assert_uint_eq(seg->n_actions, 2);
    ck_assert_str_eq(seg->actions[0].action, "list_add");
    ck_assert_uint_eq(seg->actions[0].n_params, 2);
    ck_assert_str_eq(seg->actions[0].keys[0], "list");
    ck_assert_str_eq(seg->actions[0].values[0], "57"); /* a number is kept as its text */
    ck_assert_str_eq(seg->actions[0].params_json, "{\"list\":\"57\",\"double_optin\":\"yes\"}");
    ck_assert_str_eq(seg->actions[1].params_json, "{\"tag\":\"buyer\"}");
    ck_assert(seg->send_billet_link);
    ck_assert(!seg->enabled);
    ck_assert_int_eq(seg->status, LB_SEG_OK);
    ck_assert_uint_eq(json_object_array_length(seg->reasons), 0);
    /* the rules host's view points into the segmentation */
    ck_assert_ptr_eq(seg->spec.trigger, seg->trigger);
    ck_assert_ptr_eq(seg->spec.trigger_params, seg->trigger_params);
    ck_assert_uint_eq(seg->spec.n_conditions, 2);
    ck_assert_str_eq(seg->spec.conditions[0], "buyer_country");
    ck_assert_ptr_eq(seg->spec.condition_params[1], seg->condition_params[1]);
    ck_assert_str_eq(seg->spec.custom_file, "vip.lua");
    lb_segmentation_free(seg);
}
END_TEST

START_TEST(parse_defaults)
{
    lb_error err;
    lb_segmentation *seg = parse_sq("acme",
                                    "{'name':'n','product':4123456,'trigger':{'id':'purchase_approved'},"
                                    "'integration':'ck','actions':[{'action':'contact_upsert'}],'conditions':null}",
                                    &err);
    ck_assert_msg(seg != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq(seg->product, "4123456"); /* an integer id becomes the same key as the string */
    ck_assert_int_eq(seg->id, 0);
    ck_assert(seg->enabled);
    ck_assert(!seg->send_billet_link);
    ck_assert_uint_eq(seg->n_conditions, 0);
    ck_assert_str_eq(json_object_to_json_string(seg->trigger_params), "{ }");
    ck_assert_uint_eq(seg->actions[0].n_params, 0);
    ck_assert_str_eq(seg->actions[0].params_json, "{}");
    ck_assert_ptr_null(seg->spec.custom_file);
    ck_assert_ptr_null(seg->spec.custom_inline);
    lb_segmentation_free(seg);
}
END_TEST

START_TEST(parse_scalar_params_as_text)
{
    lb_error err;
    lb_segmentation *seg = parse_sq("acme",
                                    "{'name':'n','product':'1','trigger':{'id':'purchase_approved'},'integration':'ll',"
                                    "'actions':[{'action':'lead_add','params':{'machine':12345678901,'level':1.5,'a':0.1,'b':true,'c':false,'d':-2e-7}}]}",
                                    &err);
    ck_assert_msg(seg != NULL, "%s: %s", err.field, err.message);
    ck_assert_uint_eq(seg->actions[0].n_params, 6);
    ck_assert_str_eq(seg->actions[0].values[0], "12345678901");
    ck_assert_str_eq(seg->actions[0].values[1], "1.5");
    ck_assert_str_eq(seg->actions[0].values[2], "0.1"); /* the shortest form, not 0.10000000000000001 */
    ck_assert_str_eq(seg->actions[0].values[3], "true");
    ck_assert_str_eq(seg->actions[0].values[4], "false");
    ck_assert_str_eq(seg->actions[0].values[5], "-2e-07");
    ck_assert_str_eq(seg->actions[0].params_json,
                     "{\"machine\":\"12345678901\",\"level\":\"1.5\",\"a\":\"0.1\",\"b\":\"true\",\"c\":\"false\",\"d\":\"-2e-07\"}");
    lb_segmentation_free(seg);
}
END_TEST

static const struct {
    const char *decl; /* ' for " */
    const char *field;
} bad_decls[] = {
    {"[]", ""},
    {"{'product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "name"},
    {"{'name':'','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "name"},
    {"{'name':7,'product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "name"},
    {"{'name':'n','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "product"},
    {"{'name':'n','product':true,'trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "product"},
    {"{'name':'n','product':'1','integration':'mc','actions':[{'action':'a'}]}", "trigger"},
    {"{'name':'n','product':'1','trigger':'purchase_approved','integration':'mc','actions':[{'action':'a'}]}", "trigger"},
    {"{'name':'n','product':'1','trigger':{},'integration':'mc','actions':[{'action':'a'}]}", "trigger.id"},
    {"{'name':'n','product':'1','trigger':{'id':'t','params':[1]},'integration':'mc','actions':[{'action':'a'}]}", "trigger.params"},
    {"{'name':'n','product':'1','trigger':{'id':'t','param':{}},'integration':'mc','actions':[{'action':'a'}]}", "trigger.param"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'conditions':{},'integration':'mc','actions':[{'action':'a'}]}", "conditions"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'conditions':['offer'],'integration':'mc','actions':[{'action':'a'}]}", "conditions[1]"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'conditions':[{'id':'a'},{'params':{}}],'integration':'mc','actions':[{'action':'a'}]}", "conditions[2].id"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'conditions':[{'id':'a','params':'x'}],'integration':'mc','actions':[{'action':'a'}]}", "conditions[1].params"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'custom':{'file':'a.lua','inline':'x'},'integration':'mc','actions':[{'action':'a'}]}", "custom"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'custom':{},'integration':'mc','actions':[{'action':'a'}]}", "custom"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'custom':{'file':3},'integration':'mc','actions':[{'action':'a'}]}", "custom.file"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'custom':'x','integration':'mc','actions':[{'action':'a'}]}", "custom"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'actions':[{'action':'a'}]}", "integration"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'Mail Chimp','actions':[{'action':'a'}]}", "integration"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc'}", "actions"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[]}", "actions"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':{'action':'a'}}", "actions"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'},{'params':{}}]}", "actions[2].action"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'},{'action':'b','params':{'tag':{'x':1}}}]}", "actions[2].params.tag"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a','params':{'list':['x']}}]}", "actions[1].params.list"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a','params':{'x':null}}]}", "actions[1].params.x"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a','params':{'x':'a\\u0000b'}}]}", "actions[1].params.x"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a','params':[]}]}", "actions[1].params"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a','param':{}}]}", "actions[1].param"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}],'options':{'send_billet_link':'yes'}}", "options.send_billet_link"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}],'options':{'send_billet':true}}", "options.send_billet"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}],'options':[]}", "options"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}],'enabled':'yes'}", "enabled"},
    {"{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}],'colour':'red'}", "colour"},
    {"{'id':0,'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "id"},
    {"{'id':'7','name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}", "id"},
};

START_TEST(parse_refuses_bad_shape)
{
    lb_error err;
    lb_segmentation *seg = parse_sq("acme", bad_decls[_i].decl, &err);
    ck_assert_msg(seg == NULL, "accepted %s", bad_decls[_i].decl);
    ck_assert_str_eq(err.field, bad_decls[_i].field);
    ck_assert(err.message[0] != '\0');
}
END_TEST

START_TEST(parse_limits_actions)
{
    char text[8192] = "{\"name\":\"n\",\"product\":\"1\",\"trigger\":{\"id\":\"t\"},\"integration\":\"mc\",\"actions\":[";
    for (int i = 0; i < 33; i++)
        strcat(text, i ? ",{\"action\":\"a\"}" : "{\"action\":\"a\"}");
    strcat(text, "]}");
    lb_error err;
    ck_assert_ptr_null(lb_segmentation_parse_text(text, "acme", &err));
    ck_assert_str_eq(err.field, "actions");
    ck_assert_ptr_nonnull(strstr(err.message, "too many"));
}
END_TEST

START_TEST(parse_text_errors)
{
    lb_error err;
    ck_assert_ptr_null(lb_segmentation_parse_text("{\"name\":", "acme", &err));
    ck_assert_str_eq(err.field, "");
    ck_assert_ptr_nonnull(strstr(err.message, "invalid JSON"));
    ck_assert_ptr_null(lb_segmentation_parse_text("{} {}", "acme", &err));
    ck_assert_ptr_nonnull(strstr(err.message, "trailing"));
    char *ok = dq("{'name':'n','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'a'}]}");
    ck_assert_ptr_null(lb_segmentation_parse_text(ok, "", &err));
    ck_assert_str_eq(err.field, "account");
    lb_segmentation *seg = lb_segmentation_parse_text(ok, "acme", &err);
    ck_assert_ptr_nonnull(seg);
    lb_segmentation_free(seg);
    free(ok);
}
END_TEST

START_TEST(parse_array_prefixes_index)
{
    lb_segmentation **v = NULL;
    size_t n = 9;
    lb_error err;
    char *two = dq("[{'name':'a','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'x'}]},"
                   " {'name':'b','product':'2','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'x'}]}]");
    ck_assert_int_eq(lb_segmentations_parse_array(two, "acme", &v, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[1]->name, "b");
    ck_assert_str_eq(v[1]->product, "2");
    for (size_t i = 0; i < n; i++)
        lb_segmentation_free(v[i]);
    free(v);
    free(two);
    char *bad = dq("[{'name':'a','product':'1','trigger':{'id':'t'},'integration':'mc','actions':[{'action':'x'}]},"
                   " {'name':'b','product':'2','trigger':{'id':'t'},'integration':'mc','actions':[{}]}]");
    ck_assert_int_eq(lb_segmentations_parse_array(bad, "acme", &v, &n, &err), -1);
    ck_assert_str_eq(err.field, "[2].actions[1].action");
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(n, 0);
    free(bad);
    ck_assert_int_eq(lb_segmentations_parse_array("{}", "acme", &v, &n, &err), -1);
    ck_assert_int_eq(lb_segmentations_parse_array("[]", "acme", &v, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    free(v);
}
END_TEST

START_TEST(to_json_round_trip)
{
    lb_error err;
    lb_segmentation *a = parse_sq("acme", MC_BUYERS, &err);
    ck_assert_ptr_nonnull(a);
    json_object *ja = lb_segmentation_to_json(a);
    ck_assert_str_eq(str_of(ja, "status"), "ok");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(ja, "id")), 11);
    ck_assert_str_eq(str_of(ja, "account"), "acme");
    ck_assert_str_eq(json_object_to_json_string(json_object_object_get(ja, "reasons")), "[ ]");
    /* the listing is accepted back as a declaration and gives the same listing */
    lb_segmentation *b = lb_segmentation_parse(ja, "acme", &err);
    ck_assert_msg(b != NULL, "%s: %s", err.field, err.message);
    json_object *jb = lb_segmentation_to_json(b);
    ck_assert_str_eq(json_object_to_json_string(ja), json_object_to_json_string(jb));
    ck_assert_str_eq(str_of(json_object_array_get_idx(json_object_object_get(jb, "conditions"), 0), "id"),
                     "payment_method");
    json_object_put(ja);
    json_object_put(jb);
    lb_segmentation_free(a);
    lb_segmentation_free(b);
}
END_TEST

START_TEST(to_json_states)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, "{'name':'x','product':'1','trigger':{'id':'nope'},'integration':'mc',"
                                 "'actions':[{'action':'tag_add','params':{'tag':'t'}}],'custom':{'inline':'return function() return true end'}}");
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 1);
    json_object *j = lb_segmentation_to_json(s);
    ck_assert_str_eq(str_of(j, "status"), "needs_review");
    ck_assert_str_eq(str_of(json_object_object_get(j, "custom"), "inline"), "return function() return true end");
    json_object *reasons = json_object_object_get(j, "reasons");
    ASSERT_REASON(reasons, "unknown_trigger", "trigger.id");
    json_object_put(j);
    s->enabled = false;
    j = lb_segmentation_to_json(s);
    ck_assert_str_eq(str_of(j, "status"), "disabled");
    ck_assert_uint_eq(json_object_array_length(json_object_object_get(j, "reasons")), 1); /* kept */
    json_object_put(j);
    env_close(&e);
}
END_TEST

/* ---- consistency: the rule part --------------------------------------------------------- */

START_TEST(check_consistent)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, MC_BUYERS);
    expect_ok(&e, s);
    ck_assert_int_eq(s->status, LB_SEG_OK);
    env_close(&e);
}
END_TEST

START_TEST(check_unknown_trigger)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_teleported'},'integration':'mc',"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "unknown_trigger", "trigger.id");
    env_close(&e);
}
END_TEST

START_TEST(check_unknown_condition)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                           "'conditions':[{'id':'offer','params':{'in':['a']}},{'id':'moon_phase'}],"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "unknown_condition", "conditions[2].id");
    env_close(&e);
}
END_TEST

START_TEST(check_condition_not_applicable)
{
    env e;
    env_open(&e);
    /* the example: installments on cart abandonment */
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'cart_abandonment'},'integration':'mc',"
                           "'conditions':[{'id':'installments','params':{'op':'eq','value':1}}],"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "condition_not_applicable", "conditions[1].id");
    /* the same condition on a purchase is fine */
    expect_ok(&e, add(&e, "{'name':'y','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                          "'conditions':[{'id':'installments','params':{'op':'eq','value':1}}],"
                          "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"));
    env_close(&e);
}
END_TEST

START_TEST(check_bad_rule_params)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                           "'conditions':[{'id':'payment_method','params':{'in':['BITCOIN']}}],"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "bad_param", "conditions[1].params.in");
    expect_one(&e, add(&e, "{'name':'y','product':'1','trigger':{'id':'club_progress'},'integration':'mc',"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "missing_param", "trigger.params.percent");
    expect_one(&e, add(&e, "{'name':'z','product':'1','trigger':{'id':'purchase_approved','params':{'colour':1}},"
                           "'integration':'mc','actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "unknown_param", "trigger.params.colour");
    /* a module's own cross-field check */
    expect_one(&e, add(&e, "{'name':'w','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                           "'conditions':[{'id':'installments','params':{'op':'between','value':5,'value2':2}}],"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "bad_params", "conditions[1].params");
    env_close(&e);
}
END_TEST

START_TEST(check_custom_rule)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                           "'custom':{'inline':'return 42'},'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "custom_invalid", "custom.inline");
    /* no custom directory configured: a file cannot be found */
    expect_one(&e, add(&e, "{'name':'y','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                           "'custom':{'file':'vip.lua'},'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"),
               "custom_invalid", "custom.file");
    expect_ok(&e, add(&e, "{'name':'z','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                          "'custom':{'inline':'return function(ev) return true end'},"
                          "'actions':[{'action':'tag_add','params':{'tag':'t'}}]}"));
    env_close(&e);
}
END_TEST

/* ---- consistency: integration and actions ------------------------------------------------------ */

START_TEST(check_unknown_integration)
{
    env e;
    env_open(&e);
    char buf[512];
    expect_one(&e, add(&e, one_action(buf, sizeof buf, "x", "nope", "tag_add", "{'tag':'t'}")), "unknown_integration",
               "integration");
    /* another account's integration is not this account's */
    expect_one(&e, add(&e, one_action(buf, sizeof buf, "y", "zz", "tag_add", "{'tag':'t'}")), "unknown_integration",
               "integration");
    expect_ok(&e, add_for(&e, "other", one_action(buf, sizeof buf, "z", "zz", "tag_add", "{'tag':'t'}")));
    env_close(&e);
}
END_TEST

START_TEST(check_provider_not_loaded)
{
    env e;
    env_open(&e);
    char buf[512];
    /* one reason: the actions cannot be judged without the provider */
    lb_segmentation *s = add(&e, one_action(buf, sizeof buf, "x", "gone", "anything", "{'x':'y'}"));
    expect_one(&e, s, "provider_not_loaded", "integration");
    int n = 0;
    json_object *r = check(&e, s, &n);
    ck_assert_ptr_nonnull(strstr(str_of(json_object_array_get_idx(r, 0), "message"), "drip"));
    json_object_put(r);
    env_close(&e);
}
END_TEST

START_TEST(check_unknown_action)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'mc',"
                                 "'actions':[{'action':'tag_add','params':{'tag':'t'}},{'action':'tag_remove','params':{'tag':'t'}}]}");
    expect_one(&e, s, "unknown_action", "actions[2].action");
    env_close(&e);
}
END_TEST

START_TEST(check_action_params)
{
    env e;
    env_open(&e);
    char buf[512];
    expect_one(&e, add(&e, one_action(buf, sizeof buf, "a", "mc", "list_add", "{}")), "missing_param",
               "actions[1].params.list");
    expect_one(&e, add(&e, one_action(buf, sizeof buf, "b", "mc", "list_add", "{'list':'l1','colour':'red'}")),
               "unknown_param", "actions[1].params.colour");
    expect_one(&e, add(&e, one_action(buf, sizeof buf, "c", "mc", "list_add", "{'list':''}")), "bad_param",
               "actions[1].params.list");
    /* an optional declared param is fine */
    expect_ok(&e, add(&e, one_action(buf, sizeof buf, "d", "mc", "list_add", "{'list':'l1','double_optin':'1'}")));
    env_close(&e);
}
END_TEST

/* ---- consistency: prerequisites ------------------------------------------------------------------ */

#define CK_REMOVE "{'name':'rm','product':'1','trigger':{'id':'purchase_refunded'},'integration':'ck','actions':[{'action':'tag_remove','params':{'tag':'buyer'}}]}"
#define CK_ADD(name, tag, extra) \
    "{'name':'" name "','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck','actions':[{'action':'tag_add','params':{'tag':'" tag "'}}]" extra "}"

START_TEST(prereq_missing)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    expect_one(&e, s, "missing_prerequisite", "actions[1].params.tag");
    int n = 0;
    json_object *r = check(&e, s, &n);
    const char *msg = str_of(json_object_array_get_idx(r, 0), "message");
    ck_assert_msg(strstr(msg, "tag_add") && strstr(msg, "buyer"), "%s", msg);
    json_object_put(r);
    env_close(&e);
}
END_TEST

START_TEST(prereq_from_sibling)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "buyer", ""));
    expect_ok(&e, s);
    env_close(&e);
}
END_TEST

START_TEST(prereq_other_value)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "lead", ""));
    expect_one(&e, s, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(prereq_sibling_disabled)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "buyer", ",'enabled':false"));
    expect_one(&e, s, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(prereq_sibling_needs_review)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    lb_segmentation *a = add(&e, CK_ADD("add", "buyer", ""));
    a->status = LB_SEG_NEEDS_REVIEW; /* it does not run, so it tags nobody */
    expect_one(&e, s, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(prereq_other_integration_or_product)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, CK_REMOVE);
    /* the same provider, another connection: its tags are not this one's */
    add(&e, "{'name':'a2','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck2',"
            "'actions':[{'action':'tag_add','params':{'tag':'buyer'}}]}");
    /* another account's integration with the same id */
    add_for(&e, "other", CK_ADD("a4", "buyer", ""));
    /* another product of the account */
    add(&e, "{'name':'a3','product':'2','trigger':{'id':'purchase_approved'},'integration':'ck',"
            "'actions':[{'action':'tag_add','params':{'tag':'buyer'}}]}");
    expect_one(&e, s, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(prereq_self_provided)
{
    env e;
    env_open(&e);
    expect_ok(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck',"
                          "'actions':[{'action':'tag_add','params':{'tag':'buyer'}},{'action':'tag_remove','params':{'tag':'buyer'}}]}"));
    env_close(&e);
}
END_TEST

START_TEST(prereq_replaced_version_ignored)
{
    env e;
    env_open(&e);
    /* Saving id 5 (now without the add) must not lean on its stored version. */
    add(&e, "{'id':5,'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck',"
            "'actions':[{'action':'tag_add','params':{'tag':'buyer'}}]}");
    lb_segmentation *edit = add(&e, "{'id':5,'name':'x','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck',"
                                    "'actions':[{'action':'tag_remove','params':{'tag':'buyer'}}]}");
    expect_one(&e, edit, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(prereq_leadlovers)
{
    env e;
    env_open(&e);
    lb_segmentation *mv = add(&e, "{'name':'mv','product':'1','trigger':{'id':'purchase_approved'},'integration':'ll',"
                                  "'actions':[{'action':'lead_move','params':{'machine':'m2'}}]}");
    lb_segmentation *rm = add(&e, "{'name':'rm','product':'1','trigger':{'id':'purchase_refunded'},'integration':'ll',"
                                  "'actions':[{'action':'lead_remove'}]}");
    expect_one(&e, mv, "missing_prerequisite", "actions[1].params.machine");
    expect_one(&e, rm, "missing_prerequisite", "actions[1].action");
    add(&e, "{'name':'add','product':'1','trigger':{'id':'bank_slip_issued'},'integration':'ll',"
            "'actions':[{'action':'lead_add','params':{'machine':'m1'}}]}");
    /* remove needs any add; move needs an add into the same machine */
    expect_ok(&e, rm);
    expect_one(&e, mv, "missing_prerequisite", "actions[1].params.machine");
    add(&e, "{'name':'add2','product':'1','trigger':{'id':'bank_slip_issued'},'integration':'ll',"
            "'actions':[{'action':'lead_add','params':{'machine':'m2','level':'3'}}]}");
    expect_ok(&e, mv);
    env_close(&e);
}
END_TEST

/* ---- consistency: bank slip ---------------------------------------------------------------------- */

START_TEST(billet_not_supported)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'bank_slip_issued'},'integration':'mc',"
                           "'actions':[{'action':'tag_add','params':{'tag':'t'}}],'options':{'send_billet_link':true}}"),
               "billet_not_supported", "options.send_billet_link");
    expect_ok(&e, add(&e, "{'name':'y','product':'1','trigger':{'id':'bank_slip_issued'},'integration':'ll',"
                          "'actions':[{'action':'lead_add','params':{'machine':'m'}}],'options':{'send_billet_link':true}}"));
    /* the option off is never a problem */
    expect_ok(&e, add(&e, "{'name':'z','product':'1','trigger':{'id':'bank_slip_issued'},'integration':'mc',"
                          "'actions':[{'action':'tag_add','params':{'tag':'t'}}],'options':{'send_billet_link':false}}"));
    env_close(&e);
}
END_TEST

START_TEST(billet_not_carried)
{
    env e;
    env_open(&e);
    expect_one(&e, add(&e, "{'name':'x','product':'1','trigger':{'id':'cart_abandonment'},'integration':'ll',"
                           "'actions':[{'action':'lead_add','params':{'machine':'m'}}],'options':{'send_billet_link':true}}"),
               "billet_not_carried", "options.send_billet_link");
    /* order_started carries a purchase but no slip */
    expect_one(&e, add(&e, "{'name':'y','product':'1','trigger':{'id':'order_started'},'integration':'ll',"
                           "'actions':[{'action':'lead_add','params':{'machine':'m'}}],'options':{'send_billet_link':true}}"),
               "billet_not_carried", "options.send_billet_link");
    /* both at once */
    int n = 0;
    json_object *r = check(&e, add(&e, "{'name':'z','product':'1','trigger':{'id':'club_free_registration'},'integration':'mc',"
                                       "'actions':[{'action':'tag_add','params':{'tag':'t'}}],'options':{'send_billet_link':true}}"),
                           &n);
    ck_assert_int_eq(n, 2);
    ASSERT_REASON(r, "billet_not_supported", "options.send_billet_link");
    ASSERT_REASON(r, "billet_not_carried", "options.send_billet_link");
    json_object_put(r);
    env_close(&e);
}
END_TEST

START_TEST(check_reports_every_reason)
{
    env e;
    env_open(&e);
    lb_segmentation *s = add(&e, "{'name':'x','product':'1','trigger':{'id':'cart_abandonment'},'integration':'ck',"
                                 "'conditions':[{'id':'installments','params':{'op':'eq','value':1}},{'id':'nope'}],"
                                 "'actions':[{'action':'tag_remove','params':{'tag':'buyer'}},{'action':'fly'},"
                                 "{'action':'list_add','params':{'colour':'red'}}],'options':{'send_billet_link':true}}");
    json_object *before = lb_segmentation_to_json(s);
    int n = 0;
    json_object *r = check(&e, s, &n);
    ASSERT_REASON(r, "condition_not_applicable", "conditions[1].id");
    ASSERT_REASON(r, "unknown_condition", "conditions[2].id");
    ASSERT_REASON(r, "unknown_action", "actions[2].action");
    ASSERT_REASON(r, "missing_param", "actions[3].params.form");
    ASSERT_REASON(r, "unknown_param", "actions[3].params.colour");
    ASSERT_REASON(r, "missing_prerequisite", "actions[1].params.tag");
    ASSERT_REASON(r, "billet_not_supported", "options.send_billet_link");
    ASSERT_REASON(r, "billet_not_carried", "options.send_billet_link");
    ck_assert_int_eq(n, 8);
    /* checking does not change the segmentation */
    json_object *after = lb_segmentation_to_json(s);
    ck_assert_str_eq(json_object_to_json_string(before), json_object_to_json_string(after));
    json_object_put(before);
    json_object_put(after);
    json_object_put(r);
    env_close(&e);
}
END_TEST

/* ---- re-check ------------------------------------------------------------------------------------ */

START_TEST(recheck_all_ok)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "buyer", ""));
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    for (size_t i = 0; i < e.n; i++)
        ck_assert_int_eq(e.segs[i]->status, LB_SEG_OK);
    env_close(&e);
}
END_TEST

START_TEST(recheck_sibling_disabled_then_enabled)
{
    env e;
    env_open(&e);
    lb_segmentation *rm = add(&e, CK_REMOVE);
    lb_segmentation *ad = add(&e, CK_ADD("add", "buyer", ""));
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    ad->enabled = false;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 1);
    ck_assert_int_eq(rm->status, LB_SEG_NEEDS_REVIEW);
    ASSERT_REASON(rm->reasons, "missing_prerequisite", "actions[1].params.tag");
    ck_assert_int_eq(ad->status, LB_SEG_OK); /* disabled, not inconsistent */
    ck_assert_str_eq(lb_segmentation_state_name(rm), "needs_review");
    ck_assert_str_eq(lb_segmentation_state_name(ad), "disabled");
    ad->enabled = true;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 1);
    ck_assert_int_eq(rm->status, LB_SEG_OK);
    ck_assert_uint_eq(json_object_array_length(rm->reasons), 0);
    env_close(&e);
}
END_TEST

START_TEST(recheck_sibling_removed)
{
    env e;
    env_open(&e);
    lb_segmentation *rm = add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "buyer", ""));
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    /* the add is deleted: re-check what is left */
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, 1, &e.ctx), 1);
    ck_assert_int_eq(rm->status, LB_SEG_NEEDS_REVIEW);
    ASSERT_REASON(rm->reasons, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

START_TEST(recheck_provider_disappears)
{
    env e;
    env_open(&e);
    lb_segmentation *rm = add(&e, CK_REMOVE);
    lb_segmentation *ad = add(&e, CK_ADD("add", "buyer", ""));
    lb_segmentation *mc = add(&e, MC_BUYERS);
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    e.igs[1].plugin = NULL; /* "ck" */
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 2);
    ASSERT_REASON(rm->reasons, "provider_not_loaded", "integration");
    ASSERT_REASON(ad->reasons, "provider_not_loaded", "integration");
    ck_assert_int_eq(mc->status, LB_SEG_OK);
    /* flagged, not deleted: they come back with the provider */
    e.igs[1].plugin = &kitlike;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 2);
    ck_assert_int_eq(rm->status, LB_SEG_OK);
    ck_assert_int_eq(ad->status, LB_SEG_OK);
    env_close(&e);
}
END_TEST

START_TEST(recheck_cascades)
{
    env e;
    env_open(&e);
    lb_segmentation *rm = add(&e, CK_REMOVE);
    lb_segmentation *ad = add(&e, "{'name':'add','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck',"
                                  "'actions':[{'action':'tag_add','params':{'tag':'buyer'}},{'action':'list_add','params':{'form':'f'}}]}");
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    /* the provider upgrade drops list_add: the add needs review, so it tags
     * nobody, so the remove that relied on it needs review too */
    e.igs[1].plugin = &kitlike2;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 2);
    ASSERT_REASON(ad->reasons, "unknown_action", "actions[2].action");
    ck_assert_uint_eq(json_object_array_length(ad->reasons), 1);
    ASSERT_REASON(rm->reasons, "missing_prerequisite", "actions[1].params.tag");
    ck_assert_uint_eq(json_object_array_length(rm->reasons), 1);
    env_close(&e);
}
END_TEST

START_TEST(recheck_cascades_two_levels)
{
    env e;
    env_open(&e);
    /* c relies on b's add of "vip"; b relies on a's add of "buyer"; a breaks.
     * Listed c first, so one pass in list order would still trust b. */
    lb_segmentation *c = add(&e, "{'name':'c','product':'1','trigger':{'id':'purchase_refunded'},'integration':'ck',"
                                 "'actions':[{'action':'tag_remove','params':{'tag':'vip'}}]}");
    lb_segmentation *b = add(&e, "{'name':'b','product':'1','trigger':{'id':'purchase_complete'},'integration':'ck',"
                                 "'actions':[{'action':'tag_remove','params':{'tag':'buyer'}},{'action':'tag_add','params':{'tag':'vip'}}]}");
    lb_segmentation *a = add(&e, "{'name':'a','product':'1','trigger':{'id':'purchase_approved'},'integration':'ck',"
                                 "'actions':[{'action':'tag_add','params':{'tag':'buyer'}},{'action':'list_add','params':{'form':'f'}}]}");
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    e.igs[1].plugin = &kitlike2;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 3);
    ck_assert_int_eq(a->status, LB_SEG_NEEDS_REVIEW);
    ck_assert_int_eq(b->status, LB_SEG_NEEDS_REVIEW);
    ck_assert_int_eq(c->status, LB_SEG_NEEDS_REVIEW);
    ASSERT_REASON(c->reasons, "missing_prerequisite", "actions[1].params.tag");
    /* the provider comes back: all three recover */
    e.igs[1].plugin = &kitlike;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 3);
    ck_assert_int_eq(c->status, LB_SEG_OK);
    env_close(&e);
}
END_TEST

START_TEST(recheck_groups_by_product)
{
    env e;
    env_open(&e);
    /* product 1 has its add; product 2's remove has none (and must not see 1's) */
    lb_segmentation *rm1 = add(&e, CK_REMOVE);
    lb_segmentation *rm2 = add(&e, "{'name':'rm2','product':'2','trigger':{'id':'purchase_refunded'},'integration':'ck',"
                                   "'actions':[{'action':'tag_remove','params':{'tag':'buyer'}}]}");
    add(&e, CK_ADD("add", "buyer", ""));
    e.ctx.n_siblings = 0; /* ignored by recheck */
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 1);
    ck_assert_int_eq(rm1->status, LB_SEG_OK);
    ck_assert_int_eq(rm2->status, LB_SEG_NEEDS_REVIEW);
    env_close(&e);
}
END_TEST

START_TEST(recheck_groups_by_account)
{
    env e;
    env_open(&e);
    add(&e, CK_ADD("add", "buyer", ""));
    add_for(&e, "other", CK_ADD("add", "vip", ""));
    lb_segmentation *rm = add(&e, CK_REMOVE);
    lb_segmentation *other_rm = add_for(&e, "other", CK_REMOVE);
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 1);
    ck_assert_int_eq(rm->status, LB_SEG_OK);
    /* acme's add of "buyer" is not the other account's */
    ck_assert_int_eq(other_rm->status, LB_SEG_NEEDS_REVIEW);
    ASSERT_REASON(other_rm->reasons, "missing_prerequisite", "actions[1].params.tag");
    env_close(&e);
}
END_TEST

/* Copies rules_dir into a temporary tree without `skip` ("conditions/x.lua"). */
static void copy_rules(char *dir, size_t cap, const char *skip)
{
    snprintf(dir, cap, "/tmp/lb_seg_rulesXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *subs[] = {"triggers", "conditions"};
    for (size_t k = 0; k < 2; k++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", LB_TEST_RULES_DIR, subs[k]);
        snprintf(dst, sizeof dst, "%s/%s", dir, subs[k]);
        ck_assert_int_eq(mkdir(dst, 0700), 0);
        DIR *d = opendir(src);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *de; (de = readdir(d));) {
            char rel[300], from[1024], to[1024];
            snprintf(rel, sizeof rel, "%s/%s", subs[k], de->d_name);
            if (de->d_name[0] == '.' || strcmp(rel, skip) == 0)
                continue;
            snprintf(from, sizeof from, "%s/%s", src, de->d_name);
            snprintf(to, sizeof to, "%s/%s", dst, de->d_name);
            FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
            ck_assert(in && out);
            char buf[4096];
            for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;)
                ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
            fclose(in);
            fclose(out);
        }
        closedir(d);
    }
}

static void remove_rules(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(recheck_after_rule_change)
{
    env e;
    env_open(&e);
    lb_segmentation *mc = add(&e, MC_BUYERS); /* uses payment_method */
    lb_segmentation *rm = add(&e, CK_REMOVE);
    add(&e, CK_ADD("add", "buyer", ""));
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &e.ctx), 0);
    char dir[64];
    copy_rules(dir, sizeof dir, "conditions/payment_method.lua");
    lb_error err;
    lb_rules *reloaded = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_msg(reloaded != NULL, "%s: %s", err.field, err.message);
    lb_seg_ctx ctx = e.ctx;
    ctx.rules = reloaded;
    ck_assert_int_eq(lb_segmentations_recheck(e.segs, e.n, &ctx), 1);
    ck_assert_int_eq(mc->status, LB_SEG_NEEDS_REVIEW);
    ASSERT_REASON(mc->reasons, "unknown_condition", "conditions[1].id");
    ck_assert_int_eq(rm->status, LB_SEG_OK);
    lb_rules_free(reloaded);
    remove_rules(dir);
    env_close(&e);
}
END_TEST

/* ---- engine --------------------------------------------------------------------------------------- */

static json_object *fixture_root(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", LB_TEST_FIXTURES, name);
    json_object *root = json_object_from_file(path);
    ck_assert_msg(root != NULL, "cannot read %s", path);
    return root;
}

static json_object *normalize(json_object *root)
{
    lb_event ev;
    lb_error err;
    ck_assert_msg(lb_hotmart_normalize(root, &ev, &err) == 0, "%s: %s", err.field, err.message);
    json_object *doc = json_object_get(ev.doc);
    lb_event_clear(&ev);
    json_object_put(root);
    return doc;
}

static json_object *event_of(const char *fixture)
{
    return normalize(fixture_root(fixture));
}

typedef struct run {
    lb_job_list jobs;
    int errors;
    char last_error[128];
} run;

static void on_rule_error(void *ud, const lb_segmentation *seg, const lb_error *err)
{
    run *r = ud;
    r->errors++;
    snprintf(r->last_error, sizeof r->last_error, "%s %s", seg->name, err->field);
}

static int job_to_run(void *ud, lb_outbox_job *job)
{
    return lb_job_list_add(&((run *)ud)->jobs, job);
}

static int evaluate(lb_seg_engine *eng, const char *account, json_object *ev, int64_t id, run *r)
{
    memset(r, 0, sizeof *r);
    lb_seg_sink sink = {job_to_run, on_rule_error, r};
    int n = lb_seg_engine_evaluate(eng, account, ev, id, &sink);
    ck_assert_int_eq(n < 0 ? -1 : n, n < 0 ? -1 : (int)r->jobs.n);
    return n;
}

static lb_seg_engine *engine(env *e)
{
    lb_error err;
    lb_seg_engine *eng = lb_seg_engine_new(e->segs, e->n, &e->ctx, &err);
    ck_assert_msg(eng != NULL, "%s", err.message);
    return eng;
}

START_TEST(engine_jobs_from_approved)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    lb_seg_engine *eng = engine(&e);
    ck_assert_uint_eq(lb_seg_engine_active(eng), 1);
    json_object *ev = event_of("PURCHASE_APPROVED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 77, &r), 2);
    const char *lead = "{\"name\":\"Ana Teste\",\"first_name\":\"Ana\",\"last_name\":\"Teste\",\"phone\":\"11987654321\"}";
    for (size_t i = 0; i < 2; i++) {
        lb_outbox_job *j = r.jobs.v[i];
        ck_assert_int_eq(j->id, 0);
        ck_assert_str_eq(j->account, "acme");
        ck_assert_str_eq(j->integration, "mc");
        ck_assert_str_eq(j->lead_email, "ana.teste@example.com");
        ck_assert_str_eq(j->lead_json, lead);
        ck_assert_int_eq(j->event_id, 77);
        ck_assert_int_eq(j->segmentation_id, 11);
        ck_assert_int_eq(j->action_index, (int)i);
        ck_assert_int_eq(j->state, LB_JOB_READY);
        ck_assert_int_eq(j->attempts, 0);
    }
    ck_assert_str_eq(r.jobs.v[0]->action, "list_add");
    ck_assert_str_eq(r.jobs.v[0]->params_json, "{\"list\":\"57afe96172\"}");
    ck_assert_str_eq(r.jobs.v[0]->idempotency_key, "77:11:0");
    ck_assert_str_eq(r.jobs.v[1]->action, "tag_add");
    ck_assert_str_eq(r.jobs.v[1]->params_json, "{\"tag\":\"buyer\"}");
    ck_assert_str_eq(r.jobs.v[1]->idempotency_key, "77:11:1");
    char key[128];
    ck_assert_int_eq(lb_job_order_key(r.jobs.v[0], key, sizeof key), (int)strlen("mc\x1f" "ana.teste@example.com"));
    ck_assert_str_eq(key, "mc\x1f" "ana.teste@example.com");
    ck_assert_int_eq(lb_job_order_key(r.jobs.v[0], key, 8), -1);
    ck_assert_str_eq(key, "");
    ck_assert_int_eq(r.errors, 0);
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_conditions_filter)
{
    env e;
    env_open(&e);
    add(&e, "{'id':1,'name':'pix','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'conditions':[{'id':'payment_method','params':{'in':['PIX']}}],'actions':[{'action':'tag_add','params':{'tag':'pix'}}]}");
    add(&e, "{'id':2,'name':'12x','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'conditions':[{'id':'installments','params':{'op':'gt','value':6}}],'actions':[{'action':'tag_add','params':{'tag':'12x'}}]}");
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_APPROVED"); /* CREDIT_CARD, 12 installments */
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 5, &r), 1);
    ck_assert_int_eq(r.jobs.v[0]->segmentation_id, 2);
    ck_assert_str_eq(r.jobs.v[0]->params_json, "{\"tag\":\"12x\"}");
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_trigger_routing_and_billet)
{
    env e;
    env_open(&e);
    add(&e, "{'id':1,'name':'approved','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    add(&e, "{'id':2,'name':'slip','product':'4123456','trigger':{'id':'bank_slip_issued'},'integration':'ll',"
            "'actions':[{'action':'lead_add','params':{'machine':'m1'}}],'options':{'send_billet_link':true}}");
    add(&e, "{'id':3,'name':'slip-mc','product':'4123456','trigger':{'id':'bank_slip_issued'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'slip'}}]}");
    lb_seg_engine *eng = engine(&e);
    ck_assert_uint_eq(lb_seg_engine_active(eng), 3);
    json_object *ev = event_of("PURCHASE_BILLET_PRINTED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 9, &r), 2);
    ck_assert_int_eq(r.jobs.v[0]->segmentation_id, 2);
    ck_assert_str_eq(r.jobs.v[0]->lead_json,
                     "{\"name\":\"Ana Teste\",\"first_name\":\"Ana\",\"last_name\":\"Teste\",\"phone\":\"11987654321\","
                     "\"billet_url\":\"https://hotm.art/bHP17715690036014\"}");
    /* without the option the link stays out, though the event has it */
    ck_assert_int_eq(r.jobs.v[1]->segmentation_id, 3);
    ck_assert_ptr_null(strstr(r.jobs.v[1]->lead_json, "billet_url"));
    ck_assert_str_eq(r.jobs.v[1]->idempotency_key, "9:3:0");
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_cart_lead_fields)
{
    env e;
    env_open(&e);
    add(&e, "{'id':4,'name':'cart','product':'4123456','trigger':{'id':'cart_abandonment'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'cart'}}]}");
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_OUT_OF_SHOPPING_CART");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 3, &r), 1);
    ck_assert_str_eq(r.jobs.v[0]->lead_email, "bruno.teste@example.com");
    ck_assert_str_eq(r.jobs.v[0]->lead_json, "{\"name\":\"Bruno Teste\",\"phone\":\"11912345678\"}");
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_skips_disabled_and_inconsistent)
{
    env e;
    env_open(&e);
    lb_segmentation *off = add(&e, "{'id':1,'name':'off','product':'4123456','trigger':{'id':'purchase_approved'},"
                                   "'integration':'mc','actions':[{'action':'tag_add','params':{'tag':'a'}}],'enabled':false}");
    lb_segmentation *bad = add(&e, "{'id':2,'name':'bad','product':'4123456','trigger':{'id':'purchase_approved'},"
                                   "'integration':'gone','actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    lb_segmentation *rm = add(&e, "{'id':3,'name':'rm','product':'4123456','trigger':{'id':'purchase_approved'},"
                                  "'integration':'ck','actions':[{'action':'tag_remove','params':{'tag':'x'}}]}");
    lb_seg_engine *eng = engine(&e);
    /* building the engine checked them */
    ck_assert_int_eq(off->status, LB_SEG_OK);
    ck_assert_int_eq(bad->status, LB_SEG_NEEDS_REVIEW);
    ck_assert_int_eq(rm->status, LB_SEG_NEEDS_REVIEW);
    ck_assert_uint_eq(lb_seg_engine_active(eng), 0);
    json_object *ev = event_of("PURCHASE_APPROVED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_account_and_product_index)
{
    env e;
    env_open(&e);
    add(&e, "{'id':1,'name':'p2','product':'999','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    add_for(&e, "other", "{'id':2,'name':'o','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
                         "'actions':[{'action':'tag_add','params':{'tag':'o'}}]}");
    add(&e, "{'id':3,'name':'a1','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'first'}}]}");
    add(&e, "{'id':4,'name':'a2','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'ck',"
            "'actions':[{'action':'tag_add','params':{'tag':'second'}}]}");
    lb_seg_engine *eng = engine(&e);
    ck_assert_uint_eq(lb_seg_engine_active(eng), 4);
    json_object *ev = event_of("PURCHASE_APPROVED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 2);
    /* the declaration order within the product is the job order */
    ck_assert_int_eq(r.jobs.v[0]->segmentation_id, 3);
    ck_assert_int_eq(r.jobs.v[1]->segmentation_id, 4);
    ck_assert_str_eq(r.jobs.v[1]->integration, "ck");
    lb_job_list_clear(&r.jobs);
    ck_assert_int_eq(evaluate(eng, "other", ev, 1, &r), 1);
    ck_assert_str_eq(r.jobs.v[0]->account, "other");
    ck_assert_int_eq(r.jobs.v[0]->segmentation_id, 2);
    lb_job_list_clear(&r.jobs);
    ck_assert_int_eq(evaluate(eng, "nobody", ev, 1, &r), 0);
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

/* covers: whether an event of a type could make anything, without reading
 * the event (the ingest path then skips making its json-c document) */
START_TEST(engine_covers_by_account_product_and_trigger_type)
{
    env e;
    env_open(&e);
    add(&e, "{'id':1,'name':'a','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    add(&e, "{'id':2,'name':'slip','product':'4123456','trigger':{'id':'bank_slip_issued'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'s'}}]}");
    add(&e, "{'id':3,'name':'off','product':'777','trigger':{'id':'purchase_refunded'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'r'}}],'enabled':false}");
    lb_seg_engine *eng = engine(&e);
    ck_assert(lb_seg_engine_covers(eng, "acme", "4123456", "purchase.approved"));
    ck_assert(lb_seg_engine_covers(eng, "acme", "4123456", "purchase.billet_printed"));
    ck_assert(!lb_seg_engine_covers(eng, "acme", "4123456", "purchase.refunded"));
    ck_assert(!lb_seg_engine_covers(eng, "acme", "777", "purchase.refunded")); /* disabled */
    ck_assert(!lb_seg_engine_covers(eng, "acme", "999", "purchase.approved"));
    ck_assert(!lb_seg_engine_covers(eng, "other", "4123456", "purchase.approved"));
    ck_assert(!lb_seg_engine_covers(eng, "acme", NULL, "purchase.approved"));
    ck_assert(!lb_seg_engine_covers(eng, "acme", "", "purchase.approved"));
    ck_assert(!lb_seg_engine_covers(eng, "acme", "4123456", NULL));
    ck_assert(!lb_seg_engine_covers(NULL, "acme", "4123456", "purchase.approved"));
    /* and what it says is what evaluation does: a refund on the product makes nothing */
    json_object *ev = event_of("PURCHASE_REFUNDED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_ignored_event_makes_nothing)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    lb_seg_engine *eng = engine(&e);
    /* a purchase_approved rule sees type "unknown" anyway; the gate must be
     * the ignored flag, so also mark a matching document ignored */
    json_object *root = fixture_root("PURCHASE_APPROVED");
    json_object_object_add(root, "event", json_object_new_string("ORDER_FULFILLMENT"));
    json_object *ev = normalize(root);
    ck_assert(json_object_get_boolean(json_object_object_get(ev, "ignored")));
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    json_object_put(ev);
    ev = event_of("PURCHASE_APPROVED");
    json_object_object_add(ev, "ignored", json_object_new_boolean(1));
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    json_object_object_add(ev, "ignored", json_object_new_boolean(0));
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 2); /* the same document acts once not ignored */
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_no_lead_email_makes_nothing)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_APPROVED");
    json_object_object_del(json_object_object_get(ev, "lead"), "email");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    json_object_object_del(ev, "product");
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_rule_error_isolated)
{
    env e;
    env_open(&e);
    add(&e, "{'id':1,'name':'boom','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'custom':{'inline':'return function(ev) error(\\'boom\\') end'},'actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    add(&e, MC_BUYERS);
    lb_seg_engine *eng = engine(&e);
    ck_assert_uint_eq(lb_seg_engine_active(eng), 2);
    json_object *ev = event_of("PURCHASE_APPROVED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 2);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_msg(strncmp(r.last_error, "boom rule:", 10) == 0, "%s", r.last_error);
    ck_assert_int_eq(r.jobs.v[0]->segmentation_id, 11);
    lb_job_list_clear(&r.jobs);
    /* a sink without an error callback still works (errors are logged) */
    lb_job_list jobs = {NULL, 0, 0};
    lb_seg_sink sink = {lb_job_list_add, NULL, &jobs};
    ck_assert_int_eq(lb_seg_engine_evaluate(eng, "acme", ev, 2, &sink), 2);
    ck_assert_str_eq(jobs.v[0]->idempotency_key, "2:11:0");
    lb_job_list_clear(&jobs);
    ck_assert_uint_eq(jobs.n, 0);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

static int refuse_second(void *ud, lb_outbox_job *job)
{
    int *seen = ud;
    lb_job_free(job); /* the sink owns it either way */
    return ++*seen == 2 ? -1 : 0;
}

START_TEST(engine_sink_refusal_stops)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    add(&e, "{'id':12,'name':'more','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'more'}}]}");
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_APPROVED");
    int seen = 0;
    lb_seg_sink sink = {refuse_second, NULL, &seen};
    ck_assert_int_eq(lb_seg_engine_evaluate(eng, "acme", ev, 1, &sink), -1);
    ck_assert_int_eq(seen, 2); /* nothing after the refusal */
    lb_job_free(NULL);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(engine_needs_rules)
{
    lb_error err;
    lb_seg_ctx ctx = {NULL, NULL, 0, NULL, 0};
    ck_assert_ptr_null(lb_seg_engine_new(NULL, 0, &ctx, &err));
    ck_assert(err.message[0] != '\0');
    env e;
    env_open(&e);
    lb_seg_engine *eng = engine(&e); /* no segmentations at all */
    json_object *ev = event_of("PURCHASE_APPROVED");
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 1, &r), 0);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

/* ---- dry run ------------------------------------------------------------------------------------------- */

static json_object *member_at(json_object *o, const char *key, size_t i)
{
    return json_object_array_get_idx(json_object_object_get(o, key), i);
}

static size_t count_of(json_object *o, const char *key)
{
    return json_object_array_length(json_object_object_get(o, key));
}

START_TEST(dry_run_decisions)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    add(&e, "{'id':20,'name':'off','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'x'}}],'enabled':false}");
    add(&e, "{'id':21,'name':'bad','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'gone',"
            "'actions':[{'action':'tag_add','params':{'tag':'x'}}]}");
    add(&e, "{'id':22,'name':'refund','product':'4123456','trigger':{'id':'purchase_refunded'},'integration':'mc',"
            "'actions':[{'action':'tag_add','params':{'tag':'x'}}]}");
    add(&e, "{'id':23,'name':'boom','product':'4123456','trigger':{'id':'purchase_approved'},'integration':'mc',"
            "'custom':{'inline':'return function(ev) error(\\'boom\\') end'},'actions':[{'action':'tag_add','params':{'tag':'a'}}]}");
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_APPROVED");
    json_object *out = lb_seg_engine_dry_run(eng, "acme", ev);
    ck_assert_ptr_nonnull(out);
    const char *txt = json_object_to_json_string(out);
    ck_assert_str_eq(str_of(json_object_object_get(out, "event"), "type"), "purchase.approved");
    ck_assert_str_eq(str_of(json_object_object_get(out, "event"), "product"), "4123456");
    ck_assert_msg(count_of(out, "decisions") == 2, "%s", txt);
    json_object *d = member_at(out, "decisions", 1);
    ck_assert_str_eq(str_of(d, "segmentation"), "buyers");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(d, "segmentation_id")), 11);
    ck_assert_str_eq(str_of(d, "integration"), "mc");
    ck_assert_str_eq(str_of(d, "action"), "tag_add");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(d, "action_index")), 1);
    ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(d, "params"), JSON_C_TO_STRING_PLAIN),
                     "{\"tag\":\"buyer\"}");
    json_object *lead = json_object_object_get(d, "lead");
    ck_assert_str_eq(str_of(lead, "email"), "ana.teste@example.com");
    ck_assert_str_eq(str_of(lead, "first_name"), "Ana");
    ck_assert_msg(count_of(out, "skipped") == 3, "%s", txt);
    ck_assert_str_eq(str_of(member_at(out, "skipped", 0), "reason"), "disabled");
    ck_assert_str_eq(str_of(member_at(out, "skipped", 1), "reason"), "needs_review");
    ck_assert_ptr_nonnull(json_object_object_get(member_at(out, "skipped", 1), "reasons"));
    ck_assert_str_eq(str_of(member_at(out, "skipped", 2), "reason"), "no_match");
    ck_assert_str_eq(str_of(member_at(out, "skipped", 2), "segmentation"), "refund");
    ck_assert_msg(count_of(out, "errors") == 1, "%s", txt);
    ck_assert_str_eq(str_of(member_at(out, "errors", 0), "segmentation"), "boom");
    ck_assert_ptr_nonnull(strstr(str_of(member_at(out, "errors", 0), "message"), "boom"));
    ck_assert_ptr_null(json_object_object_get(out, "event_skipped"));
    json_object_put(out);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(dry_run_event_skipped)
{
    env e;
    env_open(&e);
    add(&e, MC_BUYERS);
    lb_seg_engine *eng = engine(&e);
    json_object *root = fixture_root("PURCHASE_APPROVED");
    json_object_object_add(root, "event", json_object_new_string("SOMETHING_NEW"));
    json_object *ev = normalize(root);
    json_object *out = lb_seg_engine_dry_run(eng, "acme", ev);
    ck_assert_ptr_nonnull(strstr(str_of(out, "event_skipped"), "ignored"));
    ck_assert_uint_eq(count_of(out, "decisions"), 0);
    json_object_put(out);
    json_object_put(ev);
    ev = event_of("PURCHASE_APPROVED");
    out = lb_seg_engine_dry_run(eng, "other", ev);
    ck_assert_ptr_nonnull(strstr(str_of(out, "event_skipped"), "product"));
    ck_assert_uint_eq(count_of(out, "skipped"), 0);
    json_object_put(out);
    /* the billet link shows in a dry run exactly as in a job */
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

START_TEST(dry_run_queues_nothing)
{
    env e;
    env_open(&e);
    add(&e, "{'id':2,'name':'slip','product':'4123456','trigger':{'id':'bank_slip_issued'},'integration':'ll',"
            "'actions':[{'action':'lead_add','params':{'machine':'m1'}}],'options':{'send_billet_link':true}}");
    lb_seg_engine *eng = engine(&e);
    json_object *ev = event_of("PURCHASE_BILLET_PRINTED");
    json_object *out = lb_seg_engine_dry_run(eng, "acme", ev);
    ck_assert_uint_eq(count_of(out, "decisions"), 1);
    ck_assert_str_eq(str_of(json_object_object_get(member_at(out, "decisions", 0), "lead"), "billet_url"),
                     "https://hotm.art/bHP17715690036014");
    json_object_put(out);
    /* a real evaluation afterwards still makes its job: the dry run changed nothing */
    run r;
    ck_assert_int_eq(evaluate(eng, "acme", ev, 4, &r), 1);
    ck_assert_str_eq(r.jobs.v[0]->idempotency_key, "4:2:0");
    lb_job_list_clear(&r.jobs);
    json_object_put(ev);
    lb_seg_engine_free(eng);
    env_close(&e);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("segmentation");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, parse_full_declaration);
    tcase_add_test(parse, parse_defaults);
    tcase_add_test(parse, parse_scalar_params_as_text);
    tcase_add_loop_test(parse, parse_refuses_bad_shape, 0, (int)(sizeof bad_decls / sizeof bad_decls[0]));
    tcase_add_test(parse, parse_limits_actions);
    tcase_add_test(parse, parse_text_errors);
    tcase_add_test(parse, parse_array_prefixes_index);
    tcase_add_test(parse, to_json_round_trip);
    tcase_add_test(parse, to_json_states);
    suite_add_tcase(s, parse);

    TCase *chk = tcase_create("check");
    tcase_set_timeout(chk, 30);
    tcase_add_test(chk, check_consistent);
    tcase_add_test(chk, check_unknown_trigger);
    tcase_add_test(chk, check_unknown_condition);
    tcase_add_test(chk, check_condition_not_applicable);
    tcase_add_test(chk, check_bad_rule_params);
    tcase_add_test(chk, check_custom_rule);
    tcase_add_test(chk, check_unknown_integration);
    tcase_add_test(chk, check_provider_not_loaded);
    tcase_add_test(chk, check_unknown_action);
    tcase_add_test(chk, check_action_params);
    tcase_add_test(chk, prereq_missing);
    tcase_add_test(chk, prereq_from_sibling);
    tcase_add_test(chk, prereq_other_value);
    tcase_add_test(chk, prereq_sibling_disabled);
    tcase_add_test(chk, prereq_sibling_needs_review);
    tcase_add_test(chk, prereq_other_integration_or_product);
    tcase_add_test(chk, prereq_self_provided);
    tcase_add_test(chk, prereq_replaced_version_ignored);
    tcase_add_test(chk, prereq_leadlovers);
    tcase_add_test(chk, billet_not_supported);
    tcase_add_test(chk, billet_not_carried);
    tcase_add_test(chk, check_reports_every_reason);
    suite_add_tcase(s, chk);

    TCase *re = tcase_create("recheck");
    tcase_set_timeout(re, 30);
    tcase_add_test(re, recheck_all_ok);
    tcase_add_test(re, recheck_sibling_disabled_then_enabled);
    tcase_add_test(re, recheck_sibling_removed);
    tcase_add_test(re, recheck_provider_disappears);
    tcase_add_test(re, recheck_cascades);
    tcase_add_test(re, recheck_cascades_two_levels);
    tcase_add_test(re, recheck_groups_by_product);
    tcase_add_test(re, recheck_groups_by_account);
    tcase_add_test(re, recheck_after_rule_change);
    suite_add_tcase(s, re);

    TCase *eng = tcase_create("engine");
    tcase_set_timeout(eng, 30);
    tcase_add_test(eng, engine_jobs_from_approved);
    tcase_add_test(eng, engine_conditions_filter);
    tcase_add_test(eng, engine_trigger_routing_and_billet);
    tcase_add_test(eng, engine_cart_lead_fields);
    tcase_add_test(eng, engine_skips_disabled_and_inconsistent);
    tcase_add_test(eng, engine_account_and_product_index);
    tcase_add_test(eng, engine_covers_by_account_product_and_trigger_type);
    tcase_add_test(eng, engine_ignored_event_makes_nothing);
    tcase_add_test(eng, engine_no_lead_email_makes_nothing);
    tcase_add_test(eng, engine_rule_error_isolated);
    tcase_add_test(eng, engine_sink_refusal_stops);
    tcase_add_test(eng, engine_needs_rules);
    tcase_add_test(eng, dry_run_decisions);
    tcase_add_test(eng, dry_run_event_skipped);
    tcase_add_test(eng, dry_run_queues_nothing);
    suite_add_tcase(s, eng);
    return s;
}

int main(void)
{
    return lb_run_suite_tap(make_suite());
}
