package tufrepo

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/parallel"
)

// A relay looks up every changed path of every catalog version in its
// bin, and go-tuf's generic decoding and canonical re-encoding cost about
// 10 ms per bin: a small update of a large catalog would spend seconds
// there. Bins that ODI's directories write are canonical JSON already
// (encodeBin), so their signed bytes are the file's own bytes between
// "signed": and the closing brace. fastBin verifies such a bin directly,
// with the same rules go-tuf applies to a delegated role — after go-tuf has
// verified root, timestamp, snapshot and targets:
//
//   - the file is at most the metadata size limit;
//   - its "signed" part is parsed strictly: exactly the canonical layout,
//     keys in order, target paths strictly increasing (so the raw bytes are
//     their own canonical form and the signature is checked over them);
//   - _type is "targets" and the version is the one the trusted snapshot
//     lists for the bin (no rollback, no mix-and-match);
//   - it is not expired at the reference time;
//   - a threshold of distinct keys named by the succinct delegation signed
//     it (one key counted once);
//   - every target path hashes into this bin.
//
// Anything not in that layout falls back to go-tuf, so a bin written by
// another tool is still verified, only more slowly.

// fastBin is a verified bin.
type fastBin struct {
	version int64
	expires time.Time
	targets map[string]TargetInfo
}

// errNotCanonical means the bin is not in the layout fastBin verifies.
var errNotCanonical = errors.New("not a canonical ODI bin")

// verifyFastBin checks data as bin name under delegation sr with keys.
func verifyFastBin(data []byte, name string, version int64, sr *metadata.SuccinctRoles, keys map[string]*metadata.Key, now time.Time) (*fastBin, error) {
	sigs, signed, ok := splitCanonical(data)
	if !ok {
		return nil, errNotCanonical
	}
	b, err := parseCanonicalBin(signed)
	if err != nil {
		return nil, err
	}
	// From here on the layout is ODI's: failures are verification failures.
	if b.version != version {
		return nil, fmt.Errorf("%w: %w", ErrVerification, &metadata.ErrBadVersionNumber{
			Msg: fmt.Sprintf("%s has version %d, the snapshot lists %d", name, b.version, version)})
	}
	if n := validSignatures(sigs, sr.KeyIDs, keys, signed); n < sr.Threshold || sr.Threshold < 1 {
		return nil, fmt.Errorf("%w: %w", ErrVerification, &metadata.ErrUnsignedMetadata{
			Msg: fmt.Sprintf("%s is signed by %d of the %d keys needed", name, n, sr.Threshold)})
	}
	if now.After(b.expires) {
		return nil, fmt.Errorf("%w: %s expired at %s", ErrExpired, name, b.expires.Format(time.RFC3339))
	}
	idx, ok := succinctIndex(sr, name)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a bin of the delegation", ErrVerification, name)
	}
	for path := range b.targets {
		if binIndex(path, sr.BitLength) != idx {
			return nil, fmt.Errorf("%w: %s lists %q, which belongs to another bin", ErrVerification, name, path)
		}
		if err := catalog.ValidatePath(path); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrVerification, name, err)
		}
	}
	return b, nil
}

