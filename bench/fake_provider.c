/* bench/fake_provider.c: a fast fake of the example plugin's provider
 * (plugins/example/example.c), for bench/dispatch. One libevent evhttp loop,
 * HTTP/1.1 keep-alive, loopback only.
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
 * Usage: fake_provider PORTFILE   (listens on 127.0.0.1, an ephemeral port,
 * written to PORTFILE once listening; SIGTERM/SIGINT end it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

typedef struct rec {
    int64_t ns;
    char email[56];
} rec;

static rec *recs;
static size_t n_recs, cap_recs;
static unsigned long other;
static int64_t first_ns, last_ns;

/* distinct connections seen (pointer set; a reused pointer undercounts) */
#define CONN_SET 8192
static void *conns[CONN_SET];
static unsigned long n_conns;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void see_conn(void *c)
{
    size_t h = ((uintptr_t)c >> 4) % CONN_SET;
    for (size_t i = 0; i < CONN_SET; i++, h = (h + 1) % CONN_SET) {
        if (conns[h] == c)
            return;
        if (conns[h] == NULL) {
            conns[h] = c;
            n_conns++;
            return;
        }
    }
}

static void reply(struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", NULL);
}

static void record(struct evhttp_request *req, int64_t t)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char body[2048];
    if (len >= sizeof body)
        len = sizeof body - 1;
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    if (n_recs == cap_recs) {
        size_t cap = cap_recs ? cap_recs * 2 : 65536;
        rec *v = realloc(recs, cap * sizeof *v);
        if (!v)
            return;
        recs = v;
        cap_recs = cap;
    }
    rec *r = &recs[n_recs++];
    r->ns = t;
    r->email[0] = '\0';
    const char *p = strstr(body, "\"email\":");
    if (p) {
        p += 8;
        while (*p == ' ' || *p == '"')
            p++;
        size_t k = 0;
        while (p[k] && p[k] != '"' && k + 1 < sizeof r->email) {
            r->email[k] = p[k];
            k++;
        }
        r->email[k] = '\0';
    }
    if (first_ns == 0)
        first_ns = t;
    last_ns = t;
}

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    int64_t t = now_ns();
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    size_t ul = strlen(uri);
    const char *q = strchr(uri, '?');
    if (q)
        ul = (size_t)(q - uri);
    see_conn(evhttp_request_get_connection(req));
#define ENDS(s) (ul >= sizeof(s) - 1 && memcmp(uri + ul - (sizeof(s) - 1), s, sizeof(s) - 1) == 0)
    if (cmd == EVHTTP_REQ_POST && ENDS("/tags") && strncmp(uri, "/__", 3) != 0) {
        record(req, t);
        reply(req, 200, "{\"contact\":{\"id\":\"1\"}}");
        return;
    }
    if (strcmp(uri, "/__stats") == 0) {
        char s[256];
        snprintf(s, sizeof s, "tags=%zu first_ns=%lld last_ns=%lld connections=%lu other=%lu\n", n_recs,
                 (long long)first_ns, (long long)last_ns, n_conns, other);
        reply(req, 200, s);
        return;
    }
    if (strcmp(uri, "/__dump") == 0) {
        struct evbuffer *b = evhttp_request_get_output_buffer(req);
        for (size_t i = 0; i < n_recs; i++)
            evbuffer_add_printf(b, "%lld %s\n", (long long)recs[i].ns, recs[i].email);
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    if (strcmp(uri, "/__reset") == 0) {
        n_recs = 0;
        first_ns = last_ns = 0;
        other = 0;
        memset(conns, 0, sizeof conns);
        n_conns = 0;
        reply(req, 200, "{}");
        return;
    }
    other++;
    if (cmd == EVHTTP_REQ_GET && ENDS("/me")) {
        reply(req, 200, "{\"ok\":true}");
        return;
    }
    if (cmd == EVHTTP_REQ_GET && ENDS("/tags")) {
        reply(req, 200, "{\"tags\":[]}");
        return;
    }
    reply(req, 404, "{\"error\":{\"message\":\"not found\"}}");
}

static void on_signal(evutil_socket_t fd, short what, void *base)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORTFILE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    if (!base || !http)
        return 1;
    evhttp_set_gencb(http, handle, NULL);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_timeout(http, 120);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    if (!s) {
        perror("fake_provider: bind");
        return 1;
    }
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &sl);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, argv[1]) != 0) {
        perror("fake_provider: port file");
        return 1;
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    evhttp_free(http);
    event_base_free(base);
    free(recs);
    return 0;
}
