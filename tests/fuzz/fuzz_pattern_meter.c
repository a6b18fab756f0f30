/* fuzz_pattern_meter.c: libFuzzer (or AFL++) target for the pattern meter
 * (core/lua_pattern_meter.c), held against Lua's own matcher. Input: a
 * mode byte (0 string.find, 1 string.gsub, 2 string.gmatch: the byte modulo
 * 3), then the pattern, a NUL, and the subject. The meter must stop where
 * Lua raises, find the match Lua finds or count the matches gsub and
 * gmatch see, within a step limit that a walk Lua can finish in a moment
 * never reaches. Built and run by tests/fuzz/run; its corpus is replayed by
 * make check. */
#include <stdint.h>
#include <string.h>

#include "fuzz_must.h"
#include "lua_pattern_meter.h"
#include "pattern_oracle.h"

#define TARGET "fuzz_pattern_meter"
#define FUZZ_STEP_LIMIT (1u << 22) /* Lua's matcher takes about as many: a few ms */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 512)
        return 0; /* long subjects add time, not paths */
    int mode = data[0] % 3;
    const char *p = (const char *)data + 1;
    const char *nul = memchr(p, '\0', size - 1);
    if (!nul)
        return 0;
    size_t m = (size_t)(nul - p);
    const char *s = nul + 1;
    size_t n = size - 1 - m - 1;
    if (mode == 0 && !lb_pattern_has_specials(p, m))
        return 0;
    /* Lua strings: NUL-terminated past their length, which the walk reads
     * where the matcher does (%f and %b at the subject's end) */
    char subject[512], pattern[512];
    memcpy(subject, s, n);
    subject[n] = '\0';
    memcpy(pattern, p, m);
    pattern[m] = '\0';
    lb_pattern_walk walk;
    lb_pattern_meter(subject, n, pattern, m, 0, mode != 0, mode != 2, FUZZ_STEP_LIMIT, &walk);
    if (walk.over)
        return 0; /* Lua would take as long: not asked */
    pattern_answer lua = pattern_oracle_ask(mode, subject, n, pattern, m);
    if (lua.unfinished) {
        fuzz_must(!walk.halted && (mode == 0 ? walk.matched : walk.matches > 0), TARGET,
                  "Lua matched (then found a capture unfinished); the walk did not");
        return 0;
    }
    fuzz_must(walk.halted == lua.error, TARGET,
              lua.error ? "Lua raised; the walk did not halt" : "the walk halted where Lua did not raise");
    if (lua.error)
        return 0;
    if (mode == 0) {
        fuzz_must(walk.matched == lua.matched, TARGET, "the walk and Lua disagree on whether it matches");
        fuzz_must(!walk.matched || (walk.start == lua.start && walk.end == lua.end), TARGET,
                  "the walk and Lua disagree on where it matches");
    } else {
        fuzz_must(walk.matches == lua.matches, TARGET, "the walk and Lua count other matches");
    }
    return 0;
}
