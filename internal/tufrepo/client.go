package tufrepo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Client errors, for errors.Is.
var (
	// ErrNotFound: the signed catalog has no such path.
	ErrNotFound = errors.New("tufrepo: not in the signed catalog")
	// ErrExpired: some metadata needed is past its expiry. For a relay this
	// means its directory has been unreachable (or frozen) too long.
	ErrExpired = errors.New("tufrepo: metadata expired")
	// ErrVerification: the repository served metadata that fails TUF's
	// checks (signatures, thresholds, versions, rollback, lengths, hashes,
	// format) or ODI's policy on top of them.
	ErrVerification = errors.New("tufrepo: metadata failed verification")
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// MetadataURL is the repository's base URL, e.g.
	// http://dir.example/c/<catalog>/tuf/.
	MetadataURL string
	// TrustedRoot is the root metadata the caller trusts out of band
	// (shipped in config, pinned by the operator). Any version works; the
	// client walks forward to the newest, and remembers it in CacheDir.
	TrustedRoot []byte
	// CacheDir holds verified metadata between runs. It is what makes
	// rollback protection survive restarts; one folder per catalog.
	CacheDir string
	// HTTPClient makes the requests (timeouts are the caller's). Nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Limits bound metadata sizes; zero fields take DefaultLimits.
	Limits Limits
	// MaxCachedBins bounds how many verified bins are held in memory
	// (default 512, a few tens of thousands of targets). Beyond it the
	// client reloads its verified state from CacheDir and starts afresh, so
	// a relay carrying a million artifacts does not keep them all parsed.
	MaxCachedBins int
	// Now is the clock expiry is checked against (default time.Now).
	Now func() time.Time
}

// Client is the verifying side: it keeps a catalog's TUF metadata fresh
// with go-tuf's updater and answers what the signed length and digest of a
// path are. It never downloads artifacts. Safe for concurrent use; calls
// are serialized (a bin download holds up other lookups for its duration).
type Client struct {
	cfg   ClientConfig
	fetch *httpFetcher

	mu sync.Mutex // serializes use of the updater; guards u and ts
	// ts is the trusted metadata of the last successful refresh, nil
	// before the first. Its Targets map is the updater's, when u is set.
	ts *trustedmetadata.TrustedMetadata
	// u is the updater that produced ts, or loaded it back from the cache;
	// nil after a fast refresh (fastsnapshot.go) until a lookup needs
	// go-tuf. go-tuf's Updater refreshes once per lifetime, so every
	// refresh through it makes a new one.
	u *updater.Updater
	// fast holds bins verified by the fast path (fastbins.go); guarded by
	// mu. Entries are checked against the snapshot's version at each use.
	fast map[string]*fastBin
	// noBundles is set once the repository did not answer a bundle
	// request.
	noBundles atomic.Bool
}

// TargetInfo is what the signed metadata says about one artifact.
type TargetInfo struct {
	Path   string
	Length int64
	Digest catalog.Digest
}

// MismatchError reports bytes that are not the signed artifact.
type MismatchError struct {
	Path                  string
	WantLength, GotLength int64
	WantDigest, GotDigest catalog.Digest
}

func (e *MismatchError) Error() string {
	if e.WantLength != e.GotLength {
		return fmt.Sprintf("tufrepo: %s: length %d, signed %d", e.Path, e.GotLength, e.WantLength)
	}
	return fmt.Sprintf("tufrepo: %s: sha256 %s, signed %s", e.Path, e.GotDigest, e.WantDigest)
}

// Check reports whether bytes of the given length and digest are the
// signed artifact, as a *MismatchError if not. Callers stream the artifact
// through SHA-256 (stopping after t.Length+1 bytes) and call Check before
// making the file visible.
func (t TargetInfo) Check(length int64, d catalog.Digest) error {
	if length != t.Length || d != t.Digest {
		return &MismatchError{Path: t.Path, WantLength: t.Length, GotLength: length, WantDigest: t.Digest, GotDigest: d}
	}
	return nil
}

