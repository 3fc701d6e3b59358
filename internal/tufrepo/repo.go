package tufrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Errors callers test for.
var (
	// ErrMissingKey: the operation needs a key (or a threshold of keys)
	// this Repository was not given. In production the directory holds only
	// the online keys, so anything needing root or targets keys fails so.
	ErrMissingKey = errors.New("tufrepo: signing key not available")
	// ErrNotInitialized: the folder holds no repository.
	ErrNotInitialized = errors.New("tufrepo: no repository in folder")
	// ErrExists: Init found a repository already there.
	ErrExists = errors.New("tufrepo: repository already exists")
	// ErrCorruptRepository: the folder's files contradict each other.
	ErrCorruptRepository = errors.New("tufrepo: corrupt repository")
)

// Expiry sets how long each role's signature is valid. Renew re-signs a
// role once less than half of its period remains.
type Expiry struct {
	Root      time.Duration
	Targets   time.Duration
	Snapshot  time.Duration
	Timestamp time.Duration
	Bins      time.Duration
}

// DefaultExpiry is the schedule described in the package comment.
func DefaultExpiry() Expiry {
	const day = 24 * time.Hour
	return Expiry{
		Root:      365 * day,
		Targets:   365 * day,
		Snapshot:  7 * day,
		Timestamp: day,
		Bins:      30 * day,
	}
}

func (e Expiry) withDefaults() Expiry {
	d := DefaultExpiry()
	for _, p := range []struct{ v, def *time.Duration }{
		{&e.Root, &d.Root}, {&e.Targets, &d.Targets}, {&e.Snapshot, &d.Snapshot},
		{&e.Timestamp, &d.Timestamp}, {&e.Bins, &d.Bins},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return e
}

// Options configure a Repository.
type Options struct {
	// Signers are the private keys this process may sign with. Roles are
	// matched to keys by key ID, so passing extra keys is harmless.
	Signers []*PrivateKey
	// Expiry defaults to DefaultExpiry; zero fields take the default.
	Expiry Expiry
	// MaxRenewBins caps the bins one Renew call re-signs (default 256), so
	// bins signed together by a Build are renewed over several timer ticks
	// instead of invalidating every relay's cached bins at once.
	MaxRenewBins int
	// Workers is the signing parallelism (default four per processor:
	// each bin is written to its file as soon as it is signed, and file
	// creation waits on the file system more than on the processor).
	Workers int
}

// Repository is the signing side of one catalog's TUF repository, stored
// as static files in one folder. Its methods are safe for concurrent use;
// they are serialized.
type Repository struct {
	dir  string
	opts Options

	mu sync.Mutex // serializes operations and guards the fields below
	// signers maps key ID to every key we hold.
	signers   map[string]*PrivateKey
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType] // nil until the online roles are first signed
	timestamp *metadata.Metadata[metadata.TimestampType]
	// bins describes the current bins (those of the current bit length)
	// as last signed; nil entries are bins never signed.
	bins map[string]binState
}

// binState is what we remember about a signed bin without reading it.
type binState struct {
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Count   int       `json:"count"`
}

// Commit reports what an operation wrote.
type Commit struct {
	// Written lists the files written, in order; timestamp.json, when
	// present, is last.
	Written []string
	// Bins lists the bins re-signed.
	Bins []string
	// Versions after the operation.
	Root, Targets, Snapshot, Timestamp int64
}

// Empty reports whether nothing was written.
func (c *Commit) Empty() bool { return c == nil || len(c.Written) == 0 }

func (o Options) withDefaults() Options {
	o.Expiry = o.Expiry.withDefaults()
	if o.MaxRenewBins <= 0 {
		o.MaxRenewBins = 256
	}
	if o.Workers <= 0 {
		o.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	return o
}

func newRepository(dir string, opts Options) *Repository {
	opts = opts.withDefaults()
	r := &Repository{dir: dir, opts: opts, signers: map[string]*PrivateKey{}, bins: map[string]binState{}}
	for _, k := range opts.Signers {
		if k != nil {
			r.signers[k.ID()] = k
		}
	}
	return r
}

// Dir returns the repository folder.
func (r *Repository) Dir() string { return r.dir }

// AddSigners makes more keys available, e.g. a new online key before a
// rotation is published, or offline keys plugged in for one operation.
func (r *Repository) AddSigners(keys ...*PrivateKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if k != nil {
			r.signers[k.ID()] = k
		}
	}
}

