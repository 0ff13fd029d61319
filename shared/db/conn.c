#include "db/conn.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct st_bp_db_t {
    PGconn *conn;
    const char **prepared; /* statement names prepared on this connection (static strings) */
    size_t num_prepared, cap_prepared;
    int64_t next_attempt_ms; /* monotonic; no connection attempt before this */
    int backoff_ms;
    unsigned connects;
    bool in_tx;
    bool tx_lost; /* the connection died inside a transaction: refuse work until rollback */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bp_db_t *bp_db_new(void)
{
    bp_db_t *db = calloc(1, sizeof(*db));
    if (db != NULL)
        db->backoff_ms = BACKOFF_MIN_MS;
    return db;
}

static void drop(bp_db_t *db)
{
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db->num_prepared = 0;
    if (db->in_tx)
        db->tx_lost = true;
    db->in_tx = false;
}

void bp_db_free(bp_db_t *db)
{
    if (db == NULL)
        return;
    drop(db);
    free(db->prepared);
    free(db);
}

/* First line of libpq's message, without the trailing newline: messages go into JSON logs. */
static int set_pq_err(bp_err_t *err, int code, const char *prefix, const char *msg)
{
    size_t n = strcspn(msg, "\n");
    return bp_err_set(err, code, "%s: %.*s", prefix, (int)n, msg);
}

/* libpq prints NOTICEs ("relation already exists, skipping") on stderr by default; they are
 * not errors, and stderr is not where our logs go. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    bp_log(BP_LOG_DEBUG, "postgres: %.*s", (int)strcspn(message, "\n"), message);
}

int bp_db_connect(bp_db_t *db, bp_err_t *err)
{
    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    drop(db);
    int64_t now = now_ms();
    if (now < db->next_attempt_ms)
        return bp_err_set(err, BP_EDB, "database unavailable (next connection attempt in %lld ms)",
                          (long long)(db->next_attempt_ms - now));
    /* DATABASE_URL goes in as dbname with expand_dbname, so either a URL or PG* variables
     * work; connect_timeout comes first so a URL's own value wins. */
    const char *url = getenv("DATABASE_URL");
    /* JIT compiles a plan in 100-300 ms: longer than our statements run (measured in
     * bench/aggregate). Custom plans keep the chosen index: a generic plan of aggregate's scan
     * turns its event-type list into an index condition and reads 2x the buffers (README). */
    const char *keys[] = {"connect_timeout", "application_name", "options", url && url[0] ? "dbname" : NULL,
                          NULL};
    const char *vals[] = {"3", "bizpulse", "-c jit=off -c plan_cache_mode=force_custom_plan", url, NULL};
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        int rc = set_pq_err(err, BP_EDB, "database connection failed",
                            db->conn ? PQerrorMessage(db->conn) : "out of memory");
        drop(db);
        db->next_attempt_ms = now_ms() + db->backoff_ms;
        db->backoff_ms = db->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : db->backoff_ms * 2;
        bp_metrics_inc("bizpulse_db_errors_total", "kind=\"connect\"");
        return rc;
    }
    PQsetNoticeProcessor(db->conn, on_notice, NULL);
    db->backoff_ms = BACKOFF_MIN_MS;
    db->next_attempt_ms = 0;
    db->connects++;
    if (db->connects > 1)
        bp_log(BP_LOG_INFO, "database connection re-established");
    return 0;
}

int bp_db_connect_wait(bp_db_t *db, int deadline_ms, bp_err_t *err)
{
    int64_t end = now_ms() + deadline_ms;
    for (;;) {
        int rc = bp_db_connect(db, err);
        if (rc == 0 || now_ms() >= end)
            return rc;
        int64_t wait = db->next_attempt_ms - now_ms();
        if (wait > end - now_ms())
            wait = end - now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
    }
}

/* SQLSTATE classes that a retry may cure (PostgreSQL Appendix A). */
static int classify(const PGresult *res, PGconn *conn)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return BP_EDB;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL)
        return BP_EDB;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strncmp(state, "57", 2) == 0)
        return BP_EDB;
    if (strncmp(state, "22", 2) == 0)
        return BP_EINVAL;
    return BP_EINTERNAL;
}

