/* test_key_map.c: the keyed hash and the in-memory map behind the store's
 * dedupe index (siphash.c, key_map.c). */
#include <stdint.h>
#include <stdlib.h>

#include "key_map.h"
#include "siphash.h"
#include "tap.h"

/* The reference implementation's vectors: key 00..0f, message 00..(len-1). */
START_TEST(siphash_matches_the_reference_vectors)
{
    lb_siphash_key key = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    unsigned char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    ck_assert_uint_eq(lb_siphash(&key, msg, 0), 0x726fdb47dd0e0e31ULL);
    ck_assert_uint_eq(lb_siphash(&key, msg, 8), 0x93f5f5799a932462ULL);
    ck_assert_uint_eq(lb_siphash(&key, msg, 15), 0xa129ca6149be45e5ULL); /* the paper's example */
}
END_TEST

START_TEST(siphash_depends_on_the_key)
{
    lb_siphash_key a = {1, 2}, b = {1, 3};
    ck_assert_uint_ne(lb_siphash(&a, "event", 5), lb_siphash(&b, "event", 5));
    lb_siphash_key r1, r2;
    ck_assert_int_eq(lb_siphash_random_key(&r1), 0);
    ck_assert_int_eq(lb_siphash_random_key(&r2), 0);
    ck_assert(r1.k0 != r2.k0 || r1.k1 != r2.k1);
}
END_TEST

static size_t collect(const lb_key_map *m, uint64_t hash, int64_t *ids, size_t max)
{
    size_t cursor = 0, n = 0;
    int64_t id;
    while (n < max && lb_key_map_next(m, hash, &cursor, &id))
        ids[n++] = id;
    return n;
}

START_TEST(a_shared_hash_yields_every_id_stored_under_it)
{
    lb_key_map m = {0};
    int64_t ids[8];
    ck_assert_uint_eq(collect(&m, 42, ids, 8), 0); /* empty: no slots at all */
    ck_assert_int_eq(lb_key_map_put(&m, 42, 1), 0);
    ck_assert_int_eq(lb_key_map_put(&m, 42 + 1024, 2), 0); /* same home slot, another hash */
    ck_assert_int_eq(lb_key_map_put(&m, 42, 3), 0);
    ck_assert_uint_eq(collect(&m, 42, ids, 8), 2);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 3);
    ck_assert_uint_eq(collect(&m, 42 + 1024, ids, 8), 1);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_uint_eq(collect(&m, 43, ids, 8), 0);
    /* 0 marks an empty slot: a key hashing to 0 is still found */
    ck_assert_int_eq(lb_key_map_put(&m, 0, 7), 0);
    ck_assert_uint_eq(collect(&m, 0, ids, 8), 1);
    ck_assert_int_eq(ids[0], 7);
    lb_key_map_free(&m);
    ck_assert_uint_eq(m.cap, 0);
}
END_TEST

/* Growth rehashes every entry; the map stays at most 3/4 full. */
START_TEST(every_id_is_found_after_the_map_grows)
{
    lb_key_map m = {0};
    lb_siphash_key key = {7, 11};
    const int64_t n = 200000;
    for (int64_t i = 1; i <= n; i++)
        ck_assert_int_eq(lb_key_map_put(&m, lb_siphash(&key, &i, sizeof i), i), 0);
    ck_assert_uint_eq(m.n, (size_t)n);
    ck_assert(m.n <= m.cap / 4 * 3);
    ck_assert_uint_eq(lb_key_map_bytes(&m), (m.cap + m.old_cap) * sizeof(lb_key_slot) + m.retiring_left);
    for (int64_t i = 1; i <= n; i++) {
        size_t cursor = 0;
        int64_t id;
        bool found = false;
        while (!found && lb_key_map_next(&m, lb_siphash(&key, &i, sizeof i), &cursor, &id))
            found = id == i;
        ck_assert_msg(found, "id %lld lost", (long long)i);
    }
    size_t cap = m.cap;
    ck_assert_int_eq(lb_key_map_reserve(&m, 10), 0); /* never shrinks */
    ck_assert_uint_eq(m.cap, cap);
    lb_key_map_free(&m);
}
END_TEST

