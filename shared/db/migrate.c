#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/migrations.h"
#include "log.h"

/* Any fixed 64-bit key; "bizpulse" in ASCII so it is recognisable in pg_locks. */
#define MIGRATE_LOCK_KEY "7089066844390436197"

static const bp_db_stmt_t lock_sql = {"bp_migrate_lock", "SELECT pg_advisory_lock($1::bigint)", 1};
static const bp_db_stmt_t try_lock_sql = {"bp_migrate_try_lock",
                                          "SELECT pg_try_advisory_lock($1::bigint) AS locked", 1};
static const bp_db_stmt_t unlock_sql = {"bp_migrate_unlock", "SELECT pg_advisory_unlock($1::bigint)", 1};
static const bp_db_stmt_t applied_sql = {
    "bp_migrate_applied", "SELECT coalesce(max(version), 0) AS version FROM schema_migrations", 0};
static const bp_db_stmt_t record_sql = {
    "bp_migrate_record", "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2};
static const bp_db_stmt_t exists_sql = {"bp_migrate_exists",
                                        "SELECT to_regclass('schema_migrations') IS NOT NULL AS present", 0};

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version INTEGER PRIMARY KEY,"
                                       " name TEXT NOT NULL,"
                                       " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";

int bp_db_migrate_latest(void)
{
    return bp_db_num_migrations > 0 ? bp_db_migrations[bp_db_num_migrations - 1].version : 0;
}

int bp_db_migrate_current(bp_db_t *db, int *version, bp_err_t *err)
{
    PGresult *res = NULL;
    *version = 0;
    int rc = bp_db_query(db, &exists_sql, NULL, &res, err);
    if (rc != 0)
        return rc;
    bool present = bp_db_bool(res, 0, "present");
    PQclear(res);
    if (!present)
        return 0;
    if ((rc = bp_db_query(db, &applied_sql, NULL, &res, err)) != 0)
        return rc;
    *version = (int)bp_db_int(res, 0, "version");
    PQclear(res);
    return 0;
}

static int apply(bp_db_t *db, const bp_db_migration_t *m, bp_err_t *err)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    int rc = bp_db_begin(db, err);
    if (rc == 0)
        rc = bp_db_exec_static(db, m->sql, err); /* fixed text compiled into the binary */
    if (rc == 0)
        rc = bp_db_query(db, &record_sql, params, NULL, err);
    if (rc == 0)
        rc = bp_db_commit(db, err);
    if (rc != 0) {
        bp_db_rollback(db);
        char cause[BP_ERR_MSG_SIZE];
        snprintf(cause, sizeof(cause), "%s", err ? err->msg : "");
        return bp_err_set(err, rc, "migration %03d_%s failed: %s", m->version, m->name, cause);
    }
    bp_log_fields(BP_LOG_INFO, NULL, "applied migration %03d_%s", m->version, m->name);
    return 0;
}

/* Session lock, taken before CREATE TABLE too: concurrent CREATE TABLE IF NOT EXISTS can
 * still collide in the catalog. */
static int take_lock(bp_db_t *db, bool wait, bp_err_t *err)
{
    const char *key[] = {MIGRATE_LOCK_KEY};
    if (wait)
        return bp_db_query(db, &lock_sql, key, NULL, err);
    PGresult *res = NULL;
    int rc = bp_db_query(db, &try_lock_sql, key, &res, err);
    if (rc != 0)
        return rc;
    bool ok = bp_db_bool(res, 0, "locked");
    PQclear(res);
    if (!ok)
        return bp_err_set(err, BP_EBUSY, "another process is applying migrations; retrying");
    return 0;
}

int bp_db_migrate_run(bp_db_t *db, bool wait, int *applied, bp_err_t *err)
{
    const char *key[] = {MIGRATE_LOCK_KEY};
    int count = 0;
    if (applied != NULL)
        *applied = 0;
    int rc = take_lock(db, wait, err);
    if (rc != 0)
        return rc;
    int current = 0;
    rc = bp_db_exec_static(db, create_table_sql, err);
    if (rc == 0)
        rc = bp_db_migrate_current(db, &current, err);
    for (int i = 0; rc == 0 && i < bp_db_num_migrations; i++) {
        if (bp_db_migrations[i].version <= current)
            continue;
        rc = apply(db, &bp_db_migrations[i], err);
        if (rc == 0)
            count++;
    }
    /* If the connection died, the server already released the session lock. */
    bp_db_query(db, &unlock_sql, key, NULL, NULL);
    if (applied != NULL)
        *applied = count;
    return rc;
}
