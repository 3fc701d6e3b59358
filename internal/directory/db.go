package directory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/sqlitedb"
)

// schema is the directory's state, one migration step per element.
//
// artifacts holds each catalog's current state; its version column is the
// catalog version that last set the row. tombstones remember deleted paths
// with the version that deleted them. Together they are the change log:
// everything after version N is the rows of both with version > N, found
// through the (catalog, version, path) indexes in time proportional to the
// answer. Relay inventories are not stored: relays report them again to a
// restarted directory, which keeps the table of record on the relays.
var schema = []string{`
CREATE TABLE catalogs (
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL UNIQUE,
	version INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
);
CREATE TABLE artifacts (
	catalog INTEGER NOT NULL REFERENCES catalogs(id),
	path    TEXT NOT NULL,
	size    INTEGER NOT NULL,
	sha256  BLOB NOT NULL,
	mtime   INTEGER NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (catalog, path)
) WITHOUT ROWID;
CREATE INDEX artifacts_by_version ON artifacts (catalog, version, path);
CREATE INDEX artifacts_by_digest ON artifacts (sha256);
CREATE TABLE tombstones (
	catalog INTEGER NOT NULL REFERENCES catalogs(id),
	path    TEXT NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (catalog, path)
) WITHOUT ROWID;
CREATE INDEX tombstones_by_version ON tombstones (catalog, version, path);
CREATE TABLE versions (
	catalog INTEGER NOT NULL REFERENCES catalogs(id),
	version INTEGER NOT NULL,
	created INTEGER NOT NULL,
	added   INTEGER NOT NULL,
	changed INTEGER NOT NULL,
	removed INTEGER NOT NULL,
	PRIMARY KEY (catalog, version)
) WITHOUT ROWID;
CREATE TABLE relays (
	id         TEXT PRIMARY KEY,
	public_key BLOB NOT NULL,
	public_url TEXT NOT NULL,
	quota      INTEGER NOT NULL,
	bandwidth  INTEGER NOT NULL,
	catalogs   TEXT NOT NULL,
	software   TEXT NOT NULL,
	enrolled   INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
);
`, `
ALTER TABLE relays ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
`}

// stateDB is the directory's SQLite state.
type stateDB struct {
	db *sql.DB
}

func openState(ctx context.Context, path string) (*stateDB, error) {
	db, err := sqlitedb.OpenMigrated(ctx, path, schema)
	if err != nil {
		return nil, err
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) Close() error { return s.db.Close() }

type catalogRow struct {
	ID      int64
	Name    string
	Version uint64
	Updated time.Time
}

// ensureCatalog returns the catalog named name, creating it at version 0.
func (s *stateDB) ensureCatalog(ctx context.Context, name string, now time.Time) (catalogRow, error) {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO catalogs (name, version, created, updated) VALUES (?, 0, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, now.UnixNano(), now.UnixNano())
	if err != nil {
		return catalogRow{}, fmt.Errorf("directory: create catalog %s: %w", name, err)
	}
	var c catalogRow
	var updated int64
	err = s.db.QueryRowContext(ctx, `SELECT id, name, version, updated FROM catalogs WHERE name = ?`, name).
		Scan(&c.ID, &c.Name, &c.Version, &updated)
	c.Updated = time.Unix(0, updated)
	if err != nil {
		return c, fmt.Errorf("directory: read catalog %s: %w", name, err)
	}
	return c, nil
}

func (s *stateDB) catalogs(ctx context.Context) ([]catalogRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, version, updated FROM catalogs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("directory: list catalogs: %w", err)
	}
	defer rows.Close()
	var out []catalogRow
	for rows.Next() {
		var c catalogRow
		var updated int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Version, &updated); err != nil {
			return nil, fmt.Errorf("directory: list catalogs: %w", err)
		}
		c.Updated = time.Unix(0, updated)
		out = append(out, c)
	}
	return out, rows.Err()
}