// NewClient checks cfg and the trusted root. It does no I/O beyond
// creating CacheDir; call Refresh to fetch metadata.
func NewClient(cfg ClientConfig) (*Client, error) {
	if _, err := url.Parse(cfg.MetadataURL); err != nil || cfg.MetadataURL == "" {
		return nil, fmt.Errorf("tufrepo: client: bad metadata URL %q", cfg.MetadataURL)
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("tufrepo: client: no cache folder")
	}
	if err := checkTrustedRoot(cfg.TrustedRoot); err != nil {
		return nil, fmt.Errorf("tufrepo: client: trusted root: %w", err)
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("tufrepo: client: %w", err)
	}
	// Earlier versions kept every verified bin under bins/, without bound.
	os.RemoveAll(filepath.Join(cfg.CacheDir, "bins"))
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	cfg.Limits = cfg.Limits.withDefaults()
	recoverAsideSnapshot(cfg.CacheDir)
	if cfg.MaxCachedBins <= 0 {
		cfg.MaxCachedBins = 512
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, fetch: &httpFetcher{client: cfg.HTTPClient, limits: cfg.Limits}, fast: map[string]*fastBin{}}, nil
}

// checkTrustedRoot parses a root and checks its keys before go-tuf sees
// it: go-tuf panics verifying with a short ed25519 key. Catching it here
// gives the operator a clear error at startup.
func checkTrustedRoot(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrVerification)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerification, err)
	}
	if root.Signed.Type != metadata.ROOT {
		return fmt.Errorf("%w: _type %q", ErrVerification, root.Signed.Type)
	}
	for id, k := range root.Signed.Keys {
		if _, err := publicKeyFromTUF(k); err != nil {
			return fmt.Errorf("%w: key %s: %w", ErrVerification, id, err)
		}
	}
	// Signatures are checked by the first Refresh, which fails on a root
	// that does not verify itself.
	return nil
}

// guard turns a panic inside go-tuf into an error. go-tuf panics on some
// malformed input that is correctly signed (a short key in a new root);
// a relay must refuse it, not crash.
func guard[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: go-tuf panicked: %v", ErrVerification, p)
		}
	}()
	return f()
}

func rootVersion(data []byte) int64 {
	var probe struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return 0
	}
	return probe.Signed.Version
}

