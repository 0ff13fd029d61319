/*
 * episode: the incident lifecycle as a pure state machine over scored points, so the live path
 * (incident.c, which persists it) and backtests (which only count) decide identically.
 *
 *   closed --(min_anomalies of the last open_span points anomalous, the newest recent)--> open
 *   open   --(anomaly: track last anomaly and the deepest peak)-----------------------> open
 *   open   --(resolve_after scored normal points since the last anomaly)--------------> closed
 *
 * Learning points (no verdict) neither open nor resolve. One episode at a time: a metric's
 * series roll up into it. Not thread-safe; one per metric being processed.
 */
#ifndef BP_EPISODE_H
#define BP_EPISODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "incident.h"

#define BP_EPISODE_SPAN_MAX 64

typedef struct st_bp_episode_params_t {
    int min_anomalies;   /* 1..open_span */
    int open_span;       /* 1..BP_EPISODE_SPAN_MAX */
    int resolve_after;   /* >= 1 */
    int64_t recent_from; /* an episode opens only on a point at or after this (INT64_MIN: any) */
} bp_episode_params_t;

typedef struct st_bp_episode_t {
    bool open;
    int64_t started, last_anomaly, resolved_at;
    bp_point_t peak;
    int normal_after;                     /* scored normal points since last_anomaly */
    bp_point_t ring[BP_EPISODE_SPAN_MAX]; /* the last open_span points */
    size_t ring_len, ring_head;
} bp_episode_t;

enum {
    BP_EPISODE_OPENED = 1,   /* this point opened an episode (started, peak set) */
    BP_EPISODE_ANOMALY = 2,  /* an anomaly extended the open episode */
    BP_EPISODE_PEAK = 4,     /* ... and it is the new deepest point */
    BP_EPISODE_RESOLVED = 8, /* this point resolved it (resolved_at = its ts) */
};

/* Remembers p for the opening rule without any transition: for points decided earlier (stored
 * verdicts before the rescored window). */
void bp_episode_prime(bp_episode_t *e, const bp_point_t *p, const bp_episode_params_t *prm);

/* Feeds the next point (ascending ts); returns a mask of BP_EPISODE_* (0: nothing happened). */
int bp_episode_feed(bp_episode_t *e, const bp_point_t *p, const bp_episode_params_t *prm);

/* The time span of an incident already stored for the metric. */
typedef struct st_bp_episode_known_t {
    int64_t started;
    int64_t end; /* resolved_at; INT64_MAX while the incident is open */
} bp_episode_known_t;

/* Re-scoring a range (a late window, revised data) replays episodes that already have an
 * incident. For an episode e that just opened, returns the index of the first of known[0..n)
 * whose span overlaps or touches e's [started, last_anomaly], or -1 when e is a new episode. */
int bp_episode_match(const bp_episode_t *e, const bp_episode_known_t *known, size_t n);

#endif
