/*
 * Prints the aggregation upsert exactly as bizpulse-aggregate prepares it (functions/aggregate/
 * agg_sql.c), so the benchmark can EXPLAIN (ANALYZE, BUFFERS) the real statement.
 *
 *   print_sql KIND DIMS     KIND: count | sum | ratio | distinct; DIMS: 0 or 1 (has dimensions)
 *
 * Built by bench/aggregate/run.sh with: cc -I shared -I functions/aggregate print_sql.c agg_sql.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_sql.h"

int main(int argc, char **argv)
{
    static const char *const kinds[] = {"count", "sum", "ratio", "distinct"};
    if (argc != 3) {
        fprintf(stderr, "usage: %s count|sum|ratio|distinct 0|1\n", argv[0]);
        return 2;
    }
    bp_metric_t m;
    memset(&m, 0, sizeof(m));
    m.kind = (bp_metric_kind_t)-1;
    for (int k = 0; k < 4; k++)
        if (strcmp(argv[1], kinds[k]) == 0)
            m.kind = (bp_metric_kind_t)k;
    if ((int)m.kind < 0) {
        fprintf(stderr, "unknown kind '%s'\n", argv[1]);
        return 2;
    }
    m.num_dimensions = (size_t)atoi(argv[2]);
    printf("%s\n", bp_agg_sql_upsert(&m)->sql);
    return 0;
}