/* How many times `id` comes back for `hash`: exactly once, whether its
 * entry is in the new table, the old one, or copied from one to the other. */
static int times_found(const lb_key_map *m, uint64_t hash, int64_t want)
{
    size_t cursor = 0;
    int64_t id;
    int n = 0;
    while (lb_key_map_next(m, hash, &cursor, &id))
        n += id == want;
    return n;
}

static uint64_t key_of(int64_t i)
{
    lb_siphash_key key = {3, 5};
    return i % 97 == 0 ? 0xfeedULL : lb_siphash(&key, &i, sizeof i); /* every 97th shares one hash */
}

static void put_next(lb_key_map *m, int64_t *i)
{
    ++*i;
    ck_assert_int_eq(lb_key_map_put(m, key_of(*i), *i), 0);
}

/* A growth is spread over later puts; every entry is found exactly once
 * before it starts, while old slots are being copied, and after. */
START_TEST(lookups_during_a_growth_find_every_id_once)
{
    lb_key_map m = {0};
    int64_t i = 0;
    while (m.cap == 0 || m.n < m.cap / 4 * 3) /* fill up to the threshold */
        put_next(&m, &i);
    ck_assert_ptr_null(m.old);
    size_t cap = m.cap;
    put_next(&m, &i);
    ck_assert_ptr_nonnull(m.old); /* growing: two tables */
    ck_assert_uint_eq(m.cap, cap * 2);
    ck_assert_uint_eq(m.old_cap, cap);
    ck_assert_uint_eq(lb_key_map_bytes(&m), 3 * cap * sizeof(lb_key_slot));
    int checked_mid = 0;
    while (m.old) {
        if (m.moved > m.old_cap / 2 && !checked_mid) { /* half copied */
            for (int64_t k = 1; k <= i; k++)
                ck_assert_msg(times_found(&m, key_of(k), k) == 1, "id %lld mid-growth", (long long)k);
            checked_mid = 1;
        }
        put_next(&m, &i);
    }
    ck_assert(checked_mid);
    ck_assert_uint_lt(m.n, m.cap / 4 * 3); /* copied long before the new table filled */
    while (m.retiring) /* then the old table's memory goes back, a slice per put */
        put_next(&m, &i);
    ck_assert_uint_eq(lb_key_map_bytes(&m), m.cap * sizeof(lb_key_slot));
    for (int64_t k = 1; k <= i; k++)
        ck_assert_msg(times_found(&m, key_of(k), k) == 1, "id %lld after growth", (long long)k);
    lb_key_map_free(&m);
    ck_assert_ptr_null(m.slots);
}
END_TEST

/* A bulk reserve in the middle of a growth finishes it first. */
START_TEST(reserve_during_a_growth_finishes_it)
{
    lb_key_map m = {0};
    int64_t i = 0;
    while (!m.old)
        put_next(&m, &i);
    ck_assert_int_eq(lb_key_map_reserve(&m, m.cap * 4), 0);
    ck_assert_ptr_null(m.old);
    ck_assert_ptr_null(m.retiring);
    ck_assert(m.cap * 3 / 4 >= m.n * 4);
    for (int64_t k = 1; k <= i; k++)
        ck_assert_int_eq(times_found(&m, key_of(k), k), 1);
    lb_key_map_free(&m);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("key_map");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, siphash_matches_the_reference_vectors);
    tcase_add_test(tc, siphash_depends_on_the_key);
    tcase_add_test(tc, a_shared_hash_yields_every_id_stored_under_it);
    tcase_add_test(tc, every_id_is_found_after_the_map_grows);
    tcase_add_test(tc, lookups_during_a_growth_find_every_id_once);
    tcase_add_test(tc, reserve_during_a_growth_finishes_it);
    suite_add_tcase(suite, tc);
    return lb_run_suite_tap(suite);
}
