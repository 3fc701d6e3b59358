package relay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/sqlitedb"
	"github.com/opendistribution/odi/internal/store"
)

// schema is the relay's state. entries is the relay's view of each catalog
// at the version in catalogs: every path with the digest it has there,
// whether or not the blob is held yet. blobs lists the blobs held, with the
// Stamp taken right after each was verified.
var schema = sqlitedb.SQL(`
CREATE TABLE enrollment (
	directory     TEXT PRIMARY KEY,
	relay_id      TEXT NOT NULL,
	directory_key BLOB NOT NULL,
	enrolled      INTEGER NOT NULL
);
CREATE TABLE catalogs (
	name    TEXT PRIMARY KEY,
	version INTEGER NOT NULL
);
CREATE TABLE entries (
	catalog TEXT NOT NULL,
	path    TEXT NOT NULL,
	sha256  BLOB NOT NULL,
	size    INTEGER NOT NULL,
	PRIMARY KEY (catalog, path)
) WITHOUT ROWID;
CREATE TABLE blobs (
	sha256      BLOB PRIMARY KEY,
	size        INTEGER NOT NULL,
	stamp_mtime INTEGER NOT NULL,
	stamp_inode INTEGER NOT NULL,
	stamp_ctime INTEGER NOT NULL,
	last_access INTEGER NOT NULL
) WITHOUT ROWID;
`, `
ALTER TABLE catalogs ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
`, `
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`, `
ALTER TABLE catalogs ADD COLUMN share TEXT NOT NULL DEFAULT '';
`)

type stateDB struct {
	db *sql.DB // reads
	w  *sql.DB // writes, on one connection (sqlitedb.OpenWriter)
}

func openState(ctx context.Context, path string) (*stateDB, error) {
	db, w, err := sqlitedb.OpenDaemon(ctx, path, schema)
	if err != nil {
		return nil, err
	}
	return &stateDB{db: db, w: w}, nil
}

func (s *stateDB) Close() error { return errors.Join(s.w.Close(), s.db.Close()) }

type enrollment struct {
	RelayID      string
	DirectoryKey []byte
}

func (s *stateDB) enrollment(ctx context.Context, dir string) (enrollment, bool, error) {
	var e enrollment
	err := s.db.QueryRowContext(ctx, `SELECT relay_id, directory_key FROM enrollment WHERE directory = ?`, dir).Scan(&e.RelayID, &e.DirectoryKey)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("relay: read enrollment: %w", err)
	}
	return e, true, nil
}

