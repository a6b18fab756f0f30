/* key_map.h: 64-bit key hashes to row ids, in memory.
 *
 * The store's dedupe index: one slot per stored event, found by the hash of
 * its key. Different keys may share a hash, so a lookup yields candidates
 * and the caller checks each against the stored key. Open addressing with
 * linear probing; nothing is ever removed. */
#ifndef LB_KEY_MAP_H
#define LB_KEY_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lb_key_slot {
    uint64_t hash; /* 0: empty (a key hashing to 0 is stored as 1) */
    int64_t id;
} lb_key_slot;

typedef struct lb_key_map {
    lb_key_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} lb_key_map;

/* Adds a (hash, id) pair; 0, or -1 when memory runs out (the map is unchanged). */
int lb_key_map_put(lb_key_map *m, uint64_t hash, int64_t id);
/* Makes room for `n` entries in all; 0 or -1 (out of memory). */
int lb_key_map_reserve(lb_key_map *m, size_t n);

/* The ids stored under `hash`, one per call: start with *cursor = 0; false
 * when there are no more. */
bool lb_key_map_next(const lb_key_map *m, uint64_t hash, size_t *cursor, int64_t *id);

/* Bytes of memory the map holds. */
size_t lb_key_map_bytes(const lb_key_map *m);
void lb_key_map_free(lb_key_map *m);

#endif
