package tufrepo

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/parallel"
)

// txn accumulates one commit. Files are written as it goes, under names no
// current metadata refers to, so nothing changes for a client until
// timestamp.json is replaced at the very end; r's in-memory state changes
// only after that. A failed txn leaves unreferenced files behind, which the
// next txn overwrites (same versions) or Prune removes.
type txn struct {
	r   *Repository
	now time.Time
	c   Commit

	root       *metadata.Metadata[metadata.RootType]    // new root, already written
	targets    *metadata.Metadata[metadata.TargetsType] // new targets, already written
	targetsLen int64

	mu   sync.Mutex // guards bins during parallel signing
	bins map[string]binUpdate

	forceSnapshot  bool
	forceTimestamp bool

	// unsynced names the files written without an fsync, which finish
	// makes durable together before it writes the timestamp.
	unsynced []string

	// ready, when set, must succeed before finish writes the timestamp
	// (see ApplyWhen).
	ready func() error
}

type binUpdate struct {
	state  binState
	length int64
}

// binJob produces the complete new contents of one or more bins, by name.
type binJob func() (map[string]binOut, error)

// binOut is a bin's new contents: its targets, or merge, which returns its
// canonical "signed" part at a version and expiry, and its target count.
type binOut struct {
	targets map[string]*metadata.TargetFiles
	merge   func(version int64, expires time.Time) ([]byte, int)
}

// targetsOut wraps bins given by their targets.
func targetsOut(bins map[string]map[string]*metadata.TargetFiles) map[string]binOut {
	out := make(map[string]binOut, len(bins))
	for name, ts := range bins {
		out[name] = binOut{targets: ts}
	}
	return out
}

func (r *Repository) begin(now time.Time) *txn {
	return &txn{r: r, now: now, bins: map[string]binUpdate{}}
}

func (t *txn) curRoot() *metadata.Metadata[metadata.RootType] {
	if t.root != nil {
		return t.root
	}
	return t.r.root
}

func (t *txn) curTargets() *metadata.Metadata[metadata.TargetsType] {
	if t.targets != nil {
		return t.targets
	}
	return t.r.targets
}

// writeRoot publishes the next root version. data must be root's signed
// encoding as verified by the caller.
func (t *txn) writeRoot(root *metadata.Metadata[metadata.RootType], data []byte) error {
	name := metaFileName(metadata.ROOT, root.Signed.Version)
	if err := writeAtomic(t.r.dir, name, data); err != nil {
		return err
	}
	t.root = root
	t.c.Written = append(t.c.Written, name)
	return nil
}

// writeTargets publishes a new top-level targets version (signed).
func (t *txn) writeTargets(targets *metadata.Metadata[metadata.TargetsType], data []byte) error {
	name := metaFileName(metadata.TARGETS, targets.Signed.Version)
	if err := writeAtomic(t.r.dir, name, data); err != nil {
		return err
	}
	t.targets, t.targetsLen = targets, int64(len(data))
	t.c.Written = append(t.c.Written, name)
	return nil
}

// nextVersion is one more than the version the current snapshot lists for
// a role (bins included), or 1.
func (t *txn) nextVersion(role string) int64 {
	if t.r.snapshot != nil {
		if mf, ok := t.r.snapshot.Signed.Meta[role+".json"]; ok {
			return mf.Version + 1
		}
	}
	return 1
}

