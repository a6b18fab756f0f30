/* event.c: lifecycle of the normalized event and its two document forms. */
#include "event.h"

#include <string.h>

void lb_event_bind_edoc(lb_event *ev, lb_edoc *edoc, const char *source, const char *type)
{
    ev->edoc = edoc;
    ev->doc = NULL;
    ev->source = source;
    ev->type = type;
    ev->source_event_id = lb_edoc_str(edoc, "id");
    ev->source_type = lb_edoc_str(edoc, "source_type");
    ev->occurred_at_ms = lb_edoc_int(edoc, "occurred_at", 0);
    ev->product_id = lb_edoc_str(edoc, "product.id");
    ev->lead_email = lb_edoc_str(edoc, "lead.email");
    ev->test = lb_edoc_bool(edoc, "test", false);
    ev->ignored = lb_edoc_bool(edoc, "ignored", false);
}

json_object *lb_event_json(lb_event *ev)
{
    if (!ev->doc && ev->edoc)
        ev->doc = lb_edoc_to_json(ev->edoc);
    return ev->doc;
}

json_object *lb_event_json_for_change(lb_event *ev)
{
    json_object *doc = lb_event_json(ev);
    if (doc)
        ev->edoc_stale = true;
    return doc;
}

/* Whether the edoc is the document the text is written from. */
static bool edoc_current(const lb_event *ev)
{
    return ev->edoc && !ev->edoc_stale;
}

const char *lb_event_text(lb_event *ev, size_t *len)
{
    if (edoc_current(ev))
        return lb_edoc_text(ev->edoc, len);
    /* "/" unescaped, as the edoc writes it: one spelling in the store */
    return ev->doc ? json_object_to_json_string_length(ev->doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                       len)
                   : NULL;
}

/* doc[key] = v (taken) in the json-c form, if there is one. */
static int set_json(lb_event *ev, const char *key, json_object *v)
{
    if (!ev->doc) {
        json_object_put(v);
        return 0;
    }
    if (!v || json_object_object_add(ev->doc, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

/* Both forms stay the same document: a change goes to each that exists. */
int lb_event_set_account(lb_event *ev, const char *account_id)
{
    if (edoc_current(ev) && lb_edoc_set_str(ev->edoc, "account", account_id) < 0)
        return -1;
    return set_json(ev, "account", ev->doc ? json_object_new_string(account_id) : NULL);
}

int lb_event_set_ignored(lb_event *ev)
{
    ev->ignored = true;
    if (edoc_current(ev) && lb_edoc_set_bool(ev->edoc, "ignored", true) < 0)
        return -1;
    return set_json(ev, "ignored", ev->doc ? json_object_new_boolean(1) : NULL);
}

void lb_event_clear_keep_edoc(lb_event *ev, lb_edoc **edoc)
{
    if (ev->doc)
        json_object_put(ev->doc);
    *edoc = ev->edoc;
    memset(ev, 0, sizeof *ev);
}

void lb_event_clear(lb_event *ev)
{
    lb_edoc *edoc;
    lb_event_clear_keep_edoc(ev, &edoc);
    lb_edoc_free(edoc);
}
