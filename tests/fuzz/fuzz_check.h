/* fuzz_check.h: what every normalizer target asks of an event it produced. */
#ifndef LB_FUZZ_CHECK_H
#define LB_FUZZ_CHECK_H

#include <json-c/json.h>

#include "event.h"
#include "fuzz_must.h"
#include "json_flat.h"

/* The stored text of the event reads back as a JSON object equal to its
 * json-c document, also through the flat reader, whose numbers are RFC
 * 8259's (json-c also reads "1.", which made stored text that was not
 * JSON), and an event that is not ignored names its lead.
 * Returns the stored text (the event's), for checks of a target's own. */
static const char *fuzz_check_event(lb_event *ev, const char *target, size_t *len)
{
    fuzz_must(lb_event_set_account(ev, "fuzz") == 0, target, "cannot set the account");
    const char *text = lb_event_text(ev, len);
    fuzz_must(text != NULL, target, "document cannot be written");
    /* compared as JSON texts: a price sent as 19 is a double in json-c's
     * tree (it keeps the sender's spelling) and an integer once read back */
    char why[160];
    lb_jflat *flat = lb_jflat_new();
    fuzz_must(flat != NULL, target, "out of memory");
    fuzz_must(lb_jflat_parse(flat, text, *len, 64, why, sizeof why) != NULL, target, "the stored text is not JSON");
    lb_jflat_free(flat);
    json_object *read_back = json_tokener_parse(text);
    fuzz_must(read_back != NULL && json_object_is_type(read_back, json_type_object), target,
              "the stored text is not a JSON object");
    json_object *tree = lb_event_json(ev);
    fuzz_must(tree != NULL, target, "no json-c document");
    json_object *tree_back = json_tokener_parse(json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN));
    fuzz_must(json_object_equal(read_back, tree_back), target, "the text and the json-c document differ");
    json_object_put(read_back);
    json_object_put(tree_back);
    fuzz_must(ev->type != NULL && ev->source != NULL && ev->source_event_id != NULL, target,
              "an event without type, source or id");
    fuzz_must(ev->lead_email != NULL || ev->ignored, target, "an event without a lead was not ignored");
    return text;
}

#endif
