package directory

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/sqlitedb"
)

// A commit writes its rows many to a statement; counts on either side of
// the batch size must all land, once, with the right version.
func TestCommitOfManyChangesKeepsEveryRow(t *testing.T) {
	ctx := context.Background()
	db, err := openState(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Unix(1_800_000_000, 0)
	row, err := db.ensureCatalog(ctx, "c", now)
	if err != nil {
		t.Fatal(err)
	}
	art := func(i, gen int) catalog.Artifact {
		return catalog.Artifact{Path: fmt.Sprintf("p/%04d", i), Size: int64(i + gen), Digest: catalog.DigestOf([]byte(fmt.Sprint(i, gen))), ModTime: now}
	}
	n := 2*sqlitedb.RowsPerStatement + 37
	var puts []catalog.Artifact
	for i := range n {
		puts = append(puts, art(i, 0))
	}
	v1, err := db.commit(ctx, row.ID, row.Version, puts, nil, nil, catalog.Summary{Added: n}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The second version changes the first sqlitedb.RowsPerStatement+1 paths,
	// deletes the next sqlitedb.RowsPerStatement+3 and queues as many blobs.
	var changed []catalog.Artifact
	var deleted []string
	var unused []catalog.Digest
	for i := range sqlitedb.RowsPerStatement + 1 {
		changed = append(changed, art(i, 1))
	}
	for i := sqlitedb.RowsPerStatement + 1; i < 2*sqlitedb.RowsPerStatement+4; i++ {
		deleted = append(deleted, art(i, 0).Path)
		unused = append(unused, art(i, 0).Digest)
	}
	v2, err := db.commit(ctx, row.ID, v1, changed, deleted, nil, catalog.Summary{Changed: len(changed), Removed: len(deleted)}, now, unused)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]catalog.Artifact{}
	if err := db.loadArtifacts(ctx, row.ID, func(a catalog.Artifact) { got[a.Path] = a }); err != nil {
		t.Fatal(err)
	}
	if want := n - len(deleted); len(got) != want {
		t.Fatalf("%d artifacts after the second version, want %d", len(got), want)
	}
	for i, a := range changed {
		if g := got[a.Path]; g.Digest != a.Digest || g.Size != a.Size {
			t.Fatalf("changed artifact %d: %+v, want %+v", i, g, a)
		}
	}
	chs, err := db.changes(ctx, row.ID, v1, v2, v1, "", 10*n)
	if err != nil {
		t.Fatal(err)
	}
	var dels int
	for _, c := range chs {
		if c.Deleted {
			dels++
		}
	}
	if len(chs) != len(changed)+len(deleted) || dels != len(deleted) {
		t.Fatalf("change log of version %d: %d changes, %d deletions; want %d and %d", v2, len(chs), dels, len(changed)+len(deleted), len(deleted))
	}
	q, err := db.unused(ctx)
	if err != nil || len(q) != len(unused) {
		t.Fatalf("%d blobs queued (%v), want %d", len(q), err, len(unused))
	}
}