func (s *stateDB) saveEnrollment(ctx context.Context, dir string, e enrollment, now time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO enrollment (directory, relay_id, directory_key, enrolled) VALUES (?, ?, ?, ?)
		ON CONFLICT (directory) DO UPDATE SET relay_id = excluded.relay_id, directory_key = excluded.directory_key, enrolled = excluded.enrolled`,
		dir, e.RelayID, e.DirectoryKey, now.UnixNano())
	if err != nil {
		return fmt.Errorf("relay: save enrollment: %w", err)
	}
	return nil
}

// load calls the callbacks with everything the relay knew when it stopped.
func (s *stateDB) load(ctx context.Context, cat func(name string, v uint64, expires time.Time, sh share), ent func(name, path string, d catalog.Digest, size int64), blob func(d catalog.Digest, size int64, st store.Stamp, lastAccess time.Time)) error {
	rows, err := s.db.QueryContext(ctx, `SELECT name, version, expires, share FROM catalogs`)
	if err != nil {
		return fmt.Errorf("relay: load state: %w", err)
	}
	for rows.Next() {
		var name, shareJSON string
		var v uint64
		var exp int64
		if err := rows.Scan(&name, &v, &exp, &shareJSON); err != nil {
			rows.Close()
			return fmt.Errorf("relay: load state: %w", err)
		}
		var sh share
		if shareJSON != "" {
			if err := sh.UnmarshalText([]byte(shareJSON)); err != nil {
				rows.Close()
				return fmt.Errorf("relay: load state: share of %s: %w", name, err)
			}
		}
		cat(name, v, time.Unix(0, exp), sh)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT catalog, path, sha256, size FROM entries`)
	if err != nil {
		return fmt.Errorf("relay: load state: %w", err)
	}
	for rows.Next() {
		var name, p string
		var sum []byte
		var size int64
		if err := rows.Scan(&name, &p, &sum, &size); err != nil {
			rows.Close()
			return fmt.Errorf("relay: load state: %w", err)
		}
		var d catalog.Digest
		copy(d[:], sum)
		ent(name, p, d, size)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT sha256, size, stamp_mtime, stamp_inode, stamp_ctime, last_access FROM blobs`)
	if err != nil {
		return fmt.Errorf("relay: load state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sum []byte
		var st store.Stamp
		var access int64
		if err := rows.Scan(&sum, &st.Size, &st.ModTime, &st.Inode, &st.Ctime, &access); err != nil {
			return fmt.Errorf("relay: load state: %w", err)
		}
		var d catalog.Digest
		copy(d[:], sum)
		blob(d, st.Size, st, time.Unix(0, access))
	}
	return rows.Err()
}

// applyChanges records a catalog's new version and its changed entries in
// one transaction.
func (s *stateDB) applyChanges(ctx context.Context, name string, v uint64, changes []catalog.Change) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay: apply %s@%d: %w", name, v, err)
	}
	defer tx.Rollback()
	// The last change of a path wins; puts and deletions are then
	// disjoint and each goes in batches.
	last := make(map[string]int, len(changes))
	for i, c := range changes {
		last[c.Path] = i
	}
	var puts, dels []*catalog.Change
	for i := range changes {
		if c := &changes[i]; last[c.Path] == i {
			if c.Deleted {
				dels = append(dels, c)
			} else {
				puts = append(puts, c)
			}
		}
	}
	err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{
		Head:  `INSERT INTO entries (catalog, path, sha256, size) VALUES `,
		Group: "(?, ?, ?, ?)",
		Tail:  ` ON CONFLICT (catalog, path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size`,
	}, len(puts), func(i int, vals []any) []any {
		return append(vals, name, puts[i].Path, puts[i].Digest[:], puts[i].Size)
	})
	if err == nil {
		err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{Head: `DELETE FROM entries WHERE catalog = ? AND path IN (`, Group: "?", Tail: ")", Prefix: []any{name}},
			len(dels), func(i int, vals []any) []any { return append(vals, dels[i].Path) })
	}
	if err != nil {
		return fmt.Errorf("relay: apply %s@%d: %w", name, v, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO catalogs (name, version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version`, name, v); err != nil {
		return fmt.Errorf("relay: apply %s@%d: %w", name, v, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("relay: apply %s@%d: %w", name, v, err)
	}
	return nil
}

func (s *stateDB) putBlob(ctx context.Context, d catalog.Digest, st store.Stamp, access time.Time) error {
	return s.putBlobs(ctx, []catalog.Digest{d}, []store.Stamp{st}, access)
}

// deleteBlobs forgets the given blobs in one transaction.
func (s *stateDB) deleteBlobs(ctx context.Context, ds []catalog.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay: forget blobs: %w", err)
	}
	defer tx.Rollback()
	err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{Head: `DELETE FROM blobs WHERE sha256 IN (`, Group: "?", Tail: ")"},
		len(ds), func(i int, vals []any) []any { return append(vals, ds[i][:]) })
	if err != nil {
		return fmt.Errorf("relay: forget blobs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("relay: forget blobs: %w", err)
	}
	return nil
}

func (s *stateDB) putBlobs(ctx context.Context, ds []catalog.Digest, sts []store.Stamp, access time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay: record blobs: %w", err)
	}
	defer tx.Rollback()
	err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{
		Head:  `INSERT INTO blobs (sha256, size, stamp_mtime, stamp_inode, stamp_ctime, last_access) VALUES `,
		Group: "(?, ?, ?, ?, ?, ?)",
		Tail:  ` ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, stamp_mtime = excluded.stamp_mtime, stamp_inode = excluded.stamp_inode, stamp_ctime = excluded.stamp_ctime`,
	}, len(ds), func(i int, vals []any) []any {
		st := sts[i]
		return append(vals, ds[i][:], st.Size, st.ModTime, st.Inode, st.Ctime, access.UnixNano())
	})
	if err != nil {
		return fmt.Errorf("relay: record blobs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("relay: record blobs: %w", err)
	}
	return nil
}

func (s *stateDB) setExpires(ctx context.Context, name string, exp time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE catalogs SET expires = ? WHERE name = ?`, exp.UnixNano(), name); err != nil {
		return fmt.Errorf("relay: record signature expiry: %w", err)
	}
	return nil
}

func (s *stateDB) setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("relay: read setting %s: %w", key, err)
	}
	return v, nil
}

func (s *stateDB) setSetting(ctx context.Context, key, value string) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("relay: save setting %s: %w", key, err)
	}
	return nil
}

// deletePaths removes paths of a catalog from the index.
func (s *stateDB) deletePaths(ctx context.Context, name string, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay: delete paths: %w", err)
	}
	defer tx.Rollback()
	err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{Head: `DELETE FROM entries WHERE catalog = ? AND path IN (`, Group: "?", Tail: ")", Prefix: []any{name}},
		len(paths), func(i int, vals []any) []any { return append(vals, paths[i]) })
	if err != nil {
		return fmt.Errorf("relay: delete paths: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("relay: delete paths: %w", err)
	}
	return nil
}

// setAccess records last-access times (Unix nanoseconds) of blobs.
func (s *stateDB) setAccess(ctx context.Context, ds []catalog.Digest, at []int64) error {
	if len(ds) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay: record access times: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `UPDATE blobs SET last_access = ? WHERE sha256 = ?`)
	if err != nil {
		return fmt.Errorf("relay: record access times: %w", err)
	}
	defer st.Close()
	for i, d := range ds {
		if _, err := st.ExecContext(ctx, at[i], d[:]); err != nil {
			return fmt.Errorf("relay: record access times: %w", err)
		}
	}
	return tx.Commit()
}

func (s *stateDB) setShare(ctx context.Context, name string, sh share) error {
	b, err := sh.MarshalText()
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE catalogs SET share = ? WHERE name = ?`, string(b), name)
	if err != nil {
		return fmt.Errorf("relay: record share of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err = s.w.ExecContext(ctx, `INSERT INTO catalogs (name, version, share) VALUES (?, 0, ?)`, name, string(b))
		if err != nil {
			return fmt.Errorf("relay: record share of %s: %w", name, err)
		}
	}
	return nil
}