// loadArtifacts calls fn for every artifact of catalog id.
func (s *stateDB) loadArtifacts(ctx context.Context, id int64, fn func(a catalog.Artifact)) error {
	rows, err := s.db.QueryContext(ctx, `SELECT path, size, sha256, mtime, version FROM artifacts WHERE catalog = ?`, id)
	if err != nil {
		return fmt.Errorf("directory: load artifacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a catalog.Artifact
		var sum []byte
		var mtime int64
		if err := rows.Scan(&a.Path, &a.Size, &sum, &mtime, &a.Version); err != nil {
			return fmt.Errorf("directory: load artifacts: %w", err)
		}
		if len(sum) != len(a.Digest) {
			return fmt.Errorf("directory: load artifacts: %s: stored digest has %d bytes", a.Path, len(sum))
		}
		copy(a.Digest[:], sum)
		a.ModTime = time.Unix(0, mtime)
		fn(a)
	}
	return rows.Err()
}

// touch records a new modification time for a path whose bytes did not
// change, so the next scan need not hash it again.
type touch struct {
	Path  string
	MTime time.Time
}

// commit records one new version of catalog id, which must still be at
// version from, and returns the new version number.
func (s *stateDB) commit(ctx context.Context, id int64, from uint64, puts []catalog.Artifact, deletes []string, touches []touch, sum catalog.Summary, now time.Time) (uint64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	defer tx.Rollback()
	var cur uint64
	if err := tx.QueryRowContext(ctx, `SELECT version FROM catalogs WHERE id = ?`, id).Scan(&cur); err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	if cur != from {
		return 0, fmt.Errorf("directory: commit: catalog moved from version %d to %d meanwhile", from, cur)
	}
	v := from + 1
	if len(puts) == 0 && len(deletes) == 0 {
		v = from // only touches: no new version
	}
	put, err := tx.PrepareContext(ctx, `INSERT INTO artifacts (catalog, path, size, sha256, mtime, version) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (catalog, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, mtime = excluded.mtime, version = excluded.version`)
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	defer put.Close()
	unTomb, err := tx.PrepareContext(ctx, `DELETE FROM tombstones WHERE catalog = ? AND path = ?`)
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	defer unTomb.Close()
	for _, a := range puts {
		if _, err := put.ExecContext(ctx, id, a.Path, a.Size, a.Digest[:], a.ModTime.UnixNano(), v); err != nil {
			return 0, fmt.Errorf("directory: commit %s: %w", a.Path, err)
		}
		if _, err := unTomb.ExecContext(ctx, id, a.Path); err != nil {
			return 0, fmt.Errorf("directory: commit %s: %w", a.Path, err)
		}
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM artifacts WHERE catalog = ? AND path = ?`)
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	defer del.Close()
	tomb, err := tx.PrepareContext(ctx, `INSERT INTO tombstones (catalog, path, version) VALUES (?, ?, ?)
		ON CONFLICT (catalog, path) DO UPDATE SET version = excluded.version`)
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	defer tomb.Close()
	for _, p := range deletes {
		if _, err := del.ExecContext(ctx, id, p); err != nil {
			return 0, fmt.Errorf("directory: commit delete %s: %w", p, err)
		}
		if _, err := tomb.ExecContext(ctx, id, p, v); err != nil {
			return 0, fmt.Errorf("directory: commit delete %s: %w", p, err)
		}
	}
	if len(touches) > 0 {
		t, err := tx.PrepareContext(ctx, `UPDATE artifacts SET mtime = ? WHERE catalog = ? AND path = ?`)
		if err != nil {
			return 0, fmt.Errorf("directory: commit: %w", err)
		}
		defer t.Close()
		for _, x := range touches {
			if _, err := t.ExecContext(ctx, x.MTime.UnixNano(), id, x.Path); err != nil {
				return 0, fmt.Errorf("directory: commit touch %s: %w", x.Path, err)
			}
		}
	}
	if v != from {
		if _, err := tx.ExecContext(ctx, `UPDATE catalogs SET version = ?, updated = ? WHERE id = ?`, v, now.UnixNano(), id); err != nil {
			return 0, fmt.Errorf("directory: commit: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO versions (catalog, version, created, added, changed, removed) VALUES (?, ?, ?, ?, ?, ?)`,
			id, v, now.UnixNano(), sum.Added, sum.Changed, sum.Removed); err != nil {
			return 0, fmt.Errorf("directory: commit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
	}
	return v, nil
}

// changes returns up to limit entries of catalog id's change log after
// version since and up to version upto, in (version, path) order, starting
// after the cursor position (afterV, afterPath); the first page's cursor is
// (since, "").
func (s *stateDB) changes(ctx context.Context, id int64, since, upto, afterV uint64, afterPath string, limit int) ([]catalog.Change, error) {
	if afterV < since {
		afterV, afterPath = since, ""
	}
	cond := `catalog = ? AND version > ? AND version <= ? AND (version > ? OR (version = ? AND path > ?))`
	args := []any{id, since, upto, afterV, afterV, afterPath}
	arts, err := s.db.QueryContext(ctx, `SELECT path, size, sha256, mtime, version FROM artifacts WHERE `+cond+` ORDER BY version, path LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("directory: changes: %w", err)
	}
	var out []catalog.Change
	for arts.Next() {
		var c catalog.Change
		var sum []byte
		var mtime int64
		if err := arts.Scan(&c.Path, &c.Size, &sum, &mtime, &c.Version); err != nil {
			arts.Close()
			return nil, fmt.Errorf("directory: changes: %w", err)
		}
		copy(c.Digest[:], sum)
		c.ModTime = time.Unix(0, mtime)
		out = append(out, c)
	}
	arts.Close()
	if err := arts.Err(); err != nil {
		return nil, fmt.Errorf("directory: changes: %w", err)
	}
	tombs, err := s.db.QueryContext(ctx, `SELECT path, version FROM tombstones WHERE `+cond+` ORDER BY version, path LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("directory: changes: %w", err)
	}
	defer tombs.Close()
	for tombs.Next() {
		c := catalog.Change{Deleted: true}
		if err := tombs.Scan(&c.Path, &c.Version); err != nil {
			return nil, fmt.Errorf("directory: changes: %w", err)
		}
		out = append(out, c)
	}
	if err := tombs.Err(); err != nil {
		return nil, fmt.Errorf("directory: changes: %w", err)
	}
	sortChanges(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// referenced reports whether any catalog still has an artifact with digest d.
func (s *stateDB) referenced(ctx context.Context, d catalog.Digest) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM artifacts WHERE sha256 = ? LIMIT 1`, d[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("directory: blob references: %w", err)
	}
	return true, nil
}

// relayRow is a relay as enrolled.
type relayRow struct {
	ID        string
	PublicKey []byte
	PublicURL string
	Quota     int64
	Bandwidth int64
	Catalogs  []string
	Software  string
	Enrolled  time.Time
	LastSeen  time.Time
	// Settings are the operator's routing choices, stored as JSON.
	Settings httpapi.RelaySettings
}

func (s *stateDB) putRelay(ctx context.Context, r relayRow) error {
	settings, err := json.Marshal(r.Settings)
	if err != nil {
		return fmt.Errorf("directory: save relay %s: %w", r.ID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO relays (id, public_key, public_url, quota, bandwidth, catalogs, software, enrolled, last_seen, settings)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET public_url = excluded.public_url, quota = excluded.quota, bandwidth = excluded.bandwidth,
			catalogs = excluded.catalogs, software = excluded.software, last_seen = excluded.last_seen, settings = excluded.settings`,
		r.ID, r.PublicKey, r.PublicURL, r.Quota, r.Bandwidth, strings.Join(r.Catalogs, ","), r.Software,
		r.Enrolled.UnixNano(), r.LastSeen.UnixNano(), string(settings))
	if err != nil {
		return fmt.Errorf("directory: save relay %s: %w", r.ID, err)
	}
	return nil
}

func (s *stateDB) relays(ctx context.Context) ([]relayRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, public_key, public_url, quota, bandwidth, catalogs, software, enrolled, last_seen, settings FROM relays ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("directory: list relays: %w", err)
	}
	defer rows.Close()
	var out []relayRow
	for rows.Next() {
		var r relayRow
		var cats, settings string
		var enrolled, seen int64
		if err := rows.Scan(&r.ID, &r.PublicKey, &r.PublicURL, &r.Quota, &r.Bandwidth, &cats, &r.Software, &enrolled, &seen, &settings); err != nil {
			return nil, fmt.Errorf("directory: list relays: %w", err)
		}
		if err := json.Unmarshal([]byte(settings), &r.Settings); err != nil {
			return nil, fmt.Errorf("directory: list relays: %s: settings: %w", r.ID, err)
		}
		if cats != "" {
			r.Catalogs = strings.Split(cats, ",")
		}
		r.Enrolled, r.LastSeen = time.Unix(0, enrolled), time.Unix(0, seen)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *stateDB) touchRelay(ctx context.Context, id string, seen time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE relays SET last_seen = ? WHERE id = ?`, seen.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("directory: save relay %s: %w", id, err)
	}
	return nil
}

func sortChanges(c []catalog.Change) {
	slices.SortFunc(c, func(a, b catalog.Change) int {
		if a.Version != b.Version {
			return cmp.Compare(a.Version, b.Version)
		}
		return strings.Compare(a.Path, b.Path)
	})
}
