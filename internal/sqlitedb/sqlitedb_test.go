package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := SQL("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)")
	if err := Migrate(ctx, db, steps[:1]); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, steps); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO b VALUES (1)"); err != nil {
		t.Fatalf("step 2 did not run: %v", err)
	}
	if err := Migrate(ctx, db, steps); err != nil {
		t.Fatalf("re-running migrations: %v", err)
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = Migrate(ctx, db, steps[:1])
	if err == nil || !strings.Contains(err.Error(), "newer than this odi") {
		t.Fatalf("Migrate with fewer steps than the database has = %v", err)
	}
}

func TestMigrateFailureLeavesVersion(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Migrate(ctx, db, SQL("CREATE TABLE a (x)", "NOT SQL")); err == nil {
		t.Fatal("bad migration succeeded")
	}
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != 1 {
		t.Fatalf("user_version = %d after failed step 2, want 1", v)
	}
}

func TestOpenRefusesNonDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not a database. ", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err == nil {
		err = Migrate(context.Background(), db, SQL("CREATE TABLE a (x)"))
		db.Close()
	}
	if err == nil {
		t.Fatal("opening a text file as a database succeeded")
	}
}

func TestCommitsLeaveCheckpointsToCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	// About 8 MiB in 16 commits: past SQLite's default of 1000 pages,
	// under the raised bound.
	for range 16 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 128 {
			if _, err := tx.Exec("INSERT INTO t VALUES (randomblob(4096))"); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if n := size(); n > 1<<20 {
		t.Errorf("database file is %d bytes before any checkpoint: a commit checkpointed", n)
	}
	if err := Checkpoint(ctx, db); err != nil {
		t.Fatal(err)
	}
	if n := size(); n < 8<<20 {
		t.Errorf("database file is %d bytes after Checkpoint, want the 8 MiB written", n)
	}
}
