/*
 * db/migrations: the table generated from shared/sql/NNN_name.sql by shared/sql/embed.py.
 * Private to db/migrate.c and its tests.
 */
#ifndef BP_DB_MIGRATIONS_H
#define BP_DB_MIGRATIONS_H

typedef struct st_bp_db_migration_t {
    int version;
    const char *name;
    const char *sql;
} bp_db_migration_t;

extern const bp_db_migration_t bp_db_migrations[];
extern const int bp_db_num_migrations;

#endif