// succinctIndex returns the number of bin name under sr, as go-tuf's
// SuccinctRoles names bins: the prefix, '-', then the number in lowercase
// hexadecimal zero-padded to the width of the last one.
func succinctIndex(sr *metadata.SuccinctRoles, name string) (uint32, bool) {
	if sr.BitLength < 1 || sr.BitLength > 32 {
		return 0, false
	}
	suffix, ok := strings.CutPrefix(name, sr.NamePrefix+"-")
	last := uint64(1)<<sr.BitLength - 1
	if !ok || len(suffix) != len(strconv.FormatUint(last, 16)) {
		return 0, false
	}
	for _, c := range suffix {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(suffix, 16, 32)
	if err != nil || n > last {
		return 0, false
	}
	return uint32(n), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseCanonicalBin parses the "signed" part of a bin in exactly the
// layout encodeBinSigned writes.
func parseCanonicalBin(s []byte) (*fastBin, error) {
	b := &fastBin{targets: map[string]TargetInfo{}}
	expires, v, ok := walkCanonicalBin(s, func(t binTarget) {
		b.targets[t.path] = TargetInfo{Path: t.path, Length: t.length, Digest: t.digest}
	})
	if !ok {
		return nil, errNotCanonical
	}
	b.expires, b.version = expires, v
	return b, nil
}

// binTarget is one target of a canonical bin: its path, signed length and
// digest, and the bytes of its member ("path":{...}) in the file.
type binTarget struct {
	path   string
	length int64
	digest catalog.Digest
	raw    []byte
}

// walkCanonicalBin reads the "signed" part of a bin in exactly the layout
// encodeBinSigned writes (target paths strictly increasing, so the bytes
// are their own canonical form), calling each for every target in order.
// It reports false for anything else.
func walkCanonicalBin(s []byte, each func(binTarget)) (expires time.Time, version int64, ok bool) {
	const head = `{"_type":"targets","expires":`
	p, ok := bytes.CutPrefix(s, []byte(head))
	if !ok {
		return expires, 0, false
	}
	expires, n, ok := readExpires(p)
	if !ok {
		return expires, 0, false
	}
	p = p[n:]
	const spec = `,"spec_version":`
	if p, ok = bytes.CutPrefix(p, []byte(spec)); !ok {
		return expires, 0, false
	}
	if _, n, ok = readString(p); !ok {
		return expires, 0, false
	}
	if p, ok = bytes.CutPrefix(p[n:], []byte(`,"targets":{`)); !ok {
		return expires, 0, false
	}
	const eh, em = `:{"hashes":{"sha256":"`, `"},"length":`
	last, first := "", true
	for len(p) > 0 && p[0] != '}' {
		if !first {
			if p[0] != ',' {
				return expires, 0, false
			}
			p = p[1:]
		}
		t := binTarget{raw: p}
		var n int
		if t.path, n, ok = readString(p); !ok || (!first && t.path <= last) {
			return expires, 0, false
		}
		last, first = t.path, false
		rest, ok := bytes.CutPrefix(p[n:], []byte(eh))
		if !ok || len(rest) < 64 {
			return expires, 0, false
		}
		for _, c := range rest[:64] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return expires, 0, false
			}
		}
		hex.Decode(t.digest[:], rest[:64])
		if rest, ok = bytes.CutPrefix(rest[64:], []byte(em)); !ok {
			return expires, 0, false
		}
		if t.length, n, ok = readUint(rest); !ok || len(rest) <= n || rest[n] != '}' {
			return expires, 0, false
		}
		rest = rest[n+1:]
		t.raw = t.raw[:len(t.raw)-len(rest)]
		each(t)
		p = rest
	}
	const vh = `},"version":`
	if p, ok = bytes.CutPrefix(p, []byte(vh)); !ok {
		return expires, 0, false
	}
	v, n, ok := readUint(p)
	if !ok || len(p) != n+1 || p[n] != '}' {
		return expires, 0, false
	}
	return expires, v, true
}

// readUint reads a canonical non-negative integer (no leading zeros).
func readUint(p []byte) (int64, int, bool) {
	k := 0
	for k < len(p) && p[k] >= '0' && p[k] <= '9' {
		k++
	}
	if k == 0 || (k > 1 && p[0] == '0') {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(string(p[:k]), 10, 64)
	return v, k, err == nil
}

// fastTarget looks p up through the fast path. It reports errNotCanonical
// when the bin must go through go-tuf instead. Called with c.mu held.
func (c *Client) fastTarget(p, bin string, now time.Time) (TargetInfo, error) {
	mf, ok := c.ts.Snapshot.Signed.Meta[bin+".json"]
	if !ok {
		return TargetInfo{}, fmt.Errorf("%w: the snapshot does not list %s", ErrVerification, bin)
	}
	fb := c.fast[bin]
	if fb == nil || fb.version != mf.Version {
		ctx := c.fetch.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		var err error
		if fb, err = c.loadFastBin(ctx, bin, mf, now); err != nil {
			return TargetInfo{}, err
		}
		c.keepFastBin(bin, fb)
	}
	if now.After(fb.expires) {
		return TargetInfo{}, fmt.Errorf("%w: %s expired at %s", ErrExpired, bin, fb.expires.Format(time.RFC3339))
	}
	info, ok := fb.targets[p]
	if !ok {
		return TargetInfo{}, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	return info, nil
}

// keepFastBin remembers a verified bin, within MaxCachedBins. Called with
// c.mu held.
func (c *Client) keepFastBin(bin string, fb *fastBin) {
	if _, ok := c.fast[bin]; !ok && len(c.fast) >= c.cfg.MaxCachedBins {
		clear(c.fast)
	}
	c.fast[bin] = fb
}

// loadFastBin fetches bin (at the version and length mf lists) from the
// repository and verifies it through the fast path. Verified bins are kept
// in memory only: a relay looks each changed path up once, and a bin it
// needs again after a restart costs one request. It only reads the trusted
// state, so several may run at once under c.mu.
func (c *Client) loadFastBin(ctx context.Context, bin string, mf *metadata.MetaFiles, now time.Time) (*fastBin, error) {
	data, err := c.fetch.download(ctx, c.cfg.MetadataURL+binFileName(bin, mf), mf.Length)
	if err != nil {
		return nil, c.wrap(ctx, "bin "+bin, err)
	}
	return c.checkFastBin(data, bin, mf, now)
}

// binFileName is the file of bin at the version mf lists.
func binFileName(bin string, mf *metadata.MetaFiles) string {
	return strconv.FormatInt(mf.Version, 10) + "." + url.PathEscape(bin) + ".json"
}

// checkFastBin verifies data, fetched as bin at the version, length and
// hashes mf lists, through the fast path.
func (c *Client) checkFastBin(data []byte, bin string, mf *metadata.MetaFiles, now time.Time) (*fastBin, error) {
	d := c.ts.Targets[metadata.TARGETS].Signed.Delegations
	if mf.Length > 0 && int64(len(data)) != mf.Length {
		return nil, fmt.Errorf("%w: %s is %d bytes, the snapshot says %d", ErrVerification, bin, len(data), mf.Length)
	}
	if len(mf.Hashes) > 0 {
		if err := mf.VerifyLengthHashes(data); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrVerification, bin, err)
		}
	}
	return verifyFastBin(data, bin, mf.Version, d.SuccinctRoles, d.Keys, now)
}

