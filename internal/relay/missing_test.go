package relay

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/placement"
)

// The missing set is kept current by many small updates; after any mix of
// them it must say what a full pass over the index says, or a relay would
// report shards complete that are not (and placement would drop their last
// good copy elsewhere), or never become ready.
func TestMissingSetAgreesWithAFullPass(t *testing.T) {
	s := newTestRelay(t, nil)
	rng := rand.New(rand.NewPCG(7, 8))
	digests := make([]catalog.Digest, 40)
	for i := range digests {
		digests[i] = catalog.DigestOf([]byte(fmt.Sprint("blob", i)))
	}
	paths := make([]string, 200)
	for i := range paths {
		paths[i] = fmt.Sprintf("pool/p%d/file-%d.deb", i%17, i)
	}
	names := []string{"demo", "other"}
	holds := placement.RangesOf(4, []uint32{0, 1, 2, 3, 5, 8, 13, 15})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if s.cats[name] == nil {
			s.cats[name] = &catState{entries: map[string]entryRef{}}
		}
	}
	for step := range 5000 {
		name := names[rng.IntN(len(names))]
		c := s.cats[name]
		d := digests[rng.IntN(len(digests))]
		switch op := rng.IntN(10); {
		case op < 4:
			p := paths[rng.IntN(len(paths))]
			s.putEntryLocked(name, c, p, entryRef{digest: d, size: int64(d[0]) + 1, phash: catalog.PathHash(p)})
		case op < 6:
			s.removeEntryLocked(name, c, paths[rng.IntN(len(paths))])
		case op < 9:
			if _, ok := s.blobs[d]; !ok {
				s.blobs[d] = &blobRecord{size: int64(d[0]) + 1}
				s.used += int64(d[0]) + 1
				s.missing.held(d)
			}
		default:
			s.forgetBlobLocked(d)
		}
		if step%97 != 0 {
			continue
		}
		got := snapshotMissing(s, names, holds)
		s.missing.stale = true
		want := snapshotMissing(s, names, holds)
		if got != want {
			t.Fatalf("step %d: kept current:\n%s\nfull pass:\n%s", step, got, want)
		}
	}
}

// snapshotMissing describes the missing set: the blobs to fetch and the
// complete shards of each catalog.
func snapshotMissing(s *Server, names []string, holds placement.Ranges) string {
	s.rebuildMissingLocked()
	var ds []string
	for d := range s.missing.blobs {
		ds = append(ds, d.String()[:8])
	}
	slices.Sort(ds)
	out := fmt.Sprintln("fetch", ds)
	for _, name := range names {
		out += fmt.Sprintln(name, "complete", s.completeLocked(name, holds).Shards())
	}
	// Every blob listed is needed by a path and not held.
	for d := range maps.Keys(s.missing.blobs) {
		if _, held := s.blobs[d]; held || s.refs[d] == 0 {
			out += fmt.Sprintln("wrongly missing", d)
		}
	}
	return out
}