// newUpdater makes an updater trusting the newest root we have verified
// (the cache's root.json, written by go-tuf) or the configured one.
func (c *Client) newUpdater(local bool) (*updater.Updater, error) {
	c.cleanCache()
	roots := [][]byte{c.cfg.TrustedRoot}
	if cached, err := os.ReadFile(filepath.Join(c.cfg.CacheDir, "root.json")); err == nil &&
		rootVersion(cached) >= rootVersion(c.cfg.TrustedRoot) {
		roots = [][]byte{cached, c.cfg.TrustedRoot}
	}
	var firstErr error
	for _, root := range roots {
		uc, err := config.New(c.cfg.MetadataURL, root)
		if err != nil {
			return nil, fmt.Errorf("tufrepo: client: %w", err)
		}
		uc.LocalMetadataDir = c.cfg.CacheDir
		// Never used (we do not download targets), but go-tuf creates it.
		uc.LocalTargetsDir = c.cfg.CacheDir
		uc.RemoteTargetsURL = ""
		uc.Fetcher = c.fetch
		uc.RootMaxLength = c.cfg.Limits.Root
		uc.TimestampMaxLength = c.cfg.Limits.Timestamp
		uc.SnapshotMaxLength = c.cfg.Limits.Snapshot
		uc.TargetsMaxLength = c.cfg.Limits.Targets
		uc.UnsafeLocalMode = local
		u, err := guard(func() (*updater.Updater, error) { return updater.New(uc) })
		if err == nil {
			u.UnsafeSetRefTime(c.cfg.Now())
			return u, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrVerification, firstErr)
}

// cleanCache deletes cached top-level metadata that does not even parse.
// go-tuf treats a cached file failing verification as absent but aborts on
// one that is not JSON, which would wedge a relay until someone cleaned
// its cache by hand. An unparseable file protected against nothing.
func (c *Client) cleanCache() {
	for _, name := range []string{"timestamp.json", "snapshot.json", "targets.json"} {
		p := filepath.Join(c.cfg.CacheDir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil || m["signed"] == nil {
			os.Remove(p)
		}
	}
}

// Refresh runs TUF's top-level update against the repository: new roots
// in order, then timestamp, snapshot and targets, each verified, with
// rollback checked against what the cache holds. Call it whenever the
// catalog may have changed (relays: on each directory notice or every
// minute or so). If it fails, the previous state stays in use until it
// expires.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

func (c *Client) refreshLocked(ctx context.Context) (err error) {
	if err := c.fastRefreshLocked(ctx); !errors.Is(err, errSlowRefresh) {
		return err
	}
	c.fetch.ctx = ctx
	defer func() { c.fetch.ctx, c.fetch.timestamp = nil, nil }()
	if prev := c.setSnapshotAsideLocked(); prev != nil { // see refresh.go
		defer func() { c.settleAsideSnapshot(err == nil) }()
		return c.refreshWith(ctx, func(u *updater.Updater) error { return checkSnapshotRollback(prev, u) })
	}
	return c.refreshWith(ctx, nil)
}

// refreshWith runs the top-level update with check, when set, as one more
// condition on the metadata before the client trusts it.
func (c *Client) refreshWith(ctx context.Context, check func(*updater.Updater) error) error {
	u, err := c.newUpdater(false)
	if err != nil {
		return err
	}
	_, err = guard(func() (struct{}, error) { return struct{}{}, u.Refresh() })
	if err == nil && check != nil {
		err = check(u)
	}
	if err != nil {
		return c.wrap(ctx, "refresh", err)
	}
	return c.trustLocked(u)
}

// trustLocked makes what u verified the client's trusted state.
func (c *Client) trustLocked(u *updater.Updater) error {
	ts := u.GetTrustedMetadataSet()
	if err := checkClientPolicy(&ts); err != nil {
		return err
	}
	c.u, c.ts = u, &ts
	return nil
}

// reopenLocked replaces the updater by one loaded from the verified cache
// alone, dropping the bins the old one accumulated.
func (c *Client) reopenLocked(ctx context.Context) error {
	u, err := c.newUpdater(true)
	if err != nil {
		return err
	}
	if _, err := guard(func() (struct{}, error) { return struct{}{}, u.Refresh() }); err != nil {
		return c.wrap(ctx, "reload cache", err)
	}
	return c.trustLocked(u)
}

// checkClientPolicy refuses delegations ODI never makes. Role names become
// file names in the cache and in URLs; go-tuf escapes them, but a catalog
// whose targets delegate to "../x" is hostile whatever the escaping.
func checkClientPolicy(ts *trustedmetadata.TrustedMetadata) error {
	t := ts.Targets[metadata.TARGETS]
	if t == nil {
		return fmt.Errorf("%w: no targets", ErrVerification)
	}
	d := t.Signed.Delegations
	if d == nil || d.SuccinctRoles == nil || len(d.Roles) != 0 {
		return fmt.Errorf("%w: targets must delegate to succinct hashed bins only", ErrVerification)
	}
	if sr := d.SuccinctRoles; !validRoleName(sr.NamePrefix) || sr.BitLength < 1 || sr.BitLength > MaxBinBits {
		return fmt.Errorf("%w: bins prefix %q bit_length %d", ErrVerification, sr.NamePrefix, sr.BitLength)
	}
	for id, k := range d.Keys {
		if _, err := publicKeyFromTUF(k); err != nil {
			return fmt.Errorf("%w: bins key %s: %w", ErrVerification, id, err)
		}
	}
	return nil
}

// wrap classifies an updater error for callers.
func (c *Client) wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("tufrepo: %s: %w", op, cerr)
	}
	switch {
	case errors.Is(err, ErrVerification), errors.Is(err, ErrExpired):
		return fmt.Errorf("tufrepo: %s: %w", op, err)
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return fmt.Errorf("tufrepo: %s: %w: %w", op, ErrExpired, err)
	case errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		return fmt.Errorf("tufrepo: %s: %w: %w", op, ErrVerification, err)
	case errors.Is(err, &metadata.ErrDownload{}):
		// Network or HTTP status: the repository may be fine.
		return fmt.Errorf("tufrepo: %s: %w", op, err)
	}
	return fmt.Errorf("tufrepo: %s: %w: %w", op, ErrVerification, err)
}

