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
var schema = append(sqlitedb.SQL(`
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
ALTER TABLE catalogs ADD COLUMN signed INTEGER NOT NULL DEFAULT 0;
`, `
ALTER TABLE relays ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
ALTER TABLE relays ADD COLUMN drain_reason TEXT NOT NULL DEFAULT '';
CREATE TABLE expunges (
	id      INTEGER PRIMARY KEY,
	catalog INTEGER NOT NULL REFERENCES catalogs(id),
	sha256  BLOB NOT NULL,
	reason  TEXT NOT NULL,
	created INTEGER NOT NULL,
	version INTEGER NOT NULL
);
CREATE TABLE expunged_paths (
	expunge INTEGER NOT NULL REFERENCES expunges(id),
	path    TEXT NOT NULL,
	PRIMARY KEY (expunge, path)
) WITHOUT ROWID;
CREATE TABLE expunge_acks (
	expunge INTEGER NOT NULL REFERENCES expunges(id),
	relay   TEXT NOT NULL,
	detail  TEXT NOT NULL,
	at      INTEGER NOT NULL,
	PRIMARY KEY (expunge, relay)
) WITHOUT ROWID;
`), sqlitedb.Step{
	// phash places a path on the hash ring that shards a catalog
	// (catalog.PathHash, shifted right once to fit a signed integer), so
	// the state of a range of shards is one index range.
	SQL: `ALTER TABLE artifacts ADD COLUMN phash INTEGER NOT NULL DEFAULT 0;
CREATE INDEX artifacts_by_phash ON artifacts (catalog, phash, path);
ALTER TABLE catalogs ADD COLUMN shard_bits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE relays ADD COLUMN labels TEXT NOT NULL DEFAULT '';
CREATE TABLE settings (key TEXT PRIMARY KEY, value BLOB NOT NULL);`,
	Fn: backfillPathHashes,
}, sqlitedb.Step{
	// settings are a relay operator's routing choices (httpapi.RelaySettings).
	SQL: `ALTER TABLE relays ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';`,
}, sqlitedb.Step{
	// unused lists blobs a version may have left without an artifact,
	// recorded with the version, for the reaper (scan.go).
	SQL: `CREATE TABLE unused (sha256 BLOB PRIMARY KEY) WITHOUT ROWID;`,
})

// phashOf is the phash column of path.
func phashOf(path string) int64 { return int64(catalog.PathHash(path) >> 1) }

