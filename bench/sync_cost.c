/* bench/sync_cost.c: what one durable write of N bytes costs on this disk,
 * the way the writer's commit makes one: a pwrite() of the run of WAL frames
 * into a file that already has its blocks (the WAL is reused in place), then
 * fdatasync(). It answers whether fewer bytes per event would shorten the
 * commit: with a fixed cost that large, they barely do.
 *
 *   cc -O2 -pthread -o /tmp/sync_cost bench/sync_cost.c
 *   for n in 4096 16384 65536 131072 262144 524288; do /tmp/sync_cost build/sync_cost.tmp $n 400; done
 *
 * MODE (4th argument, default fdatasync): "dsync" opens the file O_DSYNC
 * instead (each pwrite durable on its own, no fdatasync), "direct"
 * O_DSYNC|O_DIRECT. THREADS (5th, default 1): that many threads write and
 * sync at once, each COUNT times into its own part of the file, as
 * overlapped syncs would (docs/benchmarks.md, 2026-11-29):
 *
 *   for t in 1 2 4; do /tmp/sync_cost build/sync_cost.tmp 65536 2000 fdatasync $t; done
 *
 * Run it on the disk the database lives on (build/ here), never on a tmpfs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (4u << 20) /* the size the WAL rewinds at */
#define MAX_THREADS 16

typedef struct writer {
    int fd;
    const char *buf;
    size_t n, first, span; /* writes go to [first, first + span) in turn */
    int count, sync_each, failed;
    double busy_s;         /* in pwrite and fdatasync */
    pthread_t thread;
} writer;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_mode(const char *path, const char *mode)
{
    int flags = O_RDWR | O_CREAT;
    if (strcmp(mode, "dsync") == 0)
        flags |= O_DSYNC;
    else if (strcmp(mode, "direct") == 0)
        flags |= O_DSYNC | O_DIRECT;
    else if (strcmp(mode, "fdatasync") != 0)
        return -1;
    return open(path, flags, 0644);
}

/* Gives the file its blocks, so that the timed writes overwrite, as the
 * WAL's do after its first round. */
static int preallocate(int fd, const char *buf, size_t n)
{
    for (size_t off = 0; off + n <= FILE_BYTES; off += n)
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
            return -1;
    return fdatasync(fd);
}

static void *write_durably(void *arg)
{
    writer *w = arg;
    size_t off = 0;
    double t0 = now_s();
    for (int i = 0; i < w->count && !w->failed; i++) {
        if (pwrite(w->fd, w->buf, w->n, (off_t)(w->first + off)) != (ssize_t)w->n ||
            (w->sync_each && fdatasync(w->fd) != 0))
            w->failed = 1;
        off = off + 2 * w->n <= w->span ? off + w->n : 0;
    }
    w->busy_s = now_s() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE BYTES COUNT [fdatasync|dsync|direct [THREADS]]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *mode = argc > 4 ? argv[4] : "fdatasync";
    size_t n = (size_t)strtoul(argv[2], NULL, 10);
    int count = atoi(argv[3]), threads = argc > 5 ? atoi(argv[5]) : 1;
    if (n == 0 || n % 4096 || count <= 0 || threads < 1 || threads > MAX_THREADS ||
        n > FILE_BYTES / (size_t)threads) {
        fprintf(stderr, "BYTES: a multiple of 4096 up to %u / THREADS; COUNT > 0; THREADS 1 to %d\n", FILE_BYTES,
                MAX_THREADS);
        return 2;
    }
    int fd = open_mode(path, mode);
    void *buf = NULL;
    if (fd < 0 || posix_memalign(&buf, 4096, n) != 0) {
        perror(path);
        return 1;
    }
    memset(buf, 'x', n);
    if (preallocate(fd, buf, n) != 0) {
        perror("preallocating");
        return 1;
    }
    writer w[MAX_THREADS];
    size_t span = FILE_BYTES / (size_t)threads / n * n;
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (writer){.fd = fd, .buf = buf, .n = n, .first = (size_t)i * span, .span = span, .count = count,
                        .sync_each = strcmp(mode, "fdatasync") == 0};
        pthread_create(&w[i].thread, NULL, write_durably, &w[i]);
    }
    double busy = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        busy += w[i].busy_s;
        failed |= w[i].failed;
    }
    double s = now_s() - t0;
    if (failed) {
        perror("writing");
        return 1;
    }
    double writes = (double)count * threads;
    printf("%-9s %7zu bytes, %d thread%s: %.3f ms per durable write, %.0f durable writes/s, %.0f MB/s\n", mode, n,
           threads, threads == 1 ? "" : "s", busy / writes * 1e3, writes / s, (double)n * writes / s / 1e6);
    close(fd);
    unlink(path);
    free(buf);
    return 0;
}
