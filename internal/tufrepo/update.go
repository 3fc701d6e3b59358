package tufrepo

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrBadArtifact reports an artifact or change that cannot be signed. Bad
// paths also match catalog.ErrBadPath.
var ErrBadArtifact = errors.New("tufrepo: bad artifact")

// InitOptions describe a new repository's keys.
type InitOptions struct {
	// Offline roles: keys and how many of them must sign.
	RootKeys         []PublicKey
	RootThreshold    int
	TargetsKeys      []PublicKey
	TargetsThreshold int
	// Online roles, one key each, held by the home directory.
	SnapshotKey, TimestampKey, BinsKey PublicKey
	// ExpectedArtifacts picks the bin count (see BinBits).
	ExpectedArtifacts int
}

func (o *InitOptions) validate() error {
	check := func(role string, keys []PublicKey, threshold int) error {
		if len(keys) == 0 {
			return fmt.Errorf("tufrepo: init: no %s keys", role)
		}
		if threshold < 1 || threshold > len(keys) {
			return fmt.Errorf("tufrepo: init: %s threshold %d out of 1..%d", role, threshold, len(keys))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if k.IsZero() {
				return fmt.Errorf("tufrepo: init: zero %s key", role)
			}
			if seen[k.ID()] {
				return fmt.Errorf("tufrepo: init: %s key %s listed twice", role, k)
			}
			seen[k.ID()] = true
		}
		return nil
	}
	if err := check(metadata.ROOT, o.RootKeys, o.RootThreshold); err != nil {
		return err
	}
	if err := check(metadata.TARGETS, o.TargetsKeys, o.TargetsThreshold); err != nil {
		return err
	}
	online := map[string]bool{}
	for role, k := range map[string]PublicKey{"snapshot": o.SnapshotKey, "timestamp": o.TimestampKey, "bins": o.BinsKey} {
		if k.IsZero() {
			return fmt.Errorf("tufrepo: init: no %s key", role)
		}
		online[k.ID()] = true
	}
	// An offline key doing an online job would sit on the directory's disk,
	// which is exactly what keeping it offline is meant to prevent.
	for _, k := range append(slices.Clone(o.RootKeys), o.TargetsKeys...) {
		if online[k.ID()] {
			return fmt.Errorf("tufrepo: init: key %s is both offline (root/targets) and online", k)
		}
	}
	return nil
}

// Init creates a repository in dir, which must not hold one: root version
// 1 and targets version 1 (signed by thresholds of opts.Signers), and, if
// the online keys are among opts.Signers, every (empty) bin, the snapshot
// and the timestamp. Without online keys (an offline ceremony), the folder
// holds root and targets only, and the directory completes it with its
// first Apply, Build or Renew.
func Init(dir string, in InitOptions, opts Options, now time.Time) (*Repository, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tufrepo: init: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaFileName(metadata.ROOT, 1))); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, dir)
	}
	r := newRepository(dir, opts)
	exp := r.opts.Expiry

	root := metadata.Root(expiresAt(now, exp.Root))
	root.Signed.ConsistentSnapshot = true
	add := func(role string, keys []PublicKey, threshold int) {
		for _, k := range keys {
			root.Signed.AddKey(k.tufKey(), role) // cannot fail: role exists
		}
		root.Signed.Roles[role].Threshold = threshold
	}
	add(metadata.ROOT, in.RootKeys, in.RootThreshold)
	add(metadata.TARGETS, in.TargetsKeys, in.TargetsThreshold)
	add(metadata.SNAPSHOT, []PublicKey{in.SnapshotKey}, 1)
	add(metadata.TIMESTAMP, []PublicKey{in.TimestampKey}, 1)
	rootKeys, err := r.roleKeys(root, metadata.ROOT)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: init: %w", err)
	}
	targetsKeys, err := r.roleKeys(root, metadata.TARGETS)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: init: %w", err)
	}

	targets := metadata.Targets(expiresAt(now, exp.Targets))
	targets.Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{in.BinsKey.ID(): in.BinsKey.tufKey()},
		SuccinctRoles: &metadata.SuccinctRoles{
			KeyIDs:     []string{in.BinsKey.ID()},
			Threshold:  1,
			BitLength:  BinBits(in.ExpectedArtifacts),
			NamePrefix: BinPrefix,
		},
	}
	for _, f := range []func() error{
		func() error { return signAndWrite(dir, root, rootKeys, metaFileName(metadata.ROOT, 1)) },
		func() error { return signAndWrite(dir, targets, targetsKeys, metaFileName(metadata.TARGETS, 1)) },
	} {
		if err := f(); err != nil {
			return nil, err
		}
	}
	r.root, r.targets = root, targets

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.canSignOnline() {
		if _, err := r.applyLocked(nil, now, nil); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func signAndWrite[T metadata.Roles](dir string, m *metadata.Metadata[T], keys []*PrivateKey, name string) error {
	data, err := signedFile(m, keys, name)
	if err != nil {
		return err
	}
	return writeAtomic(dir, name, data)
}

// signedFile signs m with keys and returns its file as go-tuf encodes it;
// what names it in errors.
func signedFile[T metadata.Roles](m *metadata.Metadata[T], keys []*PrivateKey, what string) ([]byte, error) {
	if err := sign(m, keys); err != nil {
		return nil, err
	}
	data, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: encode %s: %w", what, err)
	}
	return data, nil
}

