/*
 * db/conn: one PostgreSQL connection (libpq) that reconnects by itself, and the only way the
 * project runs SQL: parameterised statements, prepared once per connection by name.
 *
 * Connection parameters come from the environment: DATABASE_URL when set, else libpq's own
 * PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD...). Never logged.
 *
 * Reconnect: when a call finds the connection broken (server restart, network), it drops it
 * and the next call reconnects. Attempts are spaced by an exponential backoff (100 ms doubling
 * to 5 s); a call made before the next attempt is due fails at once with BP_EDB instead of
 * blocking, so request handlers answer 503 quickly while the database is down.
 *
 * Errors: BP_EDB for transient failures (connection lost, server shutting down, deadlock,
 * serialization failure, too many connections: SQLSTATE classes 08, 40, 53, 57); BP_EINVAL
 * for data exceptions (class 22: a client value the database refused); BP_EINTERNAL for
 * anything else (a bug in our SQL). err->msg has libpq's first message line.
 *
 * Not thread-safe: one bp_db_t per thread (DESIGN: one PGconn per worker).
 */
#ifndef BP_DB_CONN_H
#define BP_DB_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "err.h"

typedef struct st_bp_db_t bp_db_t;

/* A named statement: `name` must be unique in the process and stable ("bp_agg_upsert").
 * Declare them as static const in the module's *_sql.c / at the top of the module. */
typedef struct st_bp_db_stmt_t {
    const char *name;
    const char *sql;
    int nparams;
} bp_db_stmt_t;

/* Creates a handle; connects lazily on first use. Returns NULL only on allocation failure. */
bp_db_t *bp_db_new(void);

/* Closes the connection and frees the handle. NULL is allowed. */
void bp_db_free(bp_db_t *db);

/* Makes sure the connection is up, connecting now if the backoff allows. 0 or BP_EDB. */
int bp_db_connect(bp_db_t *db, bp_err_t *err);

/* Like bp_db_connect but keeps retrying (with the backoff) until deadline_ms elapses. */
int bp_db_connect_wait(bp_db_t *db, int deadline_ms, bp_err_t *err);

/* Runs a prepared statement with text parameters (NULL entries are SQL NULLs). On success
 * returns 0 and, when res is not NULL, stores the result there (caller PQclear()s it);
 * with res NULL the result is discarded. On failure returns a BP_E* code, *res is NULL. */
int bp_db_query(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, PGresult **res,
                bp_err_t *err);

/* Parameter and result formats of bp_db_query_bin (libpq's 0 and 1). */
enum { BP_DB_TEXT = 0, BP_DB_BINARY = 1 };

/* bp_db_query with libpq's binary formats, for bytea: no escaping and no doubling in hex.
 * formats[i] BP_DB_BINARY sends params[i] as exactly lengths[i] bytes (NULs allowed; declare
 * the parameter "$n::bytea" so the server reads them as the bytes themselves); BP_DB_TEXT sends
 * a NUL-terminated string as bp_db_query does and ignores lengths[i]. lengths and formats are
 * nparams long, or both NULL for all text. result_format applies to every column: with
 * BP_DB_BINARY, PQgetvalue points at PQgetlength raw bytes, which for a bytea are its bytes but
 * for other types their network-order binary form (select bytea columns only, or read them
 * accordingly; bp_db_text and friends expect text). The params are only read during the call.
 * Result ownership and errors as bp_db_query. */
int bp_db_query_bin(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, const int *lengths,
                    const int *formats, int result_format, PGresult **res, bp_err_t *err);

/* bp_db_query for a statement whose result is only its row count (INSERT/UPDATE/DELETE):
 * *affected gets PQcmdTuples. */
int bp_db_exec_count(bp_db_t *db, const bp_db_stmt_t *stmt, const char *const *params, long *affected,
                     bp_err_t *err);

/* Bulk insert, the fastest way to add many rows: bp_db_copy_begin runs a fixed
 * `COPY table (columns) FROM STDIN` (sql: static text, never input); bp_db_copy_put streams
 * rows in COPY's text format (the caller escapes them), in pieces of any size;
 * bp_db_copy_end finishes it, or with failure non-NULL aborts it (what was sent is dropped).
 * After a successful begin, call end exactly once, whatever put returned. Errors: BP_EDB when
 * the connection fails, BP_EINTERNAL for a refused row (e.g. a unique violation); the COPY's
 * rows are then not inserted, and the caller's transaction has failed (roll it back). */
int bp_db_copy_begin(bp_db_t *db, const char *sql, bp_err_t *err);
int bp_db_copy_put(bp_db_t *db, const char *data, size_t len, bp_err_t *err);
int bp_db_copy_end(bp_db_t *db, const char *failure, bp_err_t *err);

/* A value of a BP_DB_BINARY result: int8 (and timestamptz: microseconds since 2000-01-01 UTC),
 * float8. p is PQgetvalue's, 8 bytes in network order. */
int64_t bp_db_bin_int8(const char *p);
double bp_db_bin_float8(const char *p);

/* Runs fixed SQL text with no parameters (BEGIN, COMMIT, migrations). Never pass input here. */
int bp_db_exec_static(bp_db_t *db, const char *sql, bp_err_t *err);

int bp_db_begin(bp_db_t *db, bp_err_t *err);
int bp_db_commit(bp_db_t *db, bp_err_t *err);
/* Rolls back if a transaction is open; never fails loudly (used on error paths). */
void bp_db_rollback(bp_db_t *db);

/* Number of times this handle has (re)connected successfully; lets tests and /metrics see a
 * reconnect happened. */
unsigned bp_db_connects(const bp_db_t *db);

/* Appends a PostgreSQL text[] literal of the n strings (each double-quoted and escaped; a NULL
 * item is an SQL NULL element), for passing a list as one parameter ("$1::text[]"). Returns 0 or
 * BP_ETOOBIG/BP_ENOMEM. */
struct st_bp_buf_t;
int bp_db_append_text_array(struct st_bp_buf_t *out, const char *const *items, size_t n);

/* Appends a bigint[] literal of the n values ("{1,-2,3}"), likewise ("$1::bigint[]"). */
int bp_db_append_int8_array(struct st_bp_buf_t *out, const int64_t *v, size_t n);

/* Helpers to read a result by column name (PQfnumber), as STYLE §6 asks. A missing column is
 * a programming error (asserted). */
bool bp_db_isnull(const PGresult *res, int row, const char *col);
const char *bp_db_text(const PGresult *res, int row, const char *col); /* NULL when SQL NULL */
double bp_db_double(const PGresult *res, int row, const char *col);    /* NAN when SQL NULL */
long long bp_db_int(const PGresult *res, int row, const char *col);    /* 0 when SQL NULL */
bool bp_db_bool(const PGresult *res, int row, const char *col);        /* false when SQL NULL */

#endif
