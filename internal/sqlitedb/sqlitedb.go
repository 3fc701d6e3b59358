// Package sqlitedb opens the embedded SQLite databases that hold a
// directory's and a relay's state (modernc.org/sqlite, pure Go, so the odi
// binary stays static) and brings their schema up to date.
//
// Databases run in WAL mode, so readers never wait for the writer, with
// synchronous=NORMAL, which keeps every committed transaction across a
// process crash (a power cut may lose the last few, never corrupt the file).
// Write transactions take the write lock when they begin (_txlock=immediate)
// so two writers wait for each other instead of failing on upgrade.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// Open opens (creating if needed) the database at path.
func Open(path string) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{
		"busy_timeout(30000)",
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		"foreign_keys(ON)",
		"cache_size(-65536)", // 64 MiB of page cache
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	// One connection writes at a time anyway; a few more let readers run
	// beside it.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	return db, nil
}

// Step is one migration: SQL to run, then Fn (when set) for what SQL cannot
// express, such as filling a new column from Go.
type Step struct {
	SQL string
	Fn  func(ctx context.Context, tx *sql.Tx) error
}

// SQL returns steps made of SQL alone.
func SQL(stmts ...string) []Step {
	out := make([]Step, len(stmts))
	for i, s := range stmts {
		out[i] = Step{SQL: s}
	}
	return out
}

// Migrate brings the schema to len(steps): step i runs, in its own
// transaction, when the database's user_version is i. A database newer than
// the code is refused rather than misread.
func Migrate(ctx context.Context, db *sql.DB, steps []Step) error {
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("sqlitedb: read schema version: %w", err)
	}
	if have > len(steps) {
		return fmt.Errorf("sqlitedb: database schema version %d is newer than this odi (%d); upgrade odi", have, len(steps))
	}
	for i := have; i < len(steps); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlitedb: migrate to %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, steps[i].SQL); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlitedb: migrate to %d: %w", i+1, err)
		}
		if fn := steps[i].Fn; fn != nil {
			if err := fn(ctx, tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("sqlitedb: migrate to %d: %w", i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlitedb: migrate to %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlitedb: migrate to %d: %w", i+1, err)
		}
	}
	return nil
}

// OpenMigrated opens the database at path and brings it to schema.
func OpenMigrated(ctx context.Context, path string, schema []Step) (*sql.DB, error) {
	db, err := Open(path)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db, schema); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
