/* fuzz_hotmart_json.c: libFuzzer (or AFL++) target for what a Hotmart
 * webhook body meets first: the flat JSON reader and the normalizer.
 *
 * Any input must come back as a parse error, a normalization error naming a
 * field, or an event whose document writes out as valid JSON; never a crash,
 * a leak or undefined behaviour. Documents the flat reader accepts must also
 * be accepted by json-c, to the same values (the reader claims json-c's
 * grammar minus its extensions). Built and run by tests/fuzz/run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "hotmart.h"
#include "json_flat.h"

static lb_jflat *flat;

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_hotmart_json: %s\n", what);
        abort();
    }
}

/* The event's document as the daemon writes it must read back as JSON, and
 * as the same document as its json-c form. */
static void check_document(lb_event *ev)
{
    size_t len;
    lb_event_set_account(ev, "fuzz");
    const char *text = lb_event_text(ev, &len);
    char why[160];
    must(text != NULL, "document cannot be written");
    must(lb_jflat_parse(flat, text, len, 64, why, sizeof why) != NULL, "document does not read back");
    /* compared as JSON texts: a price sent as 19 is a double in json-c's
     * tree (it keeps the sender's spelling) and an integer once read back */
    json_object *read_back = json_tokener_parse(text);
    must(read_back != NULL, "json-c cannot read the document");
    json_object *tree = lb_event_json(ev);
    must(tree != NULL, "no json-c document");
    json_object *tree_back = json_tokener_parse(json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN));
    must(json_object_equal(read_back, tree_back), "the text and the json-c document differ");
    json_object_put(read_back);
    json_object_put(tree_back);
    must(ev->lead_email != NULL || ev->ignored, "an event without a lead was not ignored");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[160];
    if (!flat)
        flat = lb_jflat_new();
    const lb_jnode *root = lb_jflat_parse(flat, (const char *)data, size, 64, why, sizeof why);
    if (!root)
        return 0;
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *other = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    enum json_tokener_error jerr = json_tokener_get_error(tok); /* JSON null reads as NULL */
    must(jerr == json_tokener_success || jerr == json_tokener_continue, /* a lone number may go on */
         "json-c refuses what the flat reader accepts");
    json_object_put(other);
    json_tokener_free(tok);
    lb_event ev;
    lb_error err;
    if (lb_hotmart_normalize_flat(root, &ev, &err) == 0) {
        check_document(&ev);
        lb_event_clear(&ev);
    } else {
        must(err.message[0] != '\0', "an error without a message");
    }
    return 0;
}