// Target returns the signed length and digest of path p, verifying and
// caching the bin that holds it (one download the first time). It refreshes
// first if the client never has. Expiry of every role involved is checked
// against the clock at each call, so a daemon whose refreshes keep failing
// stops vouching for artifacts once the metadata it holds expires.
func (c *Client) Target(ctx context.Context, p string) (TargetInfo, error) {
	if err := catalog.ValidatePath(p); err != nil {
		return TargetInfo{}, fmt.Errorf("tufrepo: target: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ts == nil {
		if err := c.refreshLocked(ctx); err != nil {
			return TargetInfo{}, err
		}
	}
	c.fetch.ctx = ctx
	defer func() { c.fetch.ctx = nil }()
	now := c.cfg.Now()

	bin := c.binOf(p)
	if xerr := checkExpiry(c.ts, "", now); xerr != nil {
		return TargetInfo{}, xerr
	}
	if c.ts.Targets[bin] == nil {
		info, err := c.fastTarget(p, bin, now)
		if !errors.Is(err, errNotCanonical) {
			return info, err
		}
	}
	// A bin in another layout: go-tuf's updater loads it.
	if c.u == nil || (c.ts.Targets[bin] == nil && len(c.ts.Targets)-1 >= c.cfg.MaxCachedBins) {
		if err := c.reopenLocked(ctx); err != nil {
			return TargetInfo{}, err
		}
	}
	c.u.UnsafeSetRefTime(now)
	tf, err := c.lookup(p)
	if err != nil && ctx.Err() == nil && c.ts.Targets[bin] == nil &&
		!errors.Is(err, &metadata.ErrRepository{}) && !errors.Is(err, &metadata.ErrDownload{}) && !errors.Is(err, ErrVerification) {
		// The cached copy of the bin may be damaged: go-tuf skips a
		// cached file that fails verification but aborts on one that does
		// not parse. Drop it and fetch once more.
		os.Remove(filepath.Join(c.cfg.CacheDir, url.PathEscape(bin)+".json"))
		tf, err = c.lookup(p)
	}
	ts := c.ts
	if xerr := checkExpiry(ts, bin, now); xerr != nil {
		return TargetInfo{}, xerr
	}
	if err != nil {
		if b := ts.Targets[bin]; b != nil && b.Signed.Targets[p] == nil {
			return TargetInfo{}, fmt.Errorf("%w: %s", ErrNotFound, p)
		}
		return TargetInfo{}, c.wrap(ctx, "target "+p, err)
	}
	d, ok := digestFromHashes(tf.Hashes)
	if !ok || tf.Length < 0 {
		return TargetInfo{}, fmt.Errorf("%w: %s: signed info lacks a sha256 or length", ErrVerification, p)
	}
	return TargetInfo{Path: p, Length: tf.Length, Digest: d}, nil
}

func (c *Client) lookup(p string) (*metadata.TargetFiles, error) {
	return guard(func() (*metadata.TargetFiles, error) { return c.u.GetTargetInfo(p) })
}

// binOf names the bin that holds p under the trusted targets.
func (c *Client) binOf(p string) string {
	sr := c.ts.Targets[metadata.TARGETS].Signed.Delegations.SuccinctRoles
	return sr.GetRolesForTarget(p)[0].Name
}

// checkExpiry checks every role a lookup in bin relies on.
func checkExpiry(ts *trustedmetadata.TrustedMetadata, bin string, now time.Time) error {
	type role struct {
		name    string
		expires time.Time
	}
	roles := []role{{"root", ts.Root.Signed.Expires}}
	if ts.Timestamp != nil {
		roles = append(roles, role{"timestamp", ts.Timestamp.Signed.Expires})
	}
	if ts.Snapshot != nil {
		roles = append(roles, role{"snapshot", ts.Snapshot.Signed.Expires})
	}
	if t := ts.Targets[metadata.TARGETS]; t != nil {
		roles = append(roles, role{"targets", t.Signed.Expires})
	}
	if b := ts.Targets[bin]; b != nil {
		roles = append(roles, role{bin, b.Signed.Expires})
	}
	for _, r := range roles {
		if now.After(r.expires) {
			return fmt.Errorf("%w: %s expired at %s", ErrExpired, r.name, r.expires.Format(time.RFC3339))
		}
	}
	return nil
}

// ClientState describes the metadata a Client currently trusts.
type ClientState struct {
	Root, Timestamp, Snapshot, Targets int64
	TimestampExpires, SnapshotExpires  time.Time
	// Bins is the number of bins; CachedBins how many are held verified.
	Bins, CachedBins int
}

// State reports the trusted versions; ok is false before the first
// successful refresh. A relay compares Snapshot across refreshes to know
// whether anything changed.
func (c *Client) State() (s ClientState, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.ts
	if ts == nil {
		return s, false
	}
	s.Root = ts.Root.Signed.Version
	s.Timestamp, s.TimestampExpires = ts.Timestamp.Signed.Version, ts.Timestamp.Signed.Expires
	s.Snapshot, s.SnapshotExpires = ts.Snapshot.Signed.Version, ts.Snapshot.Signed.Expires
	t := ts.Targets[metadata.TARGETS]
	s.Targets = t.Signed.Version
	s.Bins = 1 << t.Signed.Delegations.SuccinctRoles.BitLength
	s.CachedBins = len(ts.Targets) - 1
	return s, true
}

// CacheDir returns the folder holding the verified metadata.
func (c *Client) CacheDir() string { return c.cfg.CacheDir }
