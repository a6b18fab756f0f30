/* http_chunked.h: decoding a chunked request body (RFC 9112 section 7.1) in
 * place, as its bytes arrive.
 *
 * The connection hands the decoder the bytes after the request head, again
 * each time more arrive. The decoder moves each chunk's data down over the
 * framing it has read, so the buffer always holds the decoded body first,
 * then the bytes it has not decoded yet: the body never needs a second copy,
 * and a client's framing (1-byte chunks cost 5 bytes of it each) never
 * counts against the body limit. Pure function over a byte buffer, so it is
 * unit-tested and fuzzed apart from the network code. */
#ifndef LB_HTTP_CHUNKED_H
#define LB_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

/* The longest chunk-size line (size and extensions) and trailer line taken,
 * and all trailer lines together. */
#define LB_CHUNKED_LINE_MAX 1024
#define LB_CHUNKED_TRAILER_MAX 8192
/* What a connection must be able to buffer past the decoded body: one line
 * not yet complete, or the whole trailer. */
#define LB_CHUNKED_SLACK (LB_CHUNKED_TRAILER_MAX + LB_CHUNKED_LINE_MAX)

typedef enum lb_chunked_result {
    LB_CHUNKED_MORE = 0,       /* need more bytes */
    LB_CHUNKED_DONE = 1,       /* the last chunk and the trailer are in */
    LB_CHUNKED_BAD = -1,       /* malformed framing */
    LB_CHUNKED_TOO_LARGE = -2, /* the decoded body would pass max_body */
} lb_chunked_result;

typedef struct lb_chunked_decoder {
    size_t decoded;     /* body bytes at the front of the buffer */
    uint64_t left;      /* data bytes still to come in the current chunk */
    size_t trailer;     /* trailer bytes read so far */
    int state;
} lb_chunked_decoder;

void lb_chunked_init(lb_chunked_decoder *d);

/* Decodes what it can of buf[d->decoded, *len) and moves the bytes it has
 * not decoded down behind the body, lowering *len by the framing removed.
 * On DONE the body is buf[0, d->decoded), and buf[d->decoded, *len) is what
 * followed the message (a pipelined request). On BAD or TOO_LARGE, *reason
 * says why, and the buffer is left in an undefined state. */
lb_chunked_result lb_chunked_decode(lb_chunked_decoder *d, char *buf, size_t *len, size_t max_body,
                                    const char **reason);

#endif
