/* bench/sync_cost.c: what one durable write of N bytes costs on this disk,
 * the way the writer's commit makes one: a pwrite() of the run of WAL frames
 * into a file that already has its blocks (the WAL is reused in place), then
 * fdatasync(). It answers whether fewer bytes per event would shorten the
 * commit: with a fixed cost that large, they barely do.
 *
 *   cc -O2 -o /tmp/sync_cost bench/sync_cost.c
 *   for n in 4096 16384 65536 131072 262144 524288; do /tmp/sync_cost build/sync_cost.tmp $n 400; done
 *
 * MODE (4th argument, default fdatasync): "dsync" opens the file O_DSYNC
 * instead (each pwrite durable on its own, no fdatasync), "direct"
 * O_DSYNC|O_DIRECT. Run it on the disk the database lives on (build/ here),
 * never on a tmpfs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (4u << 20) /* the size the WAL rewinds at */

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

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE BYTES COUNT [fdatasync|dsync|direct]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *mode = argc > 4 ? argv[4] : "fdatasync";
    size_t n = (size_t)strtoul(argv[2], NULL, 10);
    int count = atoi(argv[3]);
    if (n == 0 || n > FILE_BYTES || n % 4096 || count <= 0) {
        fprintf(stderr, "BYTES: a multiple of 4096 up to %u; COUNT > 0\n", FILE_BYTES);
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
    int sync_each = strcmp(mode, "fdatasync") == 0;
    size_t off = 0;
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n || (sync_each && fdatasync(fd) != 0)) {
            perror("writing");
            return 1;
        }
        off = off + 2 * n <= FILE_BYTES ? off + n : 0;
    }
    double s = now_s() - t0;
    printf("%-9s %7zu bytes: %.3f ms per durable write, %.0f MB/s\n", mode, n, s / count * 1e3,
           (double)n * count / s / 1e6);
    close(fd);
    unlink(path);
    free(buf);
    return 0;
}
