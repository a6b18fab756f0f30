/* log.c: logfmt writer. One fwrite per line so concurrent writers (tests
 * capturing stderr) never see interleaved halves. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum lb_log_level min_level = LB_LOG_INFO; /* process-wide by nature: stderr is */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void lb_log_set_level(enum lb_log_level level) { min_level = level; }

bool lb_log_enabled(enum lb_log_level level) { return level >= min_level; }

int lb_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static int needs_quotes(const char *v)
{
    if (*v == '\0')
        return 1;
    for (; *v; v++)
        if (*v == ' ' || *v == '"' || *v == '=' || *v == '\\' || (unsigned char)*v < 0x20)
            return 1;
    return 0;
}

/* A line longer than this is cut at the first pair (or inside the value)
 * that does not fit, closed (a cut quoted value keeps its closing quote) and
 * marked, so it is still one valid logfmt line. */
#define LB_LOG_LINE_MAX 2048
static const char cut_mark[] = " truncated=true";
/* Where the pairs stop: the mark and the newline always fit after. */
#define LB_LOG_PAIRS_MAX (LB_LOG_LINE_MAX - (sizeof cut_mark - 1) - 1)

typedef struct line {
    char buf[LB_LOG_LINE_MAX];
    size_t pos;
    bool cut;
} line;

/* The end of buf[start, pos) without the UTF-8 sequence a cut left
 * incomplete there (escapes are ASCII: other bytes are copied as they are). */
static size_t utf8_trim(const char *buf, size_t start, size_t pos)
{
    size_t i = pos;
    while (i > start && pos - i < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == start || (unsigned char)buf[i - 1] < 0xC0)
        return pos;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return pos - (i - 1) < want ? i - 1 : pos;
}

static void append_plain(line *l, const char *val)
{
    size_t n = strlen(val), room = LB_LOG_PAIRS_MAX - l->pos, start = l->pos;
    if (n > room) {
        n = room;
        l->cut = true;
    }
    memcpy(l->buf + l->pos, val, n);
    l->pos += n;
    if (l->cut)
        l->pos = utf8_trim(l->buf, start, l->pos);
}

/* '"' and '\' escaped, '\n' as \n, other control bytes as a space. */
static size_t escape(unsigned char c, char out[2])
{
    if (c == '"' || c == '\\' || c == '\n') {
        out[0] = '\\';
        out[1] = c == '\n' ? 'n' : (char)c;
        return 2;
    }
    out[0] = c < 0x20 ? ' ' : (char)c;
    return 1;
}

static void append_quoted(line *l, const char *val)
{
    if (LB_LOG_PAIRS_MAX - l->pos < 2) { /* not even "": leave the value empty */
        l->cut = true;
        return;
    }
    l->buf[l->pos++] = '"';
    size_t start = l->pos;
    for (; *val; val++) {
        char esc[2];
        size_t n = escape((unsigned char)*val, esc);
        if (n + 1 > LB_LOG_PAIRS_MAX - l->pos) { /* + 1: the closing quote */
            l->cut = true;
            l->pos = utf8_trim(l->buf, start, l->pos);
            break;
        }
        memcpy(l->buf + l->pos, esc, n);
        l->pos += n;
    }
    l->buf[l->pos++] = '"';
}

/* Appends ` key=value`, quoting and escaping the value when needed; after a
 * cut, nothing more. */
static void append_pair(line *l, const char *key, const char *val)
{
    size_t klen = strlen(key);
    if (l->cut || klen + 2 > LB_LOG_PAIRS_MAX - l->pos) {
        l->cut = true;
        return;
    }
    l->buf[l->pos++] = ' ';
    memcpy(l->buf + l->pos, key, klen);
    l->pos += klen;
    l->buf[l->pos++] = '=';
    if (needs_quotes(val))
        append_quoted(l, val);
    else
        append_plain(l, val);
}

void lb_log(enum lb_log_level level, const char *msg, ...)
{
    if (level < min_level)
        return;
    line l; /* not zeroed: only buf[0, pos) is ever read */
    l.cut = false;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    l.pos = strftime(l.buf, sizeof l.buf, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    l.pos += (size_t)snprintf(l.buf + l.pos, sizeof l.buf - l.pos, ".%03ldZ level=%s", now.tv_nsec / 1000000,
                              level_names[level]);
    append_pair(&l, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        append_pair(&l, key, val ? val : "");
    }
    va_end(ap);
    if (l.cut) {
        memcpy(l.buf + l.pos, cut_mark, sizeof cut_mark - 1);
        l.pos += sizeof cut_mark - 1;
    }
    l.buf[l.pos++] = '\n';
    fwrite(l.buf, 1, l.pos, stderr);
}