// prefetchWorkers is how many bins Prefetch loads at once. A bin is a few
// kilobytes: the time goes to round trips, not bandwidth.
const prefetchWorkers = 32

// Prefetch loads and verifies, side by side, the bins holding paths that
// are not loaded yet, so the Target calls that follow find them in
// memory: a catalog update touching a few hundred bins then costs a few
// round trips instead of a few hundred. Bins that are not in ODI's
// canonical layout, or fail to load, are left to Target, which reports
// what is wrong with them; Prefetch itself fails only when the top-level
// metadata cannot be refreshed.
func (c *Client) Prefetch(ctx context.Context, paths []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ts == nil {
		if err := c.refreshLocked(ctx); err != nil {
			return err
		}
	}
	now := c.cfg.Now()
	ts := c.ts
	if checkExpiry(ts, "", now) != nil {
		return nil
	}
	var jobs []binLoad
	seen := map[string]bool{}
	for _, p := range paths {
		bin := c.binOf(p)
		if seen[bin] || ts.Targets[bin] != nil {
			continue
		}
		seen[bin] = true
		mf, ok := ts.Snapshot.Signed.Meta[bin+".json"]
		if !ok {
			continue
		}
		if fb := c.fast[bin]; fb != nil && fb.version == mf.Version {
			continue
		}
		jobs = append(jobs, binLoad{bin: bin, mf: mf})
	}
	if len(jobs) > c.cfg.MaxCachedBins {
		jobs = jobs[:c.cfg.MaxCachedBins]
	}
	if len(c.fast)+len(jobs) > c.cfg.MaxCachedBins {
		clear(c.fast) // make room for all of them at once
	}
	c.bundleBins(ctx, jobs, now)
	parallel.Do(len(jobs), prefetchWorkers, func(i int) error {
		if jobs[i].fb == nil {
			jobs[i].fb, _ = c.loadFastBin(ctx, jobs[i].bin, jobs[i].mf, now)
		}
		return nil
	})
	for _, j := range jobs {
		if j.fb != nil {
			c.keepFastBin(j.bin, j.fb)
		}
	}
	return nil
}

// Bins by the bundle: a bundle request (httpapi.FetchBundle) to the
// metadata folder's URL carries up to binsPerBundle bins; bundleWorkers
// run at once. A server that does not answer bundles is asked one bin at
// a time from then on. (BenchmarkUpdate, 291 bins over loopback: 27-29 ms
// against 34-37 one by one; bundles of 64 by 4 were slower than single
// requests, as each bundle's bins are verified one after the other.)
const (
	binsPerBundle = 16
	bundleWorkers = 16
)

// binLoad is a bin Prefetch loads: its name and snapshot entry, and once
// verified, the bin.
type binLoad struct {
	bin string
	mf  *metadata.MetaFiles
	fb  *fastBin
}

// bundleBins loads the bins of jobs by the bundle, setting fb of each it
// could verify through the fast path. Bins it could not load are left to
// the caller, as are all when bundles are not answered. It only reads the
// trusted state: called with c.mu held.
func (c *Client) bundleBins(ctx context.Context, jobs []binLoad, now time.Time) {
	if len(jobs) < 2 || c.noBundles.Load() {
		return
	}
	chunks := (len(jobs) + binsPerBundle - 1) / binsPerBundle
	parallel.Do(chunks, bundleWorkers, func(k int) error {
		chunk := jobs[k*binsPerBundle : min(len(jobs), (k+1)*binsPerBundle)]
		byName := make(map[string]*binLoad, len(chunk))
		names := make([]string, 0, len(chunk))
		for i := range chunk {
			name := binFileName(chunk[i].bin, chunk[i].mf)
			byName[name] = &chunk[i]
			names = append(names, name)
		}
		err := httpapi.FetchBundle(ctx, c.cfg.HTTPClient, c.cfg.MetadataURL, names, c.cfg.Limits.Targets, func(name string, size int64, r io.Reader) error {
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			j := byName[name]
			// A bin that fails is loaded alone, and Target reports it.
			j.fb, _ = c.checkFastBin(data, j.bin, j.mf, now)
			return nil
		})
		if errors.Is(err, httpapi.ErrNoBundles) {
			c.noBundles.Store(true)
		}
		return nil
	})
}