static int fail_result(bp_db_t *db, PGresult *res, const char *what, bp_err_t *err)
{
    int code = classify(res, db->conn);
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn);
    int rc = set_pq_err(err, code, what, msg && msg[0] ? msg : "no result");
    PQclear(res);
    bp_metrics_inc("bizpulse_db_errors_total", code == BP_EDB ? "kind=\"transient\"" : "kind=\"statement\"");
    if (PQstatus(db->conn) != CONNECTION_OK)
        drop(db);
    return rc;
}

static bool is_prepared(const bp_db_t *db, const char *name)
{
    for (size_t i = 0; i < db->num_prepared; i++)
        if (db->prepared[i] == name || strcmp(db->prepared[i], name) == 0)
            return true;
    return false;
}

static int prepare(bp_db_t *db, const bp_db_stmt_t *stmt, bp_err_t *err)
{
    if (db->num_prepared == db->cap_prepared) {
        size_t cap = db->cap_prepared ? db->cap_prepared * 2 : 16;
        const char **p = realloc(db->prepared, cap * sizeof(*p));
        if (p == NULL)
            return bp_err_set(err, BP_ENOMEM, "out of memory");
        db->prepared = p;
        db->cap_prepared = cap;
    }
    PGresult *res = PQprepare(db->conn, stmt->name, stmt->sql, stmt->nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail_result(db, res, stmt->name, err);
    PQclear(res);
    db->prepared[db->num_prepared++] = stmt->name;
    return 0;
}

/* Connected, and not inside a transaction the connection lost (a reconnect here would run the
 * statement outside it). */
static int usable(bp_db_t *db, bp_err_t *err)
{
    if (db->tx_lost)
        return bp_err_set(err, BP_EDB, "database connection lost inside a transaction");
    int rc = bp_db_connect(db, err);
    if (rc != 0)
        return rc;
    if (db->tx_lost) /* the connect found it dead and replaced it: not our transaction */
        return bp_err_set(err, BP_EDB, "database connection lost inside a transaction");
    return 0;
}

int bp_db_query(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, PGresult **res,
                bp_err_t *err)
{
    return bp_db_query_bin(db, stmt, params, NULL, NULL, BP_DB_TEXT, res, err);
}

int bp_db_query_bin(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, const int *lengths,
                    const int *formats, int result_format, PGresult **res, bp_err_t *err)
{
    /* libpq would read the lengths of binary parameters from a NULL array. */
    assert((lengths == NULL) == (formats == NULL));
    assert(result_format == BP_DB_TEXT || result_format == BP_DB_BINARY);
    if (res != NULL)
        *res = NULL;
    int rc = usable(db, err);
    if (rc != 0)
        return rc;
    if (!is_prepared(db, stmt->name) && (rc = prepare(db, stmt, err)) != 0)
        return rc;
    PGresult *r =
        PQexecPrepared(db->conn, stmt->name, stmt->nparams, params, lengths, formats, result_format);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return fail_result(db, r, stmt->name, err);
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

int bp_db_exec_count(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, long *affected,
                     bp_err_t *err)
{
    PGresult *res = NULL;
    int rc = bp_db_query(db, stmt, params, &res, err);
    if (rc == 0)
        *affected = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return rc;
}

int bp_db_copy_begin(bp_db_t *db, const char *sql, bp_err_t *err)
{
    int rc = usable(db, err);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(db->conn, sql);
    if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN)
        return fail_result(db, r, "copy", err);
    PQclear(r);
    return 0;
}

int bp_db_copy_put(bp_db_t *db, const char *data, size_t len, bp_err_t *err)
{
    /* in pieces: libpq queues what the socket does not take, 1 MB at a time keeps that bounded */
    for (size_t at = 0; at < len; at += 1u << 20) {
        size_t n = len - at < (1u << 20) ? len - at : (1u << 20);
        if (PQputCopyData(db->conn, data + at, (int)n) != 1)
            return set_pq_err(err, BP_EDB, "copy data not sent", PQerrorMessage(db->conn));
    }
    return 0;
}

int bp_db_copy_end(bp_db_t *db, const char *failure, bp_err_t *err)
{
    if (PQputCopyEnd(db->conn, failure) != 1 && failure == NULL)
        return fail_result(db, NULL, "copy end not sent", err);
    PGresult *r = PQgetResult(db->conn);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    for (PGresult *more; (more = PQgetResult(db->conn)) != NULL;)
        PQclear(more);
    if (st != PGRES_COMMAND_OK) {
        if (failure != NULL) { /* aborted on purpose: the caller's error stands */
            PQclear(r);
            return BP_EINTERNAL;
        }
        return fail_result(db, r, "copy", err);
    }
    PQclear(r);
    return 0;
}

int64_t bp_db_bin_int8(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

double bp_db_bin_float8(const char *p)
{
    int64_t bits = bp_db_bin_int8(p);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

int bp_db_exec_static(bp_db_t *db, const char *sql, bp_err_t *err)
{
    int rc = usable(db, err);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(db->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return fail_result(db, r, "statement", err);
    PQclear(r);
    return 0;
}

int bp_db_begin(bp_db_t *db, bp_err_t *err)
{
    int rc = bp_db_exec_static(db, "BEGIN", err);
    if (rc == 0)
        db->in_tx = true;
    return rc;
}

int bp_db_commit(bp_db_t *db, bp_err_t *err)
{
    int rc = BP_OK;
    if (db->tx_lost) {
        rc = bp_err_set(err, BP_EDB, "database connection lost inside a transaction");
    } else if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        rc = bp_err_set(err, BP_EDB, "database connection lost before commit");
    } else {
        PGresult *r = PQexec(db->conn, "COMMIT");
        /* A transaction that had failed answers COMMIT with the tag ROLLBACK: not a commit. */
        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = fail_result(db, r, "commit", err);
            r = NULL;
        } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            rc = bp_err_set(err, BP_EINTERNAL, "commit: the transaction had failed and was rolled back");
        }
        PQclear(r);
    }
    /* Whether it committed or not, the transaction is over. */
    db->in_tx = false;
    db->tx_lost = false;
    return rc;
}

void bp_db_rollback(bp_db_t *db)
{
    db->tx_lost = false;
    if (!db->in_tx)
        return;
    db->in_tx = false;
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
        return;
    PGresult *r = PQexec(db->conn, "ROLLBACK");
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        if (PQstatus(db->conn) != CONNECTION_OK)
            drop(db);
    }
    PQclear(r);
}