// canSignOnline reports whether we hold the snapshot, timestamp and bins keys.
func (r *Repository) canSignOnline() bool {
	_, err := r.binKey(r.targets)
	return err == nil && r.canSign(r.root.Signed.Roles[metadata.SNAPSHOT]) && r.canSign(r.root.Signed.Roles[metadata.TIMESTAMP])
}

func validateChange(ch *catalog.Change) error {
	if err := catalog.ValidatePath(ch.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrBadArtifact, err)
	}
	if ch.Deleted {
		return nil
	}
	if ch.Size < 0 {
		return fmt.Errorf("%w: %s: negative size", ErrBadArtifact, ch.Path)
	}
	if ch.Digest.IsZero() {
		return fmt.Errorf("%w: %s: no digest", ErrBadArtifact, ch.Path)
	}
	return nil
}

func targetFile(size int64, d catalog.Digest) *metadata.TargetFiles {
	return &metadata.TargetFiles{Length: size, Hashes: hashesOf(d)}
}

// Apply signs one catalog version's changes: it re-signs the bins holding
// the changed paths, then snapshot and timestamp. Later changes to a path
// in the slice win. Cost is O(len(changes) × bin size) plus one snapshot
// (O(bins)). It needs the online keys only; if the catalog has outgrown
// its bins and the targets keys are loaded, it also re-bins.
func (r *Repository) Apply(changes []catalog.Change, now time.Time) (*Commit, error) {
	return r.ApplyWhen(changes, now, nil)
}

// ApplyWhen is Apply, publishing only if ready succeeds: it is called once
// the new bins and snapshot are on disk, before the timestamp that makes
// them current is written. A caller recording the same version elsewhere
// (the directory's database) signs while it commits, and makes relays
// wait for neither. If ready fails, clients see nothing new and ApplyWhen
// returns its error; the files written stay unreferenced until a later
// commit overwrites them or Prune removes them. ready is called at most
// once, and not at all when signing fails first.
func (r *Repository) ApplyWhen(changes []catalog.Change, now time.Time, ready func() error) (*Commit, error) {
	for i := range changes {
		if err := validateChange(&changes[i]); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.applyLocked(changes, now, ready)
	if err != nil {
		return nil, err
	}
	if n := r.artifactCount(); r.needsRebin(n) && r.canSign(r.root.Signed.Roles[metadata.TARGETS]) {
		c2, err := r.rebinLocked(BinBits(n), nil, now)
		if err != nil {
			return nil, fmt.Errorf("tufrepo: re-bin after apply: %w", err)
		}
		c = mergeCommits(c, c2)
	}
	return c, nil
}

func mergeCommits(a, b *Commit) *Commit {
	c := *b
	c.Written = append(slices.Clone(a.Written), b.Written...)
	c.Bins = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a.Bins), b.Bins...))))
	return &c
}