// backfillPathHashes fills phash for rows written before it existed.
func backfillPathHashes(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT catalog, path FROM artifacts`)
	if err != nil {
		return err
	}
	type key struct {
		catalog int64
		path    string
	}
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.catalog, &k.path); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, k)
	}
	rows.Close()
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `UPDATE artifacts SET phash = ? WHERE catalog = ? AND path = ?`, phashOf(k.path), k.catalog, k.path); err != nil {
			return err
		}
	}
	return nil
}

// stateDB is the directory's SQLite state.
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

type catalogRow struct {
	ID        int64
	Name      string
	Version   uint64
	Updated   time.Time
	ShardBits uint8
}

// ensureCatalog returns the catalog named name, creating it at version 0.
func (s *stateDB) ensureCatalog(ctx context.Context, name string, now time.Time) (catalogRow, error) {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO catalogs (name, version, created, updated) VALUES (?, 0, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, now.UnixNano(), now.UnixNano())
	if err != nil {
		return catalogRow{}, fmt.Errorf("directory: create catalog %s: %w", name, err)
	}
	var c catalogRow
	var updated int64
	err = s.db.QueryRowContext(ctx, `SELECT id, name, version, updated, shard_bits FROM catalogs WHERE name = ?`, name).
		Scan(&c.ID, &c.Name, &c.Version, &updated, &c.ShardBits)
	c.Updated = time.Unix(0, updated)
	if err != nil {
		return c, fmt.Errorf("directory: read catalog %s: %w", name, err)
	}
	return c, nil
}

func (s *stateDB) catalogs(ctx context.Context) ([]catalogRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, version, updated, shard_bits FROM catalogs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("directory: list catalogs: %w", err)
	}
	defer rows.Close()
	var out []catalogRow
	for rows.Next() {
		var c catalogRow
		var updated int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Version, &updated, &c.ShardBits); err != nil {
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
// commit records a scan's changes as the next version, with the blobs it
// may have left unused queued for the reaper in the same transaction.
func (s *stateDB) commit(ctx context.Context, id int64, from uint64, puts []catalog.Artifact, deletes []string, touches []touch, sum catalog.Summary, now time.Time, unused []catalog.Digest) (uint64, error) {
	return s.commitWith(ctx, id, from, puts, deletes, touches, sum, now, func(tx *sql.Tx, _ uint64) error {
		return queueUnused(ctx, tx, unused)
	})
}

// queueUnused records blobs for the reaper in tx.
func queueUnused(ctx context.Context, tx *sql.Tx, ds []catalog.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	err := sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{Head: `INSERT OR IGNORE INTO unused (sha256) VALUES `, Group: "(?)"}, len(ds),
		func(i int, vals []any) []any { return append(vals, ds[i][:]) })
	if err != nil {
		return fmt.Errorf("directory: queue unused blobs: %w", err)
	}
	return nil
}

// queueUnused records blobs for the reaper outside a commit.
func (s *stateDB) queueUnused(ctx context.Context, ds []catalog.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("directory: queue unused blobs: %w", err)
	}
	defer tx.Rollback()
	if err := queueUnused(ctx, tx, ds); err != nil {
		return err
	}
	return tx.Commit()
}

// unused returns the blobs queued for the reaper.
func (s *stateDB) unused(ctx context.Context) ([]catalog.Digest, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sha256 FROM unused`)
	if err != nil {
		return nil, fmt.Errorf("directory: unused blobs: %w", err)
	}
	defer rows.Close()
	var out []catalog.Digest
	for rows.Next() {
		var sum []byte
		if err := rows.Scan(&sum); err != nil {
			return nil, fmt.Errorf("directory: unused blobs: %w", err)
		}
		var d catalog.Digest
		copy(d[:], sum)
		out = append(out, d)
	}
	return out, rows.Err()
}

// forgetUnused takes blobs the reaper dealt with off its queue.
func (s *stateDB) forgetUnused(ctx context.Context, ds []catalog.Digest) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("directory: unused blobs: %w", err)
	}
	defer tx.Rollback()
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `DELETE FROM unused WHERE sha256 = ?`, d[:]); err != nil {
			return fmt.Errorf("directory: unused blobs: %w", err)
		}
	}
	return tx.Commit()
}

// pathsIn deletes rows of catalog id from table by path, many to a
// statement.
func pathsIn(table string, id int64) sqlitedb.Rows {
	return sqlitedb.Rows{Head: `DELETE FROM ` + table + ` WHERE catalog = ? AND path IN (`, Group: "?", Tail: ")", Prefix: []any{id}}
}

