// Package sqlitedb opens the embedded SQLite databases that hold a
// directory's and a relay's state (modernc.org/sqlite, pure Go, so the odi
// binary stays static) and brings their schema up to date.
//
// Databases run in WAL mode, so readers never wait for the writer, with
// synchronous=NORMAL, which keeps every committed transaction across a
// process crash (a power cut may lose the last few, never corrupt the file).
// Write transactions take the write lock when they begin (_txlock=immediate)
// so two writers wait for each other instead of failing on upgrade.
//
// SQLite copies the log back into the database (a checkpoint, with two
// fsyncs) in the commit that takes the log past wal_autocheckpoint pages. A
// catalog update of a few hundred paths touches over a thousand pages of a
// large catalog's indexes, so at SQLite's default every such commit would
// wait for a checkpoint. The bound is raised here, and the daemons run
// CheckpointLoop, which checkpoints beside the writers instead.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// Open opens (creating if needed) the database at path.
func Open(path string) (*sql.DB, error) { return open(path, 8) }

// OpenWriter opens the database at path with a single connection, for a
// daemon's writes. Writes take turns anyway (SQLite has one writer), and
// a connection keeps its page cache only while no other connection
// writes: one connection for all writes finds the index pages a commit
// touches in its cache rather than reading them again each time.
func OpenWriter(path string) (*sql.DB, error) { return open(path, 1) }

func open(path string, conns int) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{
		"busy_timeout(30000)",
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		"foreign_keys(ON)",
		"cache_size(-65536)", // 64 MiB of page cache
		"wal_autocheckpoint(" + strconv.Itoa(autoCheckpointPages) + ")",
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
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	return db, nil
}

// autoCheckpointPages bounds the write-ahead log (in pages of 4 KiB) when
// no CheckpointLoop runs, or when writes outpace it.
const autoCheckpointPages = 16384

// checkpointEvery is how often CheckpointLoop checkpoints.
const checkpointEvery = 10 * time.Second

// CheckpointLoop copies the write-ahead log back into the database every
// ten seconds until ctx ends, without waiting for readers or writers
// (PASSIVE): commits then rarely pay for a checkpoint themselves.
func CheckpointLoop(ctx context.Context, db *sql.DB, log *slog.Logger) {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := Checkpoint(ctx, db); err != nil && ctx.Err() == nil {
			log.Warn("cannot checkpoint the database log", "err", err)
		}
	}
}

// Checkpoint copies what it can of the write-ahead log into the database
// (PRAGMA wal_checkpoint(PASSIVE)).
func Checkpoint(ctx context.Context, db *sql.DB) error {
	var busy, logPages, done int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("sqlitedb: checkpoint: %w", err)
	}
	return nil
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

// OpenDaemon opens the database at path migrated to schema, as a daemon
// uses it: a pool of connections for reads, and one (OpenWriter) for
// writes.
func OpenDaemon(ctx context.Context, path string, schema []Step) (db, w *sql.DB, err error) {
	if db, err = OpenMigrated(ctx, path, schema); err != nil {
		return nil, nil, err
	}
	if w, err = OpenWriter(path); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, w, nil
}
