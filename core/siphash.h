/* siphash.h: SipHash-2-4, a keyed 64-bit hash.
 *
 * For hash tables whose keys come from the network: without the secret key
 * a sender cannot choose inputs that all land in one bucket. */
#ifndef LB_SIPHASH_H
#define LB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb_siphash_key {
    uint64_t k0, k1;
} lb_siphash_key;

/* The hash of `len` bytes at `data` under `key` (Aumasson and Bernstein's
 * SipHash-2-4; little-endian, as in the reference). */
uint64_t lb_siphash(const lb_siphash_key *key, const void *data, size_t len);

/* A key from the kernel's random source; 0 or -1 if none could be read. */
int lb_siphash_random_key(lb_siphash_key *key);

#endif