// commitWith is commit, running extra inside the same transaction with
// the new version.
func (s *stateDB) commitWith(ctx context.Context, id int64, from uint64, puts []catalog.Artifact, deletes []string, touches []touch, sum catalog.Summary, now time.Time, extra func(tx *sql.Tx, v uint64) error) (uint64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
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
	err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{
		Head:  `INSERT INTO artifacts (catalog, path, size, sha256, mtime, version, phash) VALUES `,
		Group: "(?, ?, ?, ?, ?, ?, ?)",
		Tail:  ` ON CONFLICT (catalog, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, mtime = excluded.mtime, version = excluded.version`,
	}, len(puts), func(i int, vals []any) []any {
		a := &puts[i]
		return append(vals, id, a.Path, a.Size, a.Digest[:], a.ModTime.UnixNano(), v, phashOf(a.Path))
	})
	if err == nil {
		err = sqlitedb.ExecRows(ctx, tx, pathsIn("tombstones", id), len(puts), func(i int, vals []any) []any { return append(vals, puts[i].Path) })
	}
	if err == nil {
		err = sqlitedb.ExecRows(ctx, tx, pathsIn("artifacts", id), len(deletes), func(i int, vals []any) []any { return append(vals, deletes[i]) })
	}
	if err == nil {
		err = sqlitedb.ExecRows(ctx, tx, sqlitedb.Rows{
			Head:  `INSERT INTO tombstones (catalog, path, version) VALUES `,
			Group: "(?, ?, ?)",
			Tail:  ` ON CONFLICT (catalog, path) DO UPDATE SET version = excluded.version`,
		}, len(deletes), func(i int, vals []any) []any { return append(vals, id, deletes[i], v) })
	}
	if err != nil {
		return 0, fmt.Errorf("directory: commit: %w", err)
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
	if extra != nil {
		if err := extra(tx, v); err != nil {
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

// signedVersion returns the catalog version the signed metadata describes.
func (s *stateDB) signedVersion(ctx context.Context, id int64) (uint64, error) {
	var v uint64
	if err := s.db.QueryRowContext(ctx, `SELECT signed FROM catalogs WHERE id = ?`, id).Scan(&v); err != nil {
		return 0, fmt.Errorf("directory: read signed version: %w", err)
	}
	return v, nil
}

func (s *stateDB) setSigned(ctx context.Context, id int64, v uint64) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE catalogs SET signed = ? WHERE id = ?`, v, id); err != nil {
		return fmt.Errorf("directory: record signed version: %w", err)
	}
	return nil
}

// allChanges returns the whole change log between since and upto.
func (s *stateDB) allChanges(ctx context.Context, id int64, since, upto uint64) ([]catalog.Change, error) {
	var out []catalog.Change
	afterV, afterPath := since, ""
	for {
		page, err := s.changes(ctx, id, since, upto, afterV, afterPath, maxChangesLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < maxChangesLimit {
			return out, nil
		}
		last := page[len(page)-1]
		afterV, afterPath = last.Version, last.Path
	}
}

// referencedChunk bounds the digests one query of stillReferenced names.
const referencedChunk = 500

// stillReferenced returns those of ds some catalog still has an artifact
// with, a few hundred digests a query.
func (s *stateDB) stillReferenced(ctx context.Context, ds []catalog.Digest) (map[catalog.Digest]bool, error) {
	used := make(map[catalog.Digest]bool)
	for len(ds) > 0 {
		chunk := ds[:min(len(ds), referencedChunk)]
		ds = ds[len(chunk):]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i][:]
		}
		q := `SELECT DISTINCT sha256 FROM artifacts WHERE sha256 IN (?` + strings.Repeat(`, ?`, len(chunk)-1) + `)`
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("directory: blob references: %w", err)
		}
		for rows.Next() {
			var sum []byte
			if err := rows.Scan(&sum); err != nil {
				rows.Close()
				return nil, fmt.Errorf("directory: blob references: %w", err)
			}
			var d catalog.Digest
			copy(d[:], sum)
			used[d] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("directory: blob references: %w", err)
		}
	}
	return used, nil
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
	// Drained by the directory's operator, and why.
	Drained     bool
	DrainReason string
	Labels      []string
	// Settings are the operator's routing choices, stored as JSON.
	Settings httpapi.RelaySettings
}

func (s *stateDB) putRelay(ctx context.Context, r relayRow) error {
	settings, err := json.Marshal(r.Settings)
	if err != nil {
		return fmt.Errorf("directory: save relay %s: %w", r.ID, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO relays (id, public_key, public_url, quota, bandwidth, catalogs, software, enrolled, last_seen, drained, drain_reason, labels, settings)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET public_url = excluded.public_url, quota = excluded.quota, bandwidth = excluded.bandwidth,
			catalogs = excluded.catalogs, software = excluded.software, last_seen = excluded.last_seen,
			drained = excluded.drained, drain_reason = excluded.drain_reason, labels = excluded.labels, settings = excluded.settings`,
		r.ID, r.PublicKey, r.PublicURL, r.Quota, r.Bandwidth, strings.Join(r.Catalogs, ","), r.Software,
		r.Enrolled.UnixNano(), r.LastSeen.UnixNano(), r.Drained, r.DrainReason, strings.Join(r.Labels, ","), string(settings))
	if err != nil {
		return fmt.Errorf("directory: save relay %s: %w", r.ID, err)
	}
	return nil
}

func (s *stateDB) relays(ctx context.Context) ([]relayRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, public_key, public_url, quota, bandwidth, catalogs, software, enrolled, last_seen, drained, drain_reason, labels, settings FROM relays ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("directory: list relays: %w", err)
	}
	defer rows.Close()
	var out []relayRow
	for rows.Next() {
		var r relayRow
		var cats, labels, settings string
		var enrolled, seen int64
		if err := rows.Scan(&r.ID, &r.PublicKey, &r.PublicURL, &r.Quota, &r.Bandwidth, &cats, &r.Software, &enrolled, &seen, &r.Drained, &r.DrainReason, &labels, &settings); err != nil {
			return nil, fmt.Errorf("directory: list relays: %w", err)
		}
		if err := json.Unmarshal([]byte(settings), &r.Settings); err != nil {
			return nil, fmt.Errorf("directory: list relays: %s: settings: %w", r.ID, err)
		}
		if cats != "" {
			r.Catalogs = strings.Split(cats, ",")
		}
		if labels != "" {
			r.Labels = strings.Split(labels, ",")
		}
		r.Enrolled, r.LastSeen = time.Unix(0, enrolled), time.Unix(0, seen)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *stateDB) touchRelay(ctx context.Context, id string, seen time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE relays SET last_seen = ? WHERE id = ?`, seen.UnixNano(), id)
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

// pathsWithDigest lists the paths of catalog id whose bytes are d.
func (s *stateDB) pathsWithDigest(ctx context.Context, id int64, d catalog.Digest) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT path FROM artifacts WHERE catalog = ? AND sha256 = ? ORDER BY path`, id, d[:])
	if err != nil {
		return nil, fmt.Errorf("directory: paths of %s: %w", d, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// expungeRow is an expunge as stored.
type expungeRow struct {
	ID      int64
	Catalog string
	Paths   []string
	Digest  catalog.Digest
	Reason  string
	Created time.Time
	Version uint64
	Acks    map[string]ackRow // relay id → confirmation (At zero: pending)
}

type ackRow struct {
	Detail string
	At     time.Time
}

// expunge withdraws paths (all with digest d) from catalog id in a new
// version, recording the expunge and a pending confirmation per relay in
// the same transaction.
func (s *stateDB) expunge(ctx context.Context, id int64, from uint64, paths []string, d catalog.Digest, reason string, relays []string, now time.Time) (int64, uint64, error) {
	var eid int64
	v, err := s.commitWith(ctx, id, from, nil, paths, nil, catalog.Summary{Removed: len(paths)}, now, func(tx *sql.Tx, v uint64) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO expunges (catalog, sha256, reason, created, version) VALUES (?, ?, ?, ?, ?)`, id, d[:], reason, now.UnixNano(), v)
		if err != nil {
			return err
		}
		if eid, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, p := range paths {
			if _, err := tx.ExecContext(ctx, `INSERT INTO expunged_paths (expunge, path) VALUES (?, ?)`, eid, p); err != nil {
				return err
			}
		}
		for _, r := range relays {
			if _, err := tx.ExecContext(ctx, `INSERT INTO expunge_acks (expunge, relay, detail, at) VALUES (?, ?, '', 0)`, eid, r); err != nil {
				return err
			}
		}
		return nil
	})
	return eid, v, err
}

func (s *stateDB) ackExpunge(ctx context.Context, eid int64, relay, detail string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE expunge_acks SET detail = ?, at = ? WHERE expunge = ? AND relay = ?`, detail, at.UnixNano(), eid, relay)
	if err != nil {
		return fmt.Errorf("directory: record expunge confirmation: %w", err)
	}
	return nil
}

// expunges returns every expunge, oldest first.
func (s *stateDB) expunges(ctx context.Context) ([]*expungeRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.id, c.name, e.sha256, e.reason, e.created, e.version FROM expunges e JOIN catalogs c ON c.id = e.catalog ORDER BY e.id`)
	if err != nil {
		return nil, fmt.Errorf("directory: list expunges: %w", err)
	}
	var out []*expungeRow
	byID := map[int64]*expungeRow{}
	for rows.Next() {
		e := &expungeRow{Acks: map[string]ackRow{}}
		var sum []byte
		var created int64
		if err := rows.Scan(&e.ID, &e.Catalog, &sum, &e.Reason, &created, &e.Version); err != nil {
			rows.Close()
			return nil, err
		}
		copy(e.Digest[:], sum)
		e.Created = time.Unix(0, created)
		out = append(out, e)
		byID[e.ID] = e
	}
	rows.Close()
	prow, err := s.db.QueryContext(ctx, `SELECT expunge, path FROM expunged_paths ORDER BY expunge, path`)
	if err != nil {
		return nil, err
	}
	for prow.Next() {
		var id int64
		var p string
		if err := prow.Scan(&id, &p); err != nil {
			prow.Close()
			return nil, err
		}
		if e := byID[id]; e != nil {
			e.Paths = append(e.Paths, p)
		}
	}
	prow.Close()
	arow, err := s.db.QueryContext(ctx, `SELECT expunge, relay, detail, at FROM expunge_acks`)
	if err != nil {
		return nil, err
	}
	defer arow.Close()
	for arow.Next() {
		var id, at int64
		var relay, detail string
		if err := arow.Scan(&id, &relay, &detail, &at); err != nil {
			return nil, err
		}
		if e := byID[id]; e != nil {
			a := ackRow{Detail: detail}
			if at != 0 {
				a.At = time.Unix(0, at)
			}
			e.Acks[relay] = a
		}
	}
	return out, arow.Err()
}

// shardState returns the current state of the artifacts of catalog id
// whose phash is in [lo, hi), up to version upto, in (phash, path) order,
// after the cursor position (afterHash, afterPath): the listing of a range
// of shards a relay was newly assigned, O(its size).
func (s *stateDB) shardState(ctx context.Context, id int64, upto uint64, lo, hi int64, afterHash int64, afterPath string, limit int) ([]catalog.Change, []int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT path, size, sha256, mtime, version, phash FROM artifacts
		WHERE catalog = ? AND phash >= ? AND phash < ? AND version <= ? AND (phash > ? OR (phash = ? AND path > ?))
		ORDER BY phash, path LIMIT ?`, id, lo, hi, upto, afterHash, afterHash, afterPath, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("directory: shard listing: %w", err)
	}
	defer rows.Close()
	var out []catalog.Change
	var hashes []int64
	for rows.Next() {
		var c catalog.Change
		var sum []byte
		var mtime, h int64
		if err := rows.Scan(&c.Path, &c.Size, &sum, &mtime, &c.Version, &h); err != nil {
			return nil, nil, fmt.Errorf("directory: shard listing: %w", err)
		}
		copy(c.Digest[:], sum)
		c.ModTime = time.Unix(0, mtime)
		out = append(out, c)
		hashes = append(hashes, h)
	}
	return out, hashes, rows.Err()
}

func (s *stateDB) setting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("directory: read setting %s: %w", key, err)
	}
	return v, nil
}

func (s *stateDB) setSetting(ctx context.Context, key string, v []byte) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v); err != nil {
		return fmt.Errorf("directory: save setting %s: %w", key, err)
	}
	return nil
}

func (s *stateDB) setShardBits(ctx context.Context, id int64, bits uint8) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE catalogs SET shard_bits = ? WHERE id = ?`, bits, id); err != nil {
		return fmt.Errorf("directory: record shard count: %w", err)
	}
	return nil
}
