/* store_writer.c: a queue, a thread, and a pipe back to the loop. */
#include "store_writer.h"
#include "limiter.h" /* lb_clock_ms_fine */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct lb_store_writer {
    lb_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    lb_write_task *queue_head, *queue_tail; /* submitted, not yet taken */
    lb_write_task *done_head, *done_tail;   /* finished, done not yet run */
    bool stopping;
    int pipe_r, pipe_w;                     /* writer -> loop: "something is done" */
    struct event *done_ev;
    size_t in_flight;                       /* loop thread only */
    lb_store_stats *stats_to;               /* loop thread only; may be NULL */
};

static void append(lb_write_task **head, lb_write_task **tail, lb_write_task *list, lb_write_task *last)
{
    if (*tail)
        (*tail)->next = list;
    else
        *head = list;
    *tail = last;
}

/* One transaction for every task in `list`. */
static void run_transaction(lb_store_writer *w, lb_write_task *list)
{
    lb_error err = {0};
    double t0_ms = lb_clock_ms_fine(CLOCK_MONOTONIC);
    int rc = lb_store_begin(w->store, &err);
    for (lb_write_task *t = list; t && rc == 0; t = t->next)
        rc = t->run(w->store, t->arg, &err);
    if (rc == 0)
        rc = lb_store_commit(w->store, &err);
    if (rc != 0)
        lb_store_rollback(w->store);
    double seconds = (lb_clock_ms_fine(CLOCK_MONOTONIC) - t0_ms) / 1000.0;
    lb_store_stats stats = {0};
    if (rc == 0)
        lb_store_stats_get(w->store, &stats);
    lb_write_task *first = NULL;
    size_t events = 0;
    for (lb_write_task *t = list; t; t = t->next) {
        t->rc = rc;
        t->err = err;
        t->seconds = seconds;
        t->stats = stats;
        t->tx_first = false;
        t->tx_events = 0;
        if (t->events && !first)
            first = t;
        events += t->events;
    }
    if (first) {
        first->tx_first = true;
        first->tx_events = events;
    }
}

static void *writer_main(void *arg)
{
    lb_store_writer *w = arg;
    pthread_setname_np(pthread_self(), "lb-writer"); /* for top -H, perf and bench/ingest */
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->queue_head && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (!w->queue_head)
            break; /* stopping and nothing left */
        lb_write_task *list = w->queue_head, *last = w->queue_tail;
        w->queue_head = w->queue_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        run_transaction(w, list);
        pthread_mutex_lock(&w->lock);
        append(&w->done_head, &w->done_tail, list, last);
        ssize_t n;
        do
            n = write(w->pipe_w, "x", 1);
        while (n < 0 && errno == EINTR); /* EAGAIN: the loop has a wake-up pending already */
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Loop thread: runs the done callbacks of finished tasks, in submission order. */
static void run_done(lb_store_writer *w)
{
    char sink[64];
    ssize_t n;
    /* one byte per finished transaction; a short read means the pipe is
     * empty (saves a read that would only say EAGAIN: a system call costs
     * about 1 us on this VM) */
    while ((n = read(w->pipe_r, sink, sizeof sink)) == (ssize_t)sizeof sink)
        ;
    pthread_mutex_lock(&w->lock);
    lb_write_task *list = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (list) {
        lb_write_task *next = list->next; /* done may free the task */
        w->in_flight--;
        if (list->rc == 0 && w->stats_to)
            *w->stats_to = list->stats;
        list->done(list->arg, list->rc, &list->err, list->seconds);
        list = next;
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_done(arg);
}

void lb_store_writer_submit(lb_store_writer *w, lb_write_task *task)
{
    task->next = NULL;
    w->in_flight++;
    pthread_mutex_lock(&w->lock);
    append(&w->queue_head, &w->queue_tail, task, task);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void lb_store_writer_publish_stats(lb_store_writer *w, lb_store_stats *to)
{
    w->stats_to = to;
}

void lb_store_writer_wait_idle(lb_store_writer *w)
{
    while (w->in_flight > 0) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(w->pipe_r, &fds);
        select(w->pipe_r + 1, &fds, NULL, NULL, NULL);
        run_done(w);
    }
}

static int make_pipe(lb_store_writer *w, lb_error *err)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return lb_fail(err, "", "cannot create the writer pipe");
    w->pipe_r = fds[0];
    w->pipe_w = fds[1];
    return 0;
}

lb_store_writer *lb_store_writer_start(struct event_base *base, lb_store *store, lb_error *err)
{
    lb_store_writer *w = calloc(1, sizeof *w);
    if (!w) {
        lb_fail(err, "", "out of memory");
        return NULL;
    }
    w->store = store;
    w->pipe_r = w->pipe_w = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (make_pipe(w, err) == 0) {
        w->done_ev = event_new(base, w->pipe_r, EV_READ | EV_PERSIST, on_done, w);
        if (w->done_ev && event_add(w->done_ev, NULL) == 0 && pthread_create(&w->thread, NULL, writer_main, w) == 0)
            return w;
        lb_fail(err, "", "cannot start the writer thread");
    }
    if (w->done_ev)
        event_free(w->done_ev);
    if (w->pipe_r >= 0) {
        close(w->pipe_r);
        close(w->pipe_w);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    return NULL;
}

void lb_store_writer_stop(lb_store_writer *w)
{
    if (!w)
        return;
    lb_store_writer_wait_idle(w);
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    event_free(w->done_ev);
    close(w->pipe_r);
    close(w->pipe_w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
