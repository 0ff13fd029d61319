/*
 * db/migrate: applies the numbered SQL migrations of shared/sql/ (embedded in the binary at
 * build time) that the database has not seen, each in its own transaction, recorded in
 * schema_migrations(version, name, applied_at).
 *
 * Safe with N replicas starting at once: the whole run holds a session advisory lock on a
 * fixed key, so one process migrates while the others wait (or, with wait = false, report
 * BP_EBUSY and try again later: a server must stay able to exit on SIGTERM) and then find
 * nothing left to do. Migrations are never edited once merged; add a new number.
 */
#ifndef BP_DB_MIGRATE_H
#define BP_DB_MIGRATE_H

#include <stdbool.h>

#include "db/conn.h"

/* Applies pending migrations. Returns 0 or BP_EDB/BP_EINTERNAL with err set; on failure the
 * failing migration is rolled back and later ones are not tried. When another session holds
 * the migration lock: waits for it if `wait`, else returns BP_EBUSY at once. *applied (may be
 * NULL) receives how many were applied by this call. */
int bp_db_migrate_run(bp_db_t *db, bool wait, int *applied, bp_err_t *err);

/* The highest version compiled into this binary. */
int bp_db_migrate_latest(void);

/* Reads the database's schema version (0 when schema_migrations does not exist). */
int bp_db_migrate_current(bp_db_t *db, int *version, bp_err_t *err);

#endif
