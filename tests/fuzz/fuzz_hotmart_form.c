/* fuzz_hotmart_form.c: libFuzzer (or AFL++) target for the 1.0 postback:
 * the form decoder and its normalizer. Any body must come back as an error
 * with a message, or as an event whose document is valid JSON (see
 * fuzz_check.h); the hottok it hands back is a string the caller frees, of
 * the length it gives (NULs inside counted).
 * Built and run by tests/fuzz/run; its corpus is replayed by make check. */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "hotmart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_event ev;
    lb_error err = {0};
    char *hottok = NULL;
    size_t hottok_len = 0;
    if (lb_hotmart_form_normalize((const char *)data, size, &ev, &hottok, &hottok_len, &err) == 0) {
        size_t len;
        fuzz_check_event(&ev, "fuzz_hotmart_form", &len);
        lb_event_clear(&ev);
    } else {
        fuzz_must(err.message[0] != '\0', "fuzz_hotmart_form", "an error without a message");
    }
    if (hottok) {
        fuzz_must(hottok_len <= size, "fuzz_hotmart_form", "a hottok longer than the body");
        fuzz_must(hottok[hottok_len] == '\0', "fuzz_hotmart_form", "a hottok not ended at its length");
        fuzz_must(strlen(hottok) <= hottok_len, "fuzz_hotmart_form", "a hottok longer than its length");
    }
    free(hottok);
    return 0;
}
