/* bench/reference_server.c: the brief's "bare libevent + json-c + SQLite
 * group commit" server, for comparison with listbossd on the same client and
 * deliveries (docs/benchmarks.md §1). One thread: evhttp parses each request,
 * json-c reads the envelope id, and at the end of each loop turn one
 * transaction (WAL, synchronous=FULL) stores the turn's bodies; then every
 * request of the turn is answered.
 *
 *   cc -O2 -o /tmp/reference_server bench/reference_server.c \
 *       $(pkg-config --cflags --libs libevent json-c sqlite3)
 *   /tmp/reference_server PORT DBFILE
 *   LB_FIXTURES=tests/fixtures/hotmart LB_BENCH_HOTTOK=x \
 *       wrk -t2 -c64 -d10s -s bench/ingest.lua http://127.0.0.1:PORT */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct pending {
    struct evhttp_request *req;
    char *body;
    size_t len;
    json_object *envelope; /* holds the id's string until the commit */
} pending;

typedef struct server {
    sqlite3 *db;
    sqlite3_stmt *begin, *insert, *commit;
    struct event *commit_ev;
    pending *turn;
    size_t n, cap;
} server;

static void answer(pending *p, int status)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, status == 200 ? "{\"duplicate\":false}" : "{\"error\":\"store\"}");
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type", "application/json");
    evhttp_send_reply(p->req, status, status == 200 ? "OK" : "Unavailable", out);
    evbuffer_free(out);
    json_object_put(p->envelope);
    free(p->body);
}

static int step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The end of the loop turn: one transaction for every request of it. */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    int rc = step(s->begin);
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        json_object *id = NULL;
        json_object_object_get_ex(s->turn[i].envelope, "id", &id);
        sqlite3_bind_text(s->insert, 1, json_object_get_string(id), -1, SQLITE_STATIC);
        sqlite3_bind_blob(s->insert, 2, s->turn[i].body, (int)s->turn[i].len, SQLITE_STATIC);
        rc = step(s->insert);
    }
    if (rc == 0)
        rc = step(s->commit);
    if (rc != 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < s->n; i++)
        answer(&s->turn[i], rc == 0 ? 200 : 503);
    s->n = 0;
}

static int room_for_one(server *s)
{
    if (s->n < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 64;
    pending *grown = realloc(s->turn, cap * sizeof *grown);
    if (!grown)
        return -1;
    s->turn = grown;
    s->cap = cap;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    server *s = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *body = malloc(len + 1);
    if (!body || room_for_one(s) != 0) {
        evhttp_send_error(req, 503, "out of memory");
        free(body);
        return;
    }
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    json_object *envelope = json_tokener_parse(body);
    if (!envelope || !json_object_object_get_ex(envelope, "id", NULL)) {
        evhttp_send_error(req, 400, "no envelope id");
        json_object_put(envelope);
        free(body);
        return;
    }
    s->turn[s->n++] = (pending){req, body, len, envelope};
    if (s->n == 1)
        event_active(s->commit_ev, EV_WRITE, 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT DBFILE\n", argv[0]);
        return 2;
    }
    server s = {0};
    const char *schema = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, body BLOB)";
    if (sqlite3_open(argv[2], &s.db) != SQLITE_OK || sqlite3_exec(s.db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s.db, "BEGIN IMMEDIATE", -1, &s.begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s.db, "INSERT INTO events (event_id, body) VALUES (?1, ?2)", -1, &s.insert, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s.db, "COMMIT", -1, &s.commit, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", argv[2], sqlite3_errmsg(s.db));
        return 1;
    }
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    s.commit_ev = event_new(base, -1, 0, on_commit, &s);
    evhttp_set_gencb(http, on_request, &s);
    if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)atoi(argv[1])) != 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(base);
    return 0;
}