func (r *Repository) artifactCount() int {
	n := 0
	for _, b := range r.bins {
		n += b.Count
	}
	return n
}

func (r *Repository) applyLocked(changes []catalog.Change, now time.Time, ready func() error) (*Commit, error) {
	if len(changes) == 0 && r.snapshot != nil {
		if ready != nil {
			if err := ready(); err != nil {
				return nil, err
			}
		}
		return r.versions(), nil
	}
	bits := r.bits()
	byBin := map[string][]*catalog.Change{}
	if r.snapshot == nil {
		// First online signing: every bin must exist for clients to learn
		// that a path is absent.
		for _, name := range r.binNames() {
			byBin[name] = nil
		}
	}
	for i := range changes {
		name := BinFor(changes[i].Path, bits)
		byBin[name] = append(byBin[name], &changes[i])
	}
	t := r.begin(now)
	t.ready = ready
	jobs := make([]binJob, 0, len(byBin))
	for name, chs := range byBin {
		jobs = append(jobs, func() (map[string]binOut, error) {
			if data, ok := r.currentBinFile(name); ok {
				es, v, ok := parseBinEntries(data)
				sorted, safe := sortedChanges(chs)
				if ok && safe && v == r.snapshot.Signed.Meta[name+".json"].Version {
					return map[string]binOut{name: {merge: func(version int64, expires time.Time) ([]byte, int) {
						return mergeBinSigned(es, sorted, version, expires)
					}}}, nil
				}
			}
			targets, err := r.binTargets(name)
			if err != nil {
				return nil, err
			}
			for _, ch := range chs {
				if ch.Deleted {
					delete(targets, ch.Path)
				} else {
					targets[ch.Path] = targetFile(ch.Size, ch.Digest)
				}
			}
			return map[string]binOut{name: {targets: targets}}, nil
		})
	}
	if err := t.signBins(jobs); err != nil {
		return nil, err
	}
	return t.finish()
}

// versions reports the current versions as an empty Commit.
func (r *Repository) versions() *Commit {
	c := &Commit{Root: r.root.Signed.Version, Targets: r.targets.Signed.Version}
	if r.snapshot != nil {
		c.Snapshot, c.Timestamp = r.snapshot.Signed.Version, r.timestamp.Signed.Version
	}
	return c
}

// binTargets returns the current contents of a bin, empty if the snapshot
// does not list it yet.
func (r *Repository) binTargets(name string) (map[string]*metadata.TargetFiles, error) {
	if r.snapshot == nil {
		return map[string]*metadata.TargetFiles{}, nil
	}
	if _, ok := r.snapshot.Signed.Meta[name+".json"]; !ok {
		return map[string]*metadata.TargetFiles{}, nil
	}
	if data, ok := r.currentBinFile(name); ok {
		if ts, v, ok := parseBinTargets(data); ok && v == r.snapshot.Signed.Meta[name+".json"].Version {
			return ts, nil
		}
	}
	m, err := r.readBin(name)
	if err != nil {
		return nil, err
	}
	return m.Signed.Targets, nil
}

// currentBinFile reads the file of the version of bin name the current
// snapshot lists.
func (r *Repository) currentBinFile(name string) ([]byte, bool) {
	if r.snapshot == nil {
		return nil, false
	}
	mf, ok := r.snapshot.Signed.Meta[name+".json"]
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(r.dir, metaFileName(name, mf.Version)))
	return data, err == nil
}

// entry is an artifact as Build holds it: about 64 bytes plus the path.
type entry struct {
	path   string
	size   int64
	digest catalog.Digest
	hash   uint32 // leading bits of SHA-256(path), which pick the bin
}

// SliceSource adapts a slice to Build's iterator.
func SliceSource(as []catalog.Artifact) iter.Seq2[catalog.Artifact, error] {
	return func(yield func(catalog.Artifact, error) bool) {
		for _, a := range as {
			if !yield(a, nil) {
				return
			}
		}
	}
}

