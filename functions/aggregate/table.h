/*
 * table: the two hash tables the aggregation pass needs, both open addressing over arrays
 * (no per-entry allocation: a day's batch interns ~10^6 strings).
 *
 * bp_strtab_t interns byte strings: each distinct string gets the next dense id (0, 1, 2...),
 * and bp_strtab_str gives it back NUL-terminated. The table owns copies of the strings.
 * bp_u64map_t maps 64-bit keys to 32-bit values.
 *
 * Both start zeroed ({0}) and are freed with their _free; BP_ENOMEM is the only error. Ids
 * and pointers stay valid until _free (strings live in chunks that never move). Not
 * thread-safe.
 */
#ifndef BP_TABLE_H
#define BP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_bp_strtab_t {
    char **chunks; /* string storage; a string never straddles two chunks */
    size_t num_chunks, chunk_used, chunk_cap;
    const char **strs; /* by id */
    uint32_t *lens;
    uint32_t n, cap;
    uint32_t *slots; /* id + 1; 0 = empty */
    uint32_t num_slots;
} bp_strtab_t;

/* The id of [s, s+len), adding it when new (*added says which). 0 or BP_ENOMEM. */
int bp_strtab_intern(bp_strtab_t *t, const char *s, size_t len, uint32_t *id, bool *added);

/* The id of s, or -1 when absent. */
int64_t bp_strtab_find(const bp_strtab_t *t, const char *s, size_t len);

static inline const char *bp_strtab_str(const bp_strtab_t *t, uint32_t id)
{
    return t->strs[id];
}

/* Forgets every string, keeping the memory for reuse. */
void bp_strtab_reset(bp_strtab_t *t);

void bp_strtab_free(bp_strtab_t *t);

typedef struct st_bp_u64map_t {
    uint64_t *keys;
    uint32_t *vals; /* UINT32_MAX marks an empty slot */
    size_t cap, n;  /* cap is a power of two */
} bp_u64map_t;

/* Looks key up; when absent, inserts it with value fresh. *val gets the stored value and
 * *added whether it was inserted. fresh must not be UINT32_MAX. 0 or BP_ENOMEM. */
int bp_u64map_upsert(bp_u64map_t *m, uint64_t key, uint32_t fresh, uint32_t *val, bool *added);

/* The value of key into *val; false when absent. */
bool bp_u64map_find(const bp_u64map_t *m, uint64_t key, uint32_t *val);

/* Forgets every key, keeping the memory for reuse. */
void bp_u64map_reset(bp_u64map_t *m);

void bp_u64map_free(bp_u64map_t *m);

/* Folds s into the FNV-1a hash *h (FNV's start is BP_FNV_BASIS), then a terminator, so that
 * ("ab", "c") and ("a", "bc") differ; NULL folds in another terminator than "". Stable across
 * builds: event ids are derived from it. */
#define BP_FNV_BASIS 14695981039346656037ULL
void bp_fnv_str(uint64_t *h, const char *s);

/* Orders int64_t values, for qsort and bsearch. */
int bp_cmp_i64(const void *a, const void *b);

#endif
