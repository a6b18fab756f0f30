/* key_map.h: 64-bit key hashes to row ids, in memory.
 *
 * The store's dedupe index: one slot per stored event, found by the hash of
 * its key. Different keys may share a hash, so a lookup yields candidates
 * and the caller checks each against the stored key. Open addressing with
 * linear probing; nothing is ever removed.
 *
 * Growing never stops the caller: when a put finds the table 3/4 full it
 * maps one twice the size and, from then on, every put also copies a few
 * slots of the old table over; lookups meanwhile read both. Then the old
 * table is unmapped a slice per put, because giving back a large mapping
 * at once costs as much as the copy. (Rehashing a million entries at once
 * took 140 ms on the writer thread here, and a second at six million:
 * every request in flight waited for it.) */
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
    lb_key_slot *slots; /* every new entry goes here */
    size_t cap;         /* a power of two, or 0 */
    size_t n;           /* entries, in both tables */
    lb_key_slot *old;   /* while growing: the previous table, or NULL */
    size_t old_cap;
    size_t moved;       /* old[0, moved) are copied to slots already */
    char *retiring;     /* a copied-over old table's memory still to unmap, or NULL */
    size_t retiring_left;
} lb_key_map;

/* Adds a (hash, id) pair; 0, or -1 when memory runs out (the map is unchanged). */
int lb_key_map_put(lb_key_map *m, uint64_t hash, int64_t id);
/* Makes room for `n` entries in all, at once (a bulk load); 0 or -1 (out of memory). */
int lb_key_map_reserve(lb_key_map *m, size_t n);

/* The ids stored under `hash`, one per call: start with *cursor = 0; false
 * when there are no more. A put in between starts the lookup over. */
bool lb_key_map_next(const lb_key_map *m, uint64_t hash, size_t *cursor, int64_t *id);

/* Bytes of memory the map holds. */
size_t lb_key_map_bytes(const lb_key_map *m);
void lb_key_map_free(lb_key_map *m);

#endif