// Build signs a whole catalog from scratch: every bin gets a new version
// holding exactly the artifacts given, then snapshot and timestamp. It
// holds about 64 bytes plus the path per artifact while grouping them by
// bin, and signs bins in parallel. If the targets keys are loaded and the
// catalog size calls for a bin count off by a factor of 4 or more, it
// re-bins (re-signing targets). The source is read before the repository
// is locked, so a slow database scan does not block Renew.
func (r *Repository) Build(ctx context.Context, artifacts iter.Seq2[catalog.Artifact, error], now time.Time) (*Commit, error) {
	var es []entry
	for a, err := range artifacts {
		if err != nil {
			return nil, fmt.Errorf("tufrepo: build: %w", err)
		}
		if len(es)%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("tufrepo: build: %w", err)
			}
		}
		ch := catalog.Change{Path: a.Path, Size: a.Size, Digest: a.Digest}
		if err := validateChange(&ch); err != nil {
			return nil, err
		}
		h := sha256.Sum256([]byte(a.Path))
		es = append(es, entry{path: a.Path, size: a.Size, digest: a.Digest, hash: binary.BigEndian.Uint32(h[:4])})
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.path, b.path)
	})
	for i := 1; i < len(es); i++ {
		if es[i].path == es[i-1].path {
			return nil, fmt.Errorf("%w: %s listed twice", ErrBadArtifact, es[i].path)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tufrepo: build: %w", err)
	}
	bits := r.bits()
	if want := BinBits(len(es)); r.canSign(r.root.Signed.Roles[metadata.TARGETS]) &&
		(want >= bits+rebinFactorBits || want <= bits-rebinFactorBits) {
		return r.rebinLocked(want, func(bits int) []binJob { return entryJobs(es, bits) }, now)
	}
	t := r.begin(now)
	if err := t.signBins(entryJobs(es, bits)); err != nil {
		return nil, err
	}
	return t.finish()
}

// entryJobs splits es (sorted by hash) into one job per bin of 2^bits.
func entryJobs(es []entry, bits int) []binJob {
	n := 1 << bits
	jobs := make([]binJob, n)
	lo := 0
	for i := range n {
		hi := lo
		for hi < len(es) && es[hi].hash>>(32-bits) == uint32(i) {
			hi++
		}
		part := es[lo:hi]
		name := binName(uint32(i), bits)
		jobs[i] = func() (map[string]binOut, error) {
			targets := make(map[string]*metadata.TargetFiles, len(part))
			for _, e := range part {
				targets[e.path] = targetFile(e.size, e.digest)
			}
			return map[string]binOut{name: {targets: targets}}, nil
		}
		lo = hi
	}
	return jobs
}

