/* key_map.c: open addressing with linear probing, kept at most 3/4 full,
 * grown a few slots per put (key_map.h). */
#include "key_map.h"

#include <stdlib.h>
#include <sys/mman.h>

#define FIRST_CAP 1024
/* Old slots copied per put. Growth starts at 3/4 of the old capacity C, and
 * the new table (2C) is 3/4 full again after 3C/4 more puts; copying C slots
 * takes C/16 puts, so the old table is long gone by then. */
#define MOVE_PER_PUT 16
/* Bytes of a retired table unmapped per put: 64 pages, tens of us. */
#define UNMAP_PER_PUT (256 * 1024)

/* Tables are mappings of their own (sizes are powers of two times 16 bytes,
 * at least 16 KiB: whole pages), so a retired one can go back in slices. */
static lb_key_slot *table_new(size_t cap)
{
    void *p = mmap(NULL, cap * sizeof(lb_key_slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void unmap_some(lb_key_map *m, size_t bytes)
{
    if (!m->retiring)
        return;
    size_t n = bytes < m->retiring_left ? bytes : m->retiring_left;
    munmap(m->retiring, n);
    m->retiring += n;
    m->retiring_left -= n;
    if (m->retiring_left == 0)
        m->retiring = NULL;
}

static uint64_t stored_hash(uint64_t hash) { return hash ? hash : 1; }

static void place(lb_key_slot *slots, size_t cap, uint64_t hash, int64_t id)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slots[i].hash)
        i = (i + 1) & (cap - 1);
    slots[i].hash = hash;
    slots[i].id = id;
}

/* Copies up to `count` old slots into the current table; the old one
 * retires once every slot is over. */
static void move_some(lb_key_map *m, size_t count)
{
    for (; m->old && count > 0; count--) {
        const lb_key_slot *s = &m->old[m->moved++];
        if (s->hash)
            place(m->slots, m->cap, s->hash, s->id);
        if (m->moved == m->old_cap) {
            m->retiring = (char *)m->old;
            m->retiring_left = m->old_cap * sizeof(lb_key_slot);
            m->old = NULL;
            m->old_cap = m->moved = 0;
        }
    }
}

/* A new, empty current table of `cap` slots; the current one becomes the
 * old one (the previous growth is over: see the callers). */
static int start_growth(lb_key_map *m, size_t cap)
{
    unmap_some(m, SIZE_MAX);
    lb_key_slot *slots = table_new(cap);
    if (!slots)
        return -1;
    if (m->cap) {
        m->old = m->slots;
        m->old_cap = m->cap;
        m->moved = 0;
    }
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The capacity that holds n entries at most 3/4 full, or 0 if too large. */
static size_t cap_for(size_t have, size_t n)
{
    size_t cap = have ? have : FIRST_CAP;
    while (n > cap / 4 * 3) {
        if (cap > SIZE_MAX / 2 / sizeof(lb_key_slot))
            return 0;
        cap *= 2;
    }
    return cap;
}

int lb_key_map_reserve(lb_key_map *m, size_t n)
{
    size_t cap = cap_for(m->cap, n);
    if (!cap)
        return -1;
    if (cap == m->cap)
        return 0;
    move_some(m, SIZE_MAX); /* one growth at a time */
    if (start_growth(m, cap))
        return -1;
    move_some(m, SIZE_MAX);
    unmap_some(m, SIZE_MAX);
    return 0;
}

int lb_key_map_put(lb_key_map *m, uint64_t hash, int64_t id)
{
    if (!m->old && m->n + 1 > m->cap / 4 * 3) {
        size_t cap = cap_for(m->cap, m->n + 1);
        if (!cap || start_growth(m, cap))
            return -1;
    }
    place(m->slots, m->cap, stored_hash(hash), id);
    m->n++;
    move_some(m, MOVE_PER_PUT);
    unmap_some(m, UNMAP_PER_PUT);
    return 0;
}

/* *cursor counts slots looked at: [0, cap] in the current table (cap: its
 * run ended), then cap + 1 + k for the k-th slot of the old table's run. */
bool lb_key_map_next(const lb_key_map *m, uint64_t hash, size_t *cursor, int64_t *id)
{
    hash = stored_hash(hash);
    for (size_t k = *cursor; k < m->cap; k++) {
        const lb_key_slot *s = &m->slots[((size_t)hash + k) & (m->cap - 1)];
        if (!s->hash)
            break; /* the end of the run: no more candidates here */
        if (s->hash == hash) {
            *cursor = k + 1;
            *id = s->id;
            return true;
        }
    }
    if (*cursor < m->cap + 1)
        *cursor = m->cap + 1;
    /* the old table's run, minus the slots already copied (found above) */
    for (size_t k = *cursor - (m->cap + 1); m->old && k < m->old_cap; k++) {
        size_t i = ((size_t)hash + k) & (m->old_cap - 1);
        const lb_key_slot *s = &m->old[i];
        if (!s->hash)
            return false;
        if (s->hash == hash && i >= m->moved) {
            *cursor = m->cap + 1 + k + 1;
            *id = s->id;
            return true;
        }
    }
    return false;
}

size_t lb_key_map_bytes(const lb_key_map *m)
{
    return (m->cap + m->old_cap) * sizeof(lb_key_slot) + m->retiring_left;
}

void lb_key_map_free(lb_key_map *m)
{
    if (m->slots)
        munmap(m->slots, m->cap * sizeof(lb_key_slot));
    if (m->old)
        munmap(m->old, m->old_cap * sizeof(lb_key_slot));
    unmap_some(m, SIZE_MAX);
    *m = (lb_key_map){0};
}
