/* fuzz_http_chunked.c: libFuzzer (or AFL++) target for the chunked-body
 * decoder (http_chunked.c), which works in place on bytes a peer sent.
 *
 * Input: byte 0 chooses the body limit, byte 1 the size of the pieces the
 * bytes arrive in; the rest is what follows a request head.
 *
 * Checks, besides "no crash, no undefined behaviour" (the buffers are exactly
 * as large as the input, so the sanitizers see any access past them):
 *   - the decoder is incremental, as the connection uses it: fed the bytes
 *     in pieces, each piece appended behind what it left undecoded, it ends
 *     exactly as when fed them at once: the same result, the same body, and
 *     on DONE the same bytes left over (a pipelined request);
 *   - the body never passes the limit, and the buffer never grows;
 *   - on DONE, the body and what follows it fit in what was sent, with at
 *     least the 5 bytes of a last chunk ("0\r\n\r\n") between them.
 * Built and run by tests/fuzz/run; its corpus is replayed by make check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_must.h"
#include "http_chunked.h"

static void chunked_must(int ok, const char *what) { fuzz_must(ok, "fuzz_http_chunked", what); }

typedef struct decoding {
    lb_chunked_result rc;
    lb_chunked_decoder d;
    char *buf;
    size_t len; /* bytes in buf: the body, then what is not decoded (or follows) */
} decoding;

static void check_step(const decoding *x, size_t fed, size_t max_body)
{
    chunked_must(x->len <= fed, "the buffer grew");
    chunked_must(x->d.decoded <= max_body, "a body past the limit");
    chunked_must(x->d.decoded <= x->len, "a body longer than the buffer");
}

/* All the bytes at once. */
static decoding decode_at_once(const uint8_t *p, size_t n, size_t max_body)
{
    decoding x = {.buf = malloc(n ? n : 1), .len = n};
    chunked_must(x.buf != NULL, "out of memory");
    memcpy(x.buf, p, n);
    lb_chunked_init(&x.d);
    const char *why = NULL;
    x.rc = lb_chunked_decode(&x.d, x.buf, &x.len, max_body, &why);
    check_step(&x, n, max_body);
    chunked_must(x.rc >= 0 || (why && *why), "a refusal without a reason");
    return x;
}

/* The bytes in pieces of `piece`, as reads deliver them; stops at the first
 * answer other than MORE. The bytes not fed by then are appended, so that
 * on DONE buf holds the body and everything after it. */
static decoding decode_in_pieces(const uint8_t *p, size_t n, size_t piece, size_t max_body)
{
    decoding x = {.buf = malloc(n ? n : 1), .rc = LB_CHUNKED_MORE};
    chunked_must(x.buf != NULL, "out of memory");
    lb_chunked_init(&x.d);
    size_t fed = 0;
    while (fed < n && x.rc == LB_CHUNKED_MORE) {
        size_t k = n - fed < piece ? n - fed : piece;
        memcpy(x.buf + x.len, p + fed, k);
        x.len += k;
        fed += k;
        const char *why = NULL;
        x.rc = lb_chunked_decode(&x.d, x.buf, &x.len, max_body, &why);
        check_step(&x, fed, max_body);
    }
    if (x.rc == LB_CHUNKED_DONE) {
        memcpy(x.buf + x.len, p + fed, n - fed);
        x.len += n - fed;
    }
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_body = (size_t)data[0] * 61; /* 0 to 15,555 bytes */
    size_t piece = 1 + data[1] % 64;
    data += 2;
    size -= 2;
    decoding once = decode_at_once(data, size, max_body);
    decoding pieces = decode_in_pieces(data, size, piece, max_body);
    chunked_must(once.rc == pieces.rc, "pieces decode to another result than the whole");
    if (once.rc >= 0) {
        chunked_must(once.d.decoded == pieces.d.decoded && memcmp(once.buf, pieces.buf, once.d.decoded) == 0,
                     "pieces decode to another body than the whole");
    }
    if (once.rc == LB_CHUNKED_DONE) {
        chunked_must(once.len == pieces.len && memcmp(once.buf, pieces.buf, once.len) == 0,
                     "pieces leave other bytes after the body than the whole");
        chunked_must(once.len + 5 <= size, "a body and what follows it longer than the framing allows");
    }
    free(once.buf);
    free(pieces.buf);
    return 0;
}
