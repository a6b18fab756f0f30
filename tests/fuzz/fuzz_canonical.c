/* fuzz_canonical.c: libFuzzer (or AFL++) target for POST /v1/events: a body
 * json-c reads (as the route does, with the same depth limit) and the
 * validation of the server's own event shape. Any body must come back as an
 * error naming why, or as an event whose document is valid JSON (see
 * fuzz_check.h). Built and run by tests/fuzz/run; its corpus is replayed by
 * make check. */
#include <stdint.h>

#include "canonical.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    if (!root)
        return 0;
    lb_event ev;
    lb_error err = {0};
    if (lb_canonical_normalize(root, &ev, &err) == 0) {
        size_t len;
        fuzz_check_event(&ev, "fuzz_canonical", &len);
        lb_event_clear(&ev);
    } else {
        fuzz_must(err.message[0] != '\0', "fuzz_canonical", "an error without a message");
    }
    json_object_put(root);
    return 0;
}
