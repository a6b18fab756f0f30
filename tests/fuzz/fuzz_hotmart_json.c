/* fuzz_hotmart_json.c: libFuzzer (or AFL++) target for what a Hotmart
 * webhook body meets first: the flat JSON reader and the normalizer.
 *
 * Any input must come back as a parse error, a normalization error naming a
 * field, or an event whose document writes out as valid JSON; never a crash,
 * a leak or undefined behaviour. Documents the flat reader accepts must also
 * be accepted by json-c, to the same values (the reader claims json-c's
 * grammar minus its extensions). Built and run by tests/fuzz/run. */
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz_check.h"
#include "hotmart.h"
#include "json_flat.h"

static lb_jflat *flat;

static void must(int ok, const char *what) { fuzz_must(ok, "fuzz_hotmart_json", what); }

/* The shared checks (fuzz_check.h), and the stored text reads back through
 * the flat reader too, as the daemon's own reads of it do. */
static void check_document(lb_event *ev)
{
    size_t len;
    const char *text = fuzz_check_event(ev, "fuzz_hotmart_json", &len);
    char why[160];
    must(lb_jflat_parse(flat, text, len, 64, why, sizeof why) != NULL, "document does not read back");
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