// RemoveSigners forgets keys, e.g. offline keys after a rotation.
func (r *Repository) RemoveSigners(keys ...*PrivateKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if k != nil {
			delete(r.signers, k.ID())
		}
	}
}

// Open loads the repository in dir. Reading it costs O(number of bins),
// not O(catalog): bins are described by the state file and only bins it
// does not describe are read.
func Open(dir string, opts Options) (*Repository, error) {
	r := newRepository(dir, opts)
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repository) load() error {
	if _, err := os.Stat(filepath.Join(r.dir, metaFileName(metadata.ROOT, 1))); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotInitialized, r.dir)
		}
		return fmt.Errorf("tufrepo: open: %w", err)
	}
	if err := removeTemps(r.dir); err != nil {
		return err
	}
	// Root versions are never deleted, so the newest is the last of an
	// unbroken run from 1.
	var root *metadata.Metadata[metadata.RootType]
	for v := int64(1); ; v++ {
		m, err := readMeta[metadata.RootType](r.dir, metaFileName(metadata.ROOT, v))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		root = m
	}
	r.root = root

	ts, err := readMeta[metadata.TimestampType](r.dir, TimestampFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Initialized without online keys: only root and targets exist.
		for v := int64(1); ; v++ {
			m, err := readMeta[metadata.TargetsType](r.dir, metaFileName(metadata.TARGETS, v))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return err
			}
			r.targets = m
		}
		if r.targets == nil {
			return fmt.Errorf("%w: no targets metadata", ErrCorruptRepository)
		}
		return r.checkDelegation()
	case err != nil:
		return err
	}
	r.timestamp = ts
	sm, ok := ts.Signed.Meta["snapshot.json"]
	if !ok {
		return fmt.Errorf("%w: timestamp lists no snapshot", ErrCorruptRepository)
	}
	if r.snapshot, err = readMeta[metadata.SnapshotType](r.dir, metaFileName(metadata.SNAPSHOT, sm.Version)); err != nil {
		return err
	}
	tm, ok := r.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return fmt.Errorf("%w: snapshot lists no targets", ErrCorruptRepository)
	}
	if r.targets, err = readMeta[metadata.TargetsType](r.dir, metaFileName(metadata.TARGETS, tm.Version)); err != nil {
		return err
	}
	if err := r.checkDelegation(); err != nil {
		return err
	}
	return r.loadBinStates()
}

// checkDelegation insists on the shape this package writes: top-level
// targets delegating everything to succinct hashed bins.
func (r *Repository) checkDelegation() error {
	d := r.targets.Signed.Delegations
	if d == nil || d.SuccinctRoles == nil || d.SuccinctRoles.NamePrefix != BinPrefix ||
		d.SuccinctRoles.BitLength < 1 || d.SuccinctRoles.BitLength > MaxBinBits {
		return fmt.Errorf("%w: targets do not delegate to succinct bins %q", ErrCorruptRepository, BinPrefix)
	}
	return nil
}

func (r *Repository) bits() int { return r.targets.Signed.Delegations.SuccinctRoles.BitLength }

// binNames lists the current bins in order.
func (r *Repository) binNames() []string {
	bits := r.bits()
	names := make([]string, 1<<bits)
	for i := range names {
		names[i] = binName(uint32(i), bits)
	}
	return names
}

func readMeta[T metadata.Roles](dir, name string) (*metadata.Metadata[T], error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("tufrepo: read %s: %w", name, err)
	}
	m, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptRepository, name, err)
	}
	return m, nil
}

// Status summarizes a repository for logs, `odi status` and alerts.
type Status struct {
	Root, Targets, Snapshot, Timestamp int64 // versions (0: not yet signed)
	RootExpires, TargetsExpires        time.Time
	SnapshotExpires, TimestampExpires  time.Time
	// OldestBinExpires is the earliest expiry among the bins.
	OldestBinExpires time.Time
	Bins             int // number of bins (2^bit_length)
	Artifacts        int // targets signed in the bins
	// CanSignRoot and CanSignTargets report whether offline keys meeting
	// the thresholds are loaded; when false, the directory should warn as
	// RootExpires and TargetsExpires approach.
	CanSignRoot, CanSignTargets bool
	// NeedsRebin: bins hold far more than TargetsPerBin on average and
	// re-binning needs the targets keys.
	NeedsRebin bool
}

