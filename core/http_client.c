/* http_client.c: libcurl multi on the libevent loop.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it
 * (timer callback); libevent tells curl what happened (socket_action). Finished
 * transfers are collected after each socket_action and delivered to their
 * callbacks from there: outside any curl callback, so a callback may start
 * the next request at once. */
#include "http_client.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct lb_http_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    lb_http_client_options opts;
    lb_http_exchange *exchanges; /* in flight, doubly linked */
    size_t in_flight;
    /* finished easy handles, reset and kept: making one per request is a
     * measurable share of a provider call's CPU. Up to max_connections of
     * them, as many as can be busy at once. */
    CURL **spare;
    size_t n_spare;
    struct sock_watch *idle_watches; /* released watches, kept for reuse */
};

typedef struct header_line {
    char *name, *value;
} header_line;

struct lb_http_exchange {
    lb_http_client *client;
    CURL *easy;
    struct curl_slist *req_headers;
    char *req_body; /* our copy: the caller's may not outlive the call */
    lb_http_done done;
    void *ud;
    char *body;
    size_t body_len, body_cap;
    bool too_large;
    bool delivering; /* inside done: a cancel now is a caller bug, and a no-op */
    header_line *headers;
    size_t n_headers;
    char errbuf[CURL_ERROR_SIZE];
    lb_http_exchange *prev, *next;
};

/* One watched socket. A keep-alive connection is watched only while a
 * transfer uses it, so watches come and go once per request: released ones
 * are kept (event allocated, not added) for the next. */
typedef struct sock_watch {
    struct event *ev;
    struct sock_watch *next_idle;
} sock_watch;

/* ---- exchange lifetime ---------------------------------------------------- */

static void exchange_free(lb_http_exchange *x)
{
    lb_http_client *c = x->client;
    if (x->easy) {
        curl_multi_remove_handle(c->multi, x->easy);
        if (c->n_spare < (size_t)c->opts.max_connections) {
            curl_easy_reset(x->easy);
            c->spare[c->n_spare++] = x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }
    }
    curl_slist_free_all(x->req_headers);
    for (size_t i = 0; i < x->n_headers; i++) {
        free(x->headers[i].name);
        free(x->headers[i].value);
    }
    free(x->headers);
    free(x->req_body);
    free(x->body);
    if (x->prev)
        x->prev->next = x->next;
    else
        c->exchanges = x->next;
    if (x->next)
        x->next->prev = x->prev;
    c->in_flight--;
    free(x);
}

/* ---- curl callbacks ------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    lb_http_exchange *x = arg;
    size_t n = size * nmemb;
    if (x->body_len + n > x->client->opts.max_response_bytes) {
        x->too_large = true;
        return 0; /* makes curl fail the transfer */
    }
    if (x->body_len + n + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 512; /* small: most answers are, and malloc keeps those cheap */
        while (cap < x->body_len + n + 1)
            cap *= 2;
        char *grown = realloc(x->body, cap);
        if (!grown)
            return 0;
        x->body = grown;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, data, n);
    x->body_len += n;
    x->body[x->body_len] = '\0';
    return n;
}

static char *trimmed_copy(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    return strndup(s, n);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    lb_http_exchange *x = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue, say): forget earlier headers */
        for (size_t i = 0; i < x->n_headers; i++) {
            free(x->headers[i].name);
            free(x->headers[i].value);
        }
        x->n_headers = 0;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon || x->n_headers >= 128)
        return n;
    header_line *grown = realloc(x->headers, (x->n_headers + 1) * sizeof *grown);
    if (!grown)
        return n;
    x->headers = grown;
    header_line *h = &x->headers[x->n_headers];
    h->name = trimmed_copy(data, (size_t)(colon - data));
    h->value = trimmed_copy(colon + 1, n - (size_t)(colon + 1 - data));
    if (h->name && h->value)
        x->n_headers++;
    else {
        free(h->name);
        free(h->value);
    }
    return n;
}

/* ---- completion ------------------------------------------------------------ */

static void deliver(lb_http_exchange *x, CURLcode result)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    lb_http_resp resp = {
        .status = result == CURLE_OK ? status : 0,
        .transport_error = result != CURLE_OK,
        .error = result == CURLE_OK ? NULL
                 : x->too_large     ? "response larger than the limit"
                 : x->errbuf[0]     ? x->errbuf
                                    : curl_easy_strerror(result),
        .body = x->body ? x->body : "",
        .body_len = x->body_len,
        .priv = x,
    };
    x->delivering = true;
    x->done(&resp, x->ud);
    exchange_free(x);
}

static void collect_finished(lb_http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        lb_http_exchange *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            deliver(x, msg->data.result);
    }
}

/* ---- libevent <-> curl -------------------------------------------------------- */

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    lb_http_client *c = arg;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    collect_finished(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_http_client *c = arg;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_finished(c);
}

static void release_watch(lb_http_client *c, sock_watch *w)
{
    event_del(w->ev);
    w->next_idle = c->idle_watches;
    c->idle_watches = w;
}

static sock_watch *take_watch(lb_http_client *c)
{
    sock_watch *w = c->idle_watches;
    if (w) {
        c->idle_watches = w->next_idle;
        return w;
    }
    w = calloc(1, sizeof *w);
    if (w && !(w->ev = event_new(c->base, -1, 0, on_socket_event, c))) {
        free(w);
        return NULL;
    }
    return w;
}

