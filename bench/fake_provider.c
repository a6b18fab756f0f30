/* bench/fake_provider.c: a fast fake of the example plugin's provider
 * (plugins/example/example.c), for bench/dispatch. One libevent loop over
 * plain sockets, HTTP/1.1 keep-alive, loopback only.
 *
 *   POST {base}/tags  -> 200 {"contact":{"id":"1"}}   counted; the arrival
 *                        time (CLOCK_REALTIME, ns) is recorded with the
 *                        "email" of the body
 *   GET  {base}/me    -> 200 {"ok":true}
 *   GET  {base}/tags  -> 200 {"tags":[]}
 *   GET  /__stats     -> "tags=N first_ns=T last_ns=T connections=C other=M\n"
 *   GET  /__dump      -> one line per recorded POST /tags: "<arrival_ns> <email>\n"
 *   POST /__reset     -> forgets every record and count
 *
 * It shares the cores with the daemon it measures, so it is kept cheap: per
 * request one read and one write on a socket that stays in epoll (libevent's
 * evhttp re-arms its events several times per request). It understands what
 * its clients send: requests with a Content-Length body or none, possibly
 * pipelined; "Connection: close" is honoured. `connections` counts the
 * connections accepted since the last reset.
 *
 * Usage: fake_provider PORTFILE   (listens on 127.0.0.1, an ephemeral port,
 * written to PORTFILE once listening; SIGTERM/SIGINT end it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#define MAX_REQUEST (1024 * 1024)

typedef struct rec {
    int64_t ns;
    char email[56];
} rec;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct fake {
    struct event_base *base;
    rec *recs;
    size_t n_recs, cap_recs;
    unsigned long other, n_conns;
    int64_t first_ns, last_ns;
} fake;

typedef struct conn {
    fake *f;
    int fd;
    struct event *rd, *wr;
    buf in, out;
    size_t out_off;
    int closing; /* close once out is written */
} conn;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int reserve(buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int append(buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static void conn_free(conn *c)
{
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

static void reply(conn *c, int code, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n", code,
                     code == 200 ? "OK" : "Error", len, c->closing ? "Connection: close\r\n" : "");
    append(&c->out, head, (size_t)n);
    append(&c->out, body, len);
}

static void reply_str(conn *c, int code, const char *body) { reply(c, code, body, strlen(body)); }

static void record(fake *f, const char *body, size_t len, int64_t t)
{
    if (f->n_recs == f->cap_recs) {
        size_t cap = f->cap_recs ? f->cap_recs * 2 : 65536;
        rec *v = realloc(f->recs, cap * sizeof *v);
        if (!v)
            return;
        f->recs = v;
        f->cap_recs = cap;
    }
    rec *r = &f->recs[f->n_recs++];
    r->ns = t;
    r->email[0] = '\0';
    const char *p = memmem(body, len, "\"email\":", 8);
    if (p) {
        const char *end = body + len;
        p += 8;
        while (p < end && (*p == ' ' || *p == '"'))
            p++;
        size_t k = 0;
        while (p + k < end && p[k] != '"' && k + 1 < sizeof r->email) {
            r->email[k] = p[k];
            k++;
        }
        r->email[k] = '\0';
    }
    if (f->first_ns == 0)
        f->first_ns = t;
    f->last_ns = t;
}

static void dump(conn *c)
{
    fake *f = c->f;
    buf b = {0};
    char line[96];
    for (size_t i = 0; i < f->n_recs; i++) {
        int n = snprintf(line, sizeof line, "%lld %s\n", (long long)f->recs[i].ns, f->recs[i].email);
        append(&b, line, (size_t)n);
    }
    reply(c, 200, b.p ? b.p : "", b.len);
    free(b.p);
}

static int ends_with(const char *path, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(path + n - k, suffix, k) == 0;
}

static void handle(conn *c, const char *method, const char *uri, size_t uri_len, const char *body, size_t body_len,
                   int64_t t)
{
    fake *f = c->f;
    size_t ul = uri_len;
    const char *q = memchr(uri, '?', uri_len);
    if (q)
        ul = (size_t)(q - uri);
    int post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    int internal = uri_len >= 3 && memcmp(uri, "/__", 3) == 0;
    if (post && ends_with(uri, ul, "/tags") && !internal) {
        record(f, body, body_len, t);
        reply_str(c, 200, "{\"contact\":{\"id\":\"1\"}}");
        return;
    }
    if (uri_len == 8 && memcmp(uri, "/__stats", 8) == 0) {
        char s[256];
        snprintf(s, sizeof s, "tags=%zu first_ns=%lld last_ns=%lld connections=%lu other=%lu\n", f->n_recs,
                 (long long)f->first_ns, (long long)f->last_ns, f->n_conns, f->other);
        reply_str(c, 200, s);
        return;
    }
    if (uri_len == 7 && memcmp(uri, "/__dump", 7) == 0) {
        dump(c);
        return;
    }
    if (uri_len == 8 && memcmp(uri, "/__reset", 8) == 0) {
        f->n_recs = 0;
        f->first_ns = f->last_ns = 0;
        f->other = 0;
        f->n_conns = 0;
        reply_str(c, 200, "{}");
        return;
    }
    f->other++;
    if (get && ends_with(uri, ul, "/me")) {
        reply_str(c, 200, "{\"ok\":true}");
        return;
    }
    if (get && ends_with(uri, ul, "/tags")) {
        reply_str(c, 200, "{\"tags\":[]}");
        return;
    }
    reply_str(c, 404, "{\"error\":{\"message\":\"not found\"}}");
}

/* The value of header `name` in the head [p, end), or NULL; *len set. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Handles one complete request at the start of c->in; returns the bytes it
 * took, 0 if it is not complete yet, -1 if it is malformed. */
static long one_request(conn *c, int64_t t)
{
    const char *p = c->in.p, *end = p + c->in.len;
    const char *head_end = memmem(p, c->in.len, "\r\n\r\n", 4);
    if (!head_end)
        return c->in.len > 65536 ? -1 : 0;
    const char *eol = memmem(p, (size_t)(head_end - p), "\r\n", 2);
    if (!eol)
        eol = head_end;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 - p >= 8)
        return -1;
    char method[8];
    memcpy(method, p, (size_t)(sp1 - p));
    method[sp1 - p] = '\0';
    size_t vlen = 0, body_len = 0;
    const char *v = header(eol + 2, head_end + 2, "Content-Length", &vlen);
    if (v)
        body_len = strtoul(v, NULL, 10);
    const char *body = head_end + 4;
    if (body_len > MAX_REQUEST)
        return -1;
    if ((size_t)(end - body) < body_len)
        return 0;
    v = header(eol + 2, head_end + 2, "Connection", &vlen);
    int http10 = (size_t)(eol - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    if ((v && vlen == 5 && strncasecmp(v, "close", 5) == 0) || (http10 && !(v && vlen == 10)))
        c->closing = 1;
    handle(c, method, sp1 + 1, (size_t)(sp2 - sp1 - 1), body, body_len, t);
    return (long)(body + body_len - p);
}

/* Writes what is pending; 0 when all of it went, 1 when the socket is full, -1 on error. */
static int flush_out(conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (n <= 0)
            return -1;
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    return 0;
}

static void after_write(conn *c, int rc)
{
    if (rc < 0 || (rc == 0 && c->closing)) {
        conn_free(c);
        return;
    }
    if (rc == 1) {
        event_del(c->rd); /* no new requests until this answer is out */
        event_add(c->wr, NULL);
    }
}

/* Answers every complete request received, then writes the answers. */
static void process_input(conn *c, int64_t t)
{
    long used;
    while (!c->closing && c->in.len > 0 && (used = one_request(c, t)) != 0) {
        if (used < 0) {
            conn_free(c);
            return;
        }
        memmove(c->in.p, c->in.p + used, c->in.len - (size_t)used);
        c->in.len -= (size_t)used;
    }
    after_write(c, flush_out(c));
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    int rc = flush_out(c);
    if (rc != 0 || c->closing) {
        after_write(c, rc);
        return;
    }
    event_del(c->wr);
    event_add(c->rd, NULL);
    process_input(c, now_ns()); /* requests that came in while the socket was full */
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    if (reserve(&c->in, 16384) != 0) {
        conn_free(c);
        return;
    }
    ssize_t n = recv(fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    c->in.len += (size_t)n;
    process_input(c, now_ns());
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    fake *f = arg;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->f = f;
    c->fd = fd;
    c->rd = event_new(f->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wr = event_new(f->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->rd || !c->wr || event_add(c->rd, NULL) != 0) {
        if (c->rd)
            event_free(c->rd);
        if (c->wr)
            event_free(c->wr);
        close(fd);
        free(c);
        return;
    }
    f->n_conns++;
}

static void on_signal(evutil_socket_t fd, short what, void *base)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(base);
}

static int write_port(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp || fprintf(fp, "%d\n", port) < 0 || fclose(fp) != 0 || rename(tmp, path) != 0) {
        perror("fake_provider: port file");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORTFILE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    fake f = {0};
    f.base = event_base_new();
    if (!f.base)
        return 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l =
        evconnlistener_new_bind(f.base, on_accept, &f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("fake_provider: bind");
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl);
    if (write_port(argv[1], ntohs(((struct sockaddr_in *)&ss)->sin_port)) != 0)
        return 1;
    struct event *sigterm = evsignal_new(f.base, SIGTERM, on_signal, f.base);
    struct event *sigint = evsignal_new(f.base, SIGINT, on_signal, f.base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_base_dispatch(f.base);
    event_free(sigterm);
    event_free(sigint);
    evconnlistener_free(l);
    event_base_free(f.base);
    free(f.recs);
    return 0;
}
