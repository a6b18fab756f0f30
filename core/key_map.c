/* key_map.c: open addressing with linear probing, kept at most 3/4 full. */
#include "key_map.h"

#include <stdlib.h>

static uint64_t stored_hash(uint64_t hash) { return hash ? hash : 1; }

static void place(lb_key_slot *slots, size_t cap, uint64_t hash, int64_t id)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slots[i].hash)
        i = (i + 1) & (cap - 1);
    slots[i].hash = hash;
    slots[i].id = id;
}

static int grow_to(lb_key_map *m, size_t cap)
{
    lb_key_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            place(slots, cap, m->slots[i].hash, m->slots[i].id);
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int lb_key_map_reserve(lb_key_map *m, size_t n)
{
    size_t cap = m->cap ? m->cap : 1024;
    while (n > cap / 4 * 3) {
        if (cap > SIZE_MAX / 2 / sizeof(lb_key_slot))
            return -1;
        cap *= 2;
    }
    return cap == m->cap ? 0 : grow_to(m, cap);
}

int lb_key_map_put(lb_key_map *m, uint64_t hash, int64_t id)
{
    if (lb_key_map_reserve(m, m->n + 1))
        return -1;
    place(m->slots, m->cap, stored_hash(hash), id);
    m->n++;
    return 0;
}

bool lb_key_map_next(const lb_key_map *m, uint64_t hash, size_t *cursor, int64_t *id)
{
    if (!m->cap)
        return false;
    hash = stored_hash(hash);
    /* *cursor counts the slots already looked at from the home slot */
    for (size_t k = *cursor; k < m->cap; k++) {
        const lb_key_slot *s = &m->slots[((size_t)hash + k) & (m->cap - 1)];
        if (!s->hash)
            return false; /* the end of the run: no more candidates */
        if (s->hash == hash) {
            *cursor = k + 1;
            *id = s->id;
            return true;
        }
    }
    return false;
}

size_t lb_key_map_bytes(const lb_key_map *m) { return m->cap * sizeof(lb_key_slot); }

void lb_key_map_free(lb_key_map *m)
{
    free(m->slots);
    *m = (lb_key_map){0};
}