static int curl_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    lb_http_client *c = userp;
    sock_watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            release_watch(c, w);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!w) {
        w = take_watch(c);
        if (!w)
            return -1;
        curl_multi_assign(c->multi, s, w);
    } else {
        event_del(w->ev);
    }
    /* event_assign only on an event that is not added (event_del above) */
    event_assign(w->ev, c->base, s, kind, on_socket_event, c);
    return event_add(w->ev, NULL);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    lb_http_client *c = userp;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(c->timer, &tv);
}

/* ---- public -------------------------------------------------------------------- */

lb_http_client *lb_http_client_new(struct event_base *base, const lb_http_client_options *opts)
{
    lb_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->opts = opts ? *opts : (lb_http_client_options){0};
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 5000;
    if (!c->opts.default_timeout_ms)
        c->opts.default_timeout_ms = 15000;
    if (!c->opts.max_response_bytes)
        c->opts.max_response_bytes = 1024 * 1024;
    if (!c->opts.max_connections)
        c->opts.max_connections = 256;
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, on_timer, c);
    c->spare = calloc((size_t)c->opts.max_connections, sizeof *c->spare);
    if (!c->multi || !c->timer || !c->spare) {
        lb_http_client_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c->opts.max_connections);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, c->opts.max_connections);
    return c;
}

void lb_http_client_free(lb_http_client *c)
{
    if (!c)
        return;
    while (c->exchanges)
        exchange_free(c->exchanges);
    while (c->n_spare > 0)
        curl_easy_cleanup(c->spare[--c->n_spare]);
    free(c->spare);
    if (c->multi)
        curl_multi_cleanup(c->multi); /* may release watches still assigned */
    while (c->idle_watches) {
        sock_watch *w = c->idle_watches;
        c->idle_watches = w->next_idle;
        event_free(w->ev);
        free(w);
    }
    if (c->timer)
        event_free(c->timer);
    free(c);
}

bool lb_http_method_supported(const char *method)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    for (size_t i = 0; method != NULL && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i]) == 0)
            return true;
    return false;
}

/* The request's body, copied: the plugin's may be gone before curl sends it.
 * An empty one is still a body, so Content-Length: 0 goes out. */
static int set_body(lb_http_exchange *x, const char *body, size_t len)
{
    x->req_body = malloc(len ? len : 1);
    if (!x->req_body)
        return -1;
    if (len)
        memcpy(x->req_body, body, len);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->req_body);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    return 0;
}

/* Only the methods the ABI names: the method goes into the request line as
 * given. HEAD must tell curl that no body follows the answer's head, or it
 * waits for the Content-Length bytes until the timeout. POST, PUT and PATCH
 * always send a body, empty if the plugin gave none: curl would send a POST
 * without one as a GET, and servers answer 411 to a PUT without a length. */
static int set_method_and_body(lb_http_exchange *x, const lb_http_req *req)
{
    CURL *e = x->easy;
    const char *m = req->method;
    if (!lb_http_method_supported(m) || (strcmp(m, "HEAD") == 0 && req->body))
        return -1;
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return 0;
    }
    bool bodyless = strcmp(m, "GET") == 0 || strcmp(m, "DELETE") == 0;
    if ((req->body || !bodyless) && set_body(x, req->body, req->body ? req->body_len : 0) != 0)
        return -1;
    if (strcmp(m, "GET") == 0 && !req->body)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(m, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    return 0;
}

static int set_headers(lb_http_exchange *x, const lb_http_req *req)
{
    /* no "Expect: 100-continue" round trip on larger bodies */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = req->headers; h && *h && list; h++)
        list = curl_slist_append(list, *h);
    if (!list)
        return -1;
    x->req_headers = list;
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, list);
    return 0;
}

static void set_transport_options(lb_http_exchange *x, const lb_http_req *req)
{
    CURL *e = x->easy;
    lb_http_client *c = x->client;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms ? (long)req->timeout_ms : c->opts.default_timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "listboss/" PACKAGE_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
}

lb_http_exchange *lb_http_client_request(lb_http_client *c, const lb_http_req *req, lb_http_done done, void *ud)
{
    if (!req->method || !req->url || !done)
        return NULL;
    lb_http_exchange *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->client = c;
    x->done = done;
    x->ud = ud;
    x->easy = c->n_spare > 0 ? c->spare[--c->n_spare] : curl_easy_init();
    x->next = c->exchanges;
    if (c->exchanges)
        c->exchanges->prev = x;
    c->exchanges = x;
    c->in_flight++;
    if (!x->easy || set_method_and_body(x, req) || set_headers(x, req)) {
        exchange_free(x);
        return NULL;
    }
    set_transport_options(x, req);
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        exchange_free(x);
        return NULL;
    }
    return x; /* curl's timer callback schedules the first step on the loop */
}

void lb_http_client_cancel(lb_http_exchange *x)
{
    if (x && !x->delivering)
        exchange_free(x);
}

const char *lb_http_client_header(const lb_http_resp *resp, const char *name)
{
    const lb_http_exchange *x = resp->priv;
    if (!x)
        return NULL;
    for (size_t i = x->n_headers; i-- > 0;) /* the last occurrence wins */
        if (strcasecmp(x->headers[i].name, name) == 0)
            return x->headers[i].value;
    return NULL;
}

size_t lb_http_client_in_flight(const lb_http_client *c) { return c->in_flight; }