unsigned bp_db_connects(const bp_db_t *db)
{
    return db->connects;
}

static int col(const PGresult *res, const char *name)
{
    int c = PQfnumber(res, name);
    assert(c >= 0 && "column missing from result");
    return c;
}

bool bp_db_isnull(const PGresult *res, int row, const char *name)
{
    return PQgetisnull(res, row, col(res, name));
}

const char *bp_db_text(const PGresult *res, int row, const char *name)
{
    int c = col(res, name);
    return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

double bp_db_double(const PGresult *res, int row, const char *name)
{
    const char *v = bp_db_text(res, row, name);
    return v == NULL ? NAN : strtod(v, NULL);
}

long long bp_db_int(const PGresult *res, int row, const char *name)
{
    const char *v = bp_db_text(res, row, name);
    return v == NULL ? 0 : strtoll(v, NULL, 10);
}

bool bp_db_bool(const PGresult *res, int row, const char *name)
{
    const char *v = bp_db_text(res, row, name);
    return v != NULL && v[0] == 't';
}

int bp_db_append_int8_array(bp_buf_t *out, const int64_t *v, size_t n)
{
    int rc = bp_buf_append(out, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = bp_buf_appendf(out, "%s%" PRId64, i ? "," : "", v[i]);
    return rc ? rc : bp_buf_append(out, "}", 1);
}

int bp_db_append_text_array(bp_buf_t *out, const char *const *items, size_t n)
{
    int rc = bp_buf_append(out, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = bp_buf_append(out, ",", 1);
        if (items[i] == NULL) {
            rc = rc ? rc : bp_buf_append(out, "NULL", 4);
            continue;
        }
        rc = rc ? rc : bp_buf_append(out, "\"", 1);
        for (const char *p = items[i]; rc == 0 && *p;) {
            size_t run = strcspn(p, "\"\\");
            rc = bp_buf_append(out, p, run);
            p += run;
            if (rc == 0 && *p) {
                char esc[2] = {'\\', *p++};
                rc = bp_buf_append(out, esc, 2);
            }
        }
        rc = rc ? rc : bp_buf_append(out, "\"", 1);
    }
    return rc ? rc : bp_buf_append(out, "}", 1);
}
