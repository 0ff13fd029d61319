#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

#define CHUNK_MIN (256u << 10)

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ len;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

void bp_fnv_str(uint64_t *h, const char *s)
{
    for (; s != NULL && *s; s++)
        *h = (*h ^ (unsigned char)*s) * 1099511628211ULL;
    *h = (*h ^ (s == NULL ? 0xfe : 0xff)) * 1099511628211ULL;
}

int bp_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int strtab_grow_slots(bp_strtab_t *t)
{
    uint32_t ns = t->num_slots ? t->num_slots * 2 : 256;
    uint32_t *slots = calloc(ns, sizeof(uint32_t));
    if (slots == NULL)
        return BP_ENOMEM;
    for (uint32_t id = 0; id < t->n; id++) {
        uint32_t i = (uint32_t)hash_bytes(t->strs[id], t->lens[id]) & (ns - 1);
        while (slots[i] != 0)
            i = (i + 1) & (ns - 1);
        slots[i] = id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->num_slots = ns;
    return 0;
}

static char *strtab_store(bp_strtab_t *t, const char *s, size_t len)
{
    if (t->num_chunks == 0 || t->chunk_used + len + 1 > t->chunk_cap) {
        size_t cap = len + 1 > CHUNK_MIN ? len + 1 : CHUNK_MIN;
        char **chunks = realloc(t->chunks, (t->num_chunks + 1) * sizeof(char *));
        if (chunks == NULL)
            return NULL;
        t->chunks = chunks;
        if ((chunks[t->num_chunks] = malloc(cap)) == NULL)
            return NULL;
        t->num_chunks++;
        t->chunk_used = 0;
        t->chunk_cap = cap;
    }
    char *p = t->chunks[t->num_chunks - 1] + t->chunk_used;
    memcpy(p, s, len);
    p[len] = '\0';
    t->chunk_used += len + 1;
    return p;
}

int64_t bp_strtab_find(const bp_strtab_t *t, const char *s, size_t len)
{
    if (t->num_slots == 0)
        return -1;
    for (uint32_t i = (uint32_t)hash_bytes(s, len) & (t->num_slots - 1);; i = (i + 1) & (t->num_slots - 1)) {
        uint32_t slot = t->slots[i];
        if (slot == 0)
            return -1;
        if (t->lens[slot - 1] == len && memcmp(t->strs[slot - 1], s, len) == 0)
            return slot - 1;
    }
}

int bp_strtab_intern(bp_strtab_t *t, const char *s, size_t len, uint32_t *id, bool *added)
{
    if ((t->n + 1) * 2 > t->num_slots && strtab_grow_slots(t) != 0)
        return BP_ENOMEM;
    uint32_t i = (uint32_t)hash_bytes(s, len) & (t->num_slots - 1);
    for (; t->slots[i] != 0; i = (i + 1) & (t->num_slots - 1)) {
        uint32_t k = t->slots[i] - 1;
        if (t->lens[k] == len && memcmp(t->strs[k], s, len) == 0) {
            *id = k;
            if (added)
                *added = false;
            return 0;
        }
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        const char **strs = realloc(t->strs, cap * sizeof(char *));
        if (strs == NULL)
            return BP_ENOMEM;
        t->strs = strs;
        uint32_t *lens = realloc(t->lens, cap * sizeof(uint32_t));
        if (lens == NULL)
            return BP_ENOMEM;
        t->lens = lens;
        t->cap = cap;
    }
    const char *copy = strtab_store(t, s, len);
    if (copy == NULL)
        return BP_ENOMEM;
    t->strs[t->n] = copy;
    t->lens[t->n] = (uint32_t)len;
    t->slots[i] = ++t->n;
    *id = t->n - 1;
    if (added)
        *added = true;
    return 0;
}

void bp_strtab_reset(bp_strtab_t *t)
{
    for (size_t i = 0; i < t->num_chunks; i++)
        free(t->chunks[i]);
    t->num_chunks = t->chunk_used = t->chunk_cap = 0;
    t->n = 0;
    if (t->slots != NULL)
        memset(t->slots, 0, t->num_slots * sizeof(uint32_t));
}

void bp_strtab_free(bp_strtab_t *t)
{
    for (size_t i = 0; i < t->num_chunks; i++)
        free(t->chunks[i]);
    free(t->chunks);
    free(t->strs);
    free(t->lens);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static int u64map_grow(bp_u64map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = malloc(cap * sizeof(uint64_t));
    uint32_t *vals = malloc(cap * sizeof(uint32_t));
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return BP_ENOMEM;
    }
    memset(vals, 0xff, cap * sizeof(uint32_t));
    for (size_t j = 0; j < m->cap; j++) {
        if (m->vals[j] == UINT32_MAX)
            continue;
        size_t i = mix64(m->keys[j]) & (cap - 1);
        while (vals[i] != UINT32_MAX)
            i = (i + 1) & (cap - 1);
        keys[i] = m->keys[j];
        vals[i] = m->vals[j];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int bp_u64map_upsert(bp_u64map_t *m, uint64_t key, uint32_t fresh, uint32_t *val, bool *added)
{
    if ((m->n + 1) * 2 > m->cap && u64map_grow(m) != 0)
        return BP_ENOMEM;
    size_t i = mix64(key) & (m->cap - 1);
    for (; m->vals[i] != UINT32_MAX; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            *val = m->vals[i];
            if (added)
                *added = false;
            return 0;
        }
    }
    m->keys[i] = key;
    m->vals[i] = fresh;
    m->n++;
    *val = fresh;
    if (added)
        *added = true;
    return 0;
}

bool bp_u64map_find(const bp_u64map_t *m, uint64_t key, uint32_t *val)
{
    if (m->cap == 0)
        return false;
    for (size_t i = mix64(key) & (m->cap - 1); m->vals[i] != UINT32_MAX; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return true;
        }
    }
    return false;
}

void bp_u64map_reset(bp_u64map_t *m)
{
    if (m->vals != NULL)
        memset(m->vals, 0xff, m->cap * sizeof(uint32_t));
    m->n = 0;
}

void bp_u64map_free(bp_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}