// signBins runs jobs in parallel, signing and writing every bin they
// produce with the online bins key.
func (t *txn) signBins(jobs []binJob) error {
	key, err := t.r.binKey(t.curTargets())
	if err != nil {
		return err
	}
	keys := []*PrivateKey{key}
	expires := expiresAt(t.now, t.r.opts.Expiry.Bins)
	err = parallel.Do(len(jobs), t.r.opts.Workers, func(i int) error {
		out, err := jobs[i]()
		if err != nil {
			return err
		}
		for name, bin := range out {
			v := t.nextVersion(name)
			targets, count := bin.targets, len(bin.targets)
			var data []byte
			switch {
			case bin.merge != nil:
				var signed []byte
				signed, count = bin.merge(v, expires)
				data, _ = encodeSigned(keys, signed)
			case binSafe(targets):
				data = encodeBin(keys[0], v, expires, targets)
			default:
				m := metadata.Targets(expires)
				m.Signed.Version = v
				m.Signed.Targets = targets
				var err error
				if data, err = signedFile(m, keys, name); err != nil {
					return err
				}
			}
			if err := writeUnreferenced(t.r.dir, metaFileName(name, v), data); err != nil {
				return err
			}
			t.mu.Lock()
			t.bins[name] = binUpdate{state: binState{Version: v, Expires: expires, Count: count}, length: int64(len(data))}
			t.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The bins are made durable by finish, with the snapshot and the state
	// file, before the timestamp naming them is written.
	for name, b := range t.bins {
		t.unsynced = append(t.unsynced, metaFileName(name, b.state.Version))
	}
	return nil
}

// finish writes snapshot, state and timestamp as needed and installs the
// new state in r.
func (t *txn) finish() (*Commit, error) {
	r := t.r
	root := t.curRoot()
	binNames := slices.Sorted(maps.Keys(t.bins))
	for _, name := range binNames {
		t.c.Written = append(t.c.Written, metaFileName(name, t.bins[name].state.Version))
	}
	t.c.Bins = binNames

	snapshot, timestamp := r.snapshot, r.timestamp
	if (t.targets != nil && snapshot != nil) || len(t.bins) > 0 || t.forceSnapshot {
		keys, err := r.roleKeys(root, metadata.SNAPSHOT)
		if err != nil {
			return nil, err
		}
		s := metadata.Snapshot(expiresAt(t.now, r.opts.Expiry.Snapshot))
		s.Signed.Meta = map[string]*metadata.MetaFiles{}
		if snapshot != nil {
			s.Signed.Version = snapshot.Signed.Version + 1
			// Every role the old snapshot listed stays listed: TUF clients
			// reject a snapshot that drops one (even a bin left over from a
			// previous bin count).
			for k, v := range snapshot.Signed.Meta {
				s.Signed.Meta[k] = v
			}
		}
		if t.targets != nil {
			s.Signed.Meta["targets.json"] = &metadata.MetaFiles{Version: t.targets.Signed.Version, Length: t.targetsLen}
		} else if _, ok := s.Signed.Meta["targets.json"]; !ok {
			// First snapshot of a repository initialized offline.
			data, err := os.ReadFile(filepath.Join(r.dir, metaFileName(metadata.TARGETS, r.targets.Signed.Version)))
			if err != nil {
				return nil, err
			}
			s.Signed.Meta["targets.json"] = &metadata.MetaFiles{Version: r.targets.Signed.Version, Length: int64(len(data))}
		}
		for name, b := range t.bins {
			s.Signed.Meta[name+".json"] = &metadata.MetaFiles{Version: b.state.Version, Length: b.length}
		}
		data, err := encodeSnapshot(s, keys)
		if err != nil {
			return nil, err
		}
		name := metaFileName(metadata.SNAPSHOT, s.Signed.Version)
		if err := writeUnreferenced(r.dir, name, data); err != nil {
			return nil, err
		}
		t.unsynced = append(t.unsynced, name)
		t.c.Written = append(t.c.Written, name)
		snapshot = s
		sum := sha256.Sum256(data)
		timestamp, err = t.signTimestamp(root, snapshot.Signed.Version, int64(len(data)), sum[:])
		if err != nil {
			return nil, err
		}
	} else if t.forceTimestamp {
		old := timestamp.Signed.Meta["snapshot.json"]
		var err error
		timestamp, err = t.signTimestamp(root, old.Version, old.Length, old.Hashes["sha256"])
		if err != nil {
			return nil, err
		}
	}

	// Install the new state, then record it. The state file goes before
	// timestamp.json so a crash in between leaves it describing bins the
	// live snapshot does not list yet, which loadBinStates detects by
	// version and repairs.
	bins := r.bins
	if t.targets != nil && t.targets.Signed.Delegations.SuccinctRoles.BitLength != r.bits() {
		bins = map[string]binState{}
	} else {
		bins = maps.Clone(bins)
	}
	for name, b := range t.bins {
		bins[name] = b.state
	}
	oldBins := r.bins
	r.bins = bins
	if err := r.writeStateFile(false); err != nil {
		r.bins = oldBins
		return nil, err
	}
	// Bins, snapshot, state file and their renames reach the disk
	// together, before the timestamp that makes them current.
	if err := syncFiles(r.dir, append(t.unsynced, stateFile)); err != nil {
		r.bins = oldBins
		return nil, err
	}
	if t.ready != nil {
		if err := t.ready(); err != nil {
			r.bins = oldBins
			return nil, err
		}
	}
	if timestamp != r.timestamp {
		if err := syncDir(r.dir); err != nil {
			r.bins = oldBins
			return nil, err
		}
		data, err := timestamp.ToBytes(false)
		if err != nil {
			r.bins = oldBins
			return nil, fmt.Errorf("tufrepo: encode timestamp: %w", err)
		}
		if err := writeAtomic(r.dir, TimestampFile, data); err != nil {
			r.bins = oldBins
			return nil, err
		}
		t.c.Written = append(t.c.Written, TimestampFile)
	}
	r.root, r.targets, r.snapshot, r.timestamp = root, t.curTargets(), snapshot, timestamp
	t.c.Root, t.c.Targets = r.root.Signed.Version, r.targets.Signed.Version
	if r.snapshot != nil {
		t.c.Snapshot, t.c.Timestamp = r.snapshot.Signed.Version, r.timestamp.Signed.Version
	}
	return &t.c, nil
}

// encodeSnapshot signs snapshot s with keys and returns its file: directly
// in canonical form when it holds only what ODI writes, else through
// go-tuf.
func encodeSnapshot(s *metadata.Metadata[metadata.SnapshotType], keys []*PrivateKey) ([]byte, error) {
	if len(s.Signed.UnrecognizedFields) == 0 && len(s.UnrecognizedFields) == 0 && snapshotSafe(s.Signed.Meta) {
		data, sigs := encodeSigned(keys, encodeSnapshotSigned(s.Signed.Version, s.Signed.Expires, s.Signed.Meta))
		s.Signatures = sigs
		return data, nil
	}
	return signedFile(s, keys, "snapshot")
}

func (t *txn) signTimestamp(root *metadata.Metadata[metadata.RootType], snapVersion, snapLen int64, snapHash []byte) (*metadata.Metadata[metadata.TimestampType], error) {
	keys, err := t.r.roleKeys(root, metadata.TIMESTAMP)
	if err != nil {
		return nil, err
	}
	ts := metadata.Timestamp(expiresAt(t.now, t.r.opts.Expiry.Timestamp))
	if t.r.timestamp != nil {
		ts.Signed.Version = t.r.timestamp.Signed.Version + 1
	}
	// Length and hash of the snapshot let clients refuse a substituted or
	// endless snapshot before parsing it.
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": {
		Version: snapVersion,
		Length:  snapLen,
		Hashes:  metadata.Hashes{"sha256": snapHash},
	}}
	if err := sign(ts, keys); err != nil {
		return nil, err
	}
	return ts, nil
}