// Status reports versions, expiries and what this process can sign.
func (r *Repository) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{
		Root:           r.root.Signed.Version,
		RootExpires:    r.root.Signed.Expires,
		Targets:        r.targets.Signed.Version,
		TargetsExpires: r.targets.Signed.Expires,
		Bins:           1 << r.bits(),
		CanSignRoot:    r.canSign(r.root.Signed.Roles[metadata.ROOT]),
		CanSignTargets: r.canSign(r.root.Signed.Roles[metadata.TARGETS]),
	}
	if r.snapshot != nil {
		s.Snapshot, s.SnapshotExpires = r.snapshot.Signed.Version, r.snapshot.Signed.Expires
		s.Timestamp, s.TimestampExpires = r.timestamp.Signed.Version, r.timestamp.Signed.Expires
	}
	for _, b := range r.bins {
		s.Artifacts += b.Count
		if s.OldestBinExpires.IsZero() || b.Expires.Before(s.OldestBinExpires) {
			s.OldestBinExpires = b.Expires
		}
	}
	s.NeedsRebin = r.needsRebin(s.Artifacts)
	return s
}

func (r *Repository) needsRebin(n int) bool {
	return BinBits(n) >= r.bits()+rebinFactorBits
}

// TrustedRoot returns the bytes of the newest root, which relays and
// clients may be given as their initial trusted root. (Any older version
// works too: clients walk the chain forward.)
func (r *Repository) TrustedRoot() ([]byte, error) {
	r.mu.Lock()
	v := r.root.Signed.Version
	r.mu.Unlock()
	return os.ReadFile(filepath.Join(r.dir, metaFileName(metadata.ROOT, v)))
}

// canSign reports whether our keys meet role's threshold.
func (r *Repository) canSign(role *metadata.Role) bool {
	return role != nil && len(r.keysFor(role.KeyIDs)) >= role.Threshold && role.Threshold > 0
}

// keysFor returns the keys we hold among ids, without duplicates.
func (r *Repository) keysFor(ids []string) []*PrivateKey {
	var ks []*PrivateKey
	seen := map[string]bool{}
	for _, id := range ids {
		if k, ok := r.signers[id]; ok && !seen[id] {
			ks = append(ks, k)
			seen[id] = true
		}
	}
	return ks
}

// roleKeys returns the keys to sign a top-level role with, or ErrMissingKey.
func (r *Repository) roleKeys(root *metadata.Metadata[metadata.RootType], role string) ([]*PrivateKey, error) {
	rl := root.Signed.Roles[role]
	if rl == nil {
		return nil, fmt.Errorf("%w: root has no %s role", ErrCorruptRepository, role)
	}
	ks := r.keysFor(rl.KeyIDs)
	if len(ks) < rl.Threshold || rl.Threshold < 1 {
		return nil, fmt.Errorf("%w: %s needs %d of its %d keys, have %d", ErrMissingKey, role, rl.Threshold, len(rl.KeyIDs), len(ks))
	}
	return ks, nil
}

// binKey returns the online key bins are signed with.
func (r *Repository) binKey(targets *metadata.Metadata[metadata.TargetsType]) (*PrivateKey, error) {
	sr := targets.Signed.Delegations.SuccinctRoles
	ks := r.keysFor(sr.KeyIDs)
	if len(ks) < sr.Threshold || len(ks) == 0 {
		return nil, fmt.Errorf("%w: bins need %d of keys %v", ErrMissingKey, sr.Threshold, sr.KeyIDs)
	}
	return ks[0], nil
}

// sign replaces m's signatures with signatures by keys.
func sign[T metadata.Roles](m *metadata.Metadata[T], keys []*PrivateKey) error {
	m.ClearSignatures()
	for _, k := range keys {
		if _, err := m.Sign(k.signer); err != nil {
			return fmt.Errorf("tufrepo: sign with %s: %w", k.ID(), err)
		}
	}
	return nil
}

// expiresAt rounds to whole seconds in UTC: TUF clients in other languages
// parse "expires" strictly, and sub-second precision only adds bytes.
func expiresAt(now time.Time, d time.Duration) time.Time {
	return now.UTC().Truncate(time.Second).Add(d)
}

// due reports whether a signature expiring at exp, valid for period d, has
// less than half of it left at now.
func due(exp, now time.Time, d time.Duration) bool { return exp.Sub(now) < d/2 }
