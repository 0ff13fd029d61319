/*
 * fuzz: what the libFuzzer harnesses in this directory share. Each harness links the
 * service's own static libraries (shared/, functions/<name>/), never copies of their code.
 *
 * A harness must leave nothing behind between inputs (no globals that grow, everything it
 * allocates freed), so a leak report points at the library, and it checks the invariants the
 * library's header promises with FUZZ_CHECK, which aborts: libFuzzer then saves the input.
 */
#ifndef BP_FUZZ_H
#define BP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* A NUL-terminated malloc'd copy of data (the library's string APIs take C strings), or NULL
 * when out of memory. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return NULL;
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits *rest at the first sep: returns the part before it (NUL-terminated in place) and
 * moves *rest past it; the whole remainder, and *rest = NULL, when there is no sep. */
static inline char *fuzz_next_field(char **rest, char sep)
{
    char *s = *rest;
    if (s == NULL)
        return NULL;
    char *p = strchr(s, sep);
    if (p == NULL) {
        *rest = NULL;
    } else {
        *p = '\0';
        *rest = p + 1;
    }
    return s;
}

#endif
