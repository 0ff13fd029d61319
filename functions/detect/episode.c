#include "episode.h"

#include <math.h>

static double deviation(const bp_point_t *p)
{
    return fabs(p->value - p->expected);
}

void bp_episode_prime(bp_episode_t *e, const bp_point_t *p, const bp_episode_params_t *prm)
{
    size_t span = (size_t)prm->open_span;
    e->ring[(e->ring_head + e->ring_len) % span] = *p;
    if (e->ring_len < span)
        e->ring_len++;
    else
        e->ring_head = (e->ring_head + 1) % span;
}

int bp_episode_feed(bp_episode_t *e, const bp_point_t *p, const bp_episode_params_t *prm)
{
    size_t span = (size_t)prm->open_span;
    bp_episode_prime(e, p, prm);
    if (!e->open) {
        if (!p->anomaly || p->ts < prm->recent_from)
            return 0;
        int count = 0;
        for (size_t i = 0; i < e->ring_len; i++)
            count += e->ring[(e->ring_head + i) % span].anomaly;
        if (count < prm->min_anomalies)
            return 0;
        /* The episode starts at the first anomaly of the span that opened it. */
        e->open = true;
        e->started = p->ts;
        e->peak = *p;
        for (size_t i = 0; i < e->ring_len; i++) {
            const bp_point_t *q = &e->ring[(e->ring_head + i) % span];
            if (!q->anomaly)
                continue;
            if (q->ts < e->started)
                e->started = q->ts;
            if (deviation(q) > deviation(&e->peak))
                e->peak = *q;
        }
        e->last_anomaly = p->ts;
        e->normal_after = 0;
        return BP_EPISODE_OPENED;
    }
    if (p->anomaly) {
        int mask = BP_EPISODE_ANOMALY;
        e->last_anomaly = p->ts;
        e->normal_after = 0;
        if (deviation(p) > deviation(&e->peak)) {
            e->peak = *p;
            mask |= BP_EPISODE_PEAK;
        }
        return mask;
    }
    if (p->verdict && ++e->normal_after >= prm->resolve_after) {
        e->open = false;
        e->resolved_at = p->ts;
        return BP_EPISODE_RESOLVED;
    }
    return 0;
}

int bp_episode_match(const bp_episode_t *e, const bp_episode_known_t *known, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (known[i].started <= e->last_anomaly && known[i].end >= e->started)
            return (int)i;
    return -1;
}