// Renew re-signs whatever will expire soon: each role once less than half
// of its validity period remains. Online roles always; root and targets
// only when their offline keys are loaded (the demo). At most
// Options.MaxRenewBins bins are re-signed per call, soonest-expiring
// first. The directory calls it on a timer (every few minutes is plenty
// for the default one-day timestamp); it writes nothing when nothing is due.
func (r *Repository) Renew(now time.Time) (*Commit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp := r.opts.Expiry
	if r.snapshot == nil {
		// Initialized offline; complete it now that we run with online keys.
		return r.applyLocked(nil, now, nil)
	}
	t := r.begin(now)
	if due(r.root.Signed.Expires, now, exp.Root) && r.canSign(r.root.Signed.Roles[metadata.ROOT]) {
		root, err := copyMeta(r.root)
		if err != nil {
			return nil, err
		}
		root.Signed.Version++
		root.Signed.Expires = expiresAt(now, exp.Root)
		if err := r.publishRootLocked(t, root, nil); err != nil {
			return nil, err
		}
	}
	if due(r.targets.Signed.Expires, now, exp.Targets) && r.canSign(r.root.Signed.Roles[metadata.TARGETS]) {
		targets, err := copyMeta(r.targets)
		if err != nil {
			return nil, err
		}
		targets.Signed.Version++
		targets.Signed.Expires = expiresAt(now, exp.Targets)
		keys, err := r.roleKeys(t.curRoot(), metadata.TARGETS)
		if err != nil {
			return nil, err
		}
		data, err := signedFile(targets, keys, "targets")
		if err != nil {
			return nil, err
		}
		if err := t.writeTargets(targets, data); err != nil {
			return nil, err
		}
	}
	var dueBins []string
	for name, b := range r.bins {
		if due(b.Expires, now, exp.Bins) {
			dueBins = append(dueBins, name)
		}
	}
	slices.SortFunc(dueBins, func(a, b string) int {
		if c := r.bins[a].Expires.Compare(r.bins[b].Expires); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(dueBins) > r.opts.MaxRenewBins {
		dueBins = dueBins[:r.opts.MaxRenewBins]
	}
	jobs := make([]binJob, len(dueBins))
	for i, name := range dueBins {
		jobs[i] = func() (map[string]binOut, error) {
			targets, err := r.binTargets(name)
			return map[string]binOut{name: {targets: targets}}, err
		}
	}
	if err := t.signBins(jobs); err != nil {
		return nil, err
	}
	t.forceSnapshot = due(r.snapshot.Signed.Expires, now, exp.Snapshot)
	t.forceTimestamp = due(r.timestamp.Signed.Expires, now, exp.Timestamp)
	return t.finish()
}

// copyMeta deep-copies metadata through its encoding.
func copyMeta[T metadata.Roles](m *metadata.Metadata[T]) (*metadata.Metadata[T], error) {
	data, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: copy metadata: %w", err)
	}
	return (&metadata.Metadata[T]{}).FromBytes(data)
}

// Rebin changes the number of bins to 2^bits, re-signing targets (needs
// the targets keys) and every bin. Bins are split or merged one group at a
// time, so memory stays O(bin size × workers), not O(catalog).
func (r *Repository) Rebin(bits int, now time.Time) (*Commit, error) {
	if bits < 1 || bits > MaxBinBits {
		return nil, fmt.Errorf("tufrepo: rebin: bit length %d out of 1..%d", bits, MaxBinBits)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rebinLocked(bits, nil, now)
}

// rebinLocked re-signs targets with a bit length of bits and fills the new
// bins with fill's jobs if given, else from the current bins.
func (r *Repository) rebinLocked(bits int, fill func(bits int) []binJob, now time.Time) (*Commit, error) {
	keys, err := r.roleKeys(r.root, metadata.TARGETS)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: rebin: %w", err)
	}
	targets, err := copyMeta(r.targets)
	if err != nil {
		return nil, err
	}
	targets.Signed.Version++
	targets.Signed.Expires = expiresAt(now, r.opts.Expiry.Targets)
	targets.Signed.Delegations.SuccinctRoles.BitLength = bits
	data, err := signedFile(targets, keys, "targets")
	if err != nil {
		return nil, err
	}
	t := r.begin(now)
	if err := t.writeTargets(targets, data); err != nil {
		return nil, err
	}
	var jobs []binJob
	if fill != nil {
		jobs = fill(bits)
	} else {
		jobs = r.regroupJobs(r.bits(), bits)
	}
	if err := t.signBins(jobs); err != nil {
		return nil, err
	}
	return t.finish()
}

// regroupJobs moves the current bins' targets into 2^to bins. Because a
// bin is a prefix of the path hash, each job reads a group of old bins and
// writes a group of new ones that together cover the same prefix range.
func (r *Repository) regroupJobs(from, to int) []binJob {
	oldPer, newPer := 1, 1
	if from > to {
		oldPer = 1 << (from - to)
	} else {
		newPer = 1 << (to - from)
	}
	groups := (1 << from) / oldPer
	jobs := make([]binJob, groups)
	for g := range groups {
		jobs[g] = func() (map[string]binOut, error) {
			out := make(map[string]map[string]*metadata.TargetFiles, newPer)
			first := uint32(g * newPer)
			for j := range newPer {
				out[binName(first+uint32(j), to)] = map[string]*metadata.TargetFiles{}
			}
			for i := range oldPer {
				old, err := r.binTargets(binName(uint32(g*oldPer+i), from))
				if err != nil {
					return nil, err
				}
				for p, tf := range old {
					out[BinFor(p, to)][p] = tf
				}
			}
			return targetsOut(out), nil
		}
	}
	return jobs
}
