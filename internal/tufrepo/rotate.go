package tufrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrBadMetadata reports a root or targets proposal that cannot be
// published: wrong type or version, bad keys, or too few valid signatures.
var ErrBadMetadata = errors.New("tufrepo: metadata refused")

// RootChange describes the next root version. Empty fields keep the
// current value.
type RootChange struct {
	RootKeys         []PublicKey
	RootThreshold    int
	TargetsKeys      []PublicKey
	TargetsThreshold int
	SnapshotKey      PublicKey
	TimestampKey     PublicKey
}

// TargetsChange describes the next top-level targets version. Empty fields
// keep the current value; an empty change just renews its expiry.
type TargetsChange struct {
	// BinsKey replaces the online key the bins are delegated to.
	BinsKey PublicKey
	// BinBits changes the number of bins to 2^BinBits.
	BinBits int
}

// ProposeRoot returns the unsigned next root version with ch applied and a
// fresh expiry, for the key holders to sign with SignMetadata.
func (r *Repository) ProposeRoot(ch RootChange, now time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	root, err := r.proposeRootLocked(ch, now)
	if err != nil {
		return nil, err
	}
	return root.ToBytes(true)
}

func (r *Repository) proposeRootLocked(ch RootChange, now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	root, err := copyMeta(r.root)
	if err != nil {
		return nil, err
	}
	root.ClearSignatures()
	root.Signed.Version++
	root.Signed.Expires = expiresAt(now, r.opts.Expiry.Root)
	set := func(role string, keys []PublicKey, threshold int) error {
		if len(keys) > 0 {
			for _, id := range slices.Clone(root.Signed.Roles[role].KeyIDs) {
				if err := root.Signed.RevokeKey(id, role); err != nil {
					return fmt.Errorf("tufrepo: propose root: %w", err)
				}
			}
			for _, k := range keys {
				if k.IsZero() {
					return fmt.Errorf("tufrepo: propose root: zero %s key", role)
				}
				if err := root.Signed.AddKey(k.tufKey(), role); err != nil {
					return fmt.Errorf("tufrepo: propose root: %w", err)
				}
			}
		}
		if threshold > 0 {
			root.Signed.Roles[role].Threshold = threshold
		}
		return nil
	}
	one := func(k PublicKey) []PublicKey {
		if k.IsZero() {
			return nil
		}
		return []PublicKey{k}
	}
	for _, s := range []struct {
		role      string
		keys      []PublicKey
		threshold int
	}{
		{metadata.ROOT, ch.RootKeys, ch.RootThreshold},
		{metadata.TARGETS, ch.TargetsKeys, ch.TargetsThreshold},
		{metadata.SNAPSHOT, one(ch.SnapshotKey), 0},
		{metadata.TIMESTAMP, one(ch.TimestampKey), 0},
	} {
		if err := set(s.role, s.keys, s.threshold); err != nil {
			return nil, err
		}
	}
	if err := checkRoot(root); err != nil {
		return nil, err
	}
	return root, nil
}

// SignMetadata adds key's signature to a root or targets document (a
// proposal, or one already carrying other holders' signatures) and returns
// the result. It replaces an earlier signature by the same key. It does not
// check that key is entitled to sign: PublishRoot and PublishTargets do.
func SignMetadata(data []byte, key *PrivateKey) ([]byte, error) {
	typ, err := metadataType(data)
	if err != nil {
		return nil, err
	}
	switch typ {
	case metadata.ROOT:
		return addSignature[metadata.RootType](data, key)
	case metadata.TARGETS:
		return addSignature[metadata.TargetsType](data, key)
	}
	return nil, fmt.Errorf("%w: cannot sign %q metadata offline", ErrBadMetadata, typ)
}

func addSignature[T metadata.Roles](data []byte, key *PrivateKey) ([]byte, error) {
	m, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMetadata, err)
	}
	m.Signatures = slices.DeleteFunc(m.Signatures, func(s metadata.Signature) bool { return s.KeyID == key.ID() })
	if _, err := m.Sign(key.signer); err != nil {
		return nil, fmt.Errorf("tufrepo: sign: %w", err)
	}
	return m.ToBytes(true)
}

func metadataType(data []byte) (string, error) {
	var probe struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadMetadata, err)
	}
	return probe.Signed.Type, nil
}

// checkRoot enforces what ODI roots look like beyond the TUF rules, so we
// never publish a root that go-tuf would choke on (a short ed25519 key
// panics in verification) or that mixes offline and online keys.
func checkRoot(root *metadata.Metadata[metadata.RootType]) error {
	if root.Signed.Type != metadata.ROOT || !root.Signed.ConsistentSnapshot {
		return fmt.Errorf("%w: not a consistent-snapshot root", ErrBadMetadata)
	}
	for id, k := range root.Signed.Keys {
		pk, err := publicKeyFromTUF(k)
		if err != nil {
			return fmt.Errorf("%w: key %s: %w", ErrBadMetadata, id, err)
		}
		if pk.ID() != id {
			return fmt.Errorf("%w: key listed as %s has ID %s", ErrBadMetadata, id, pk.ID())
		}
	}
	offline := map[string]bool{}
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		rl := root.Signed.Roles[role]
		if rl == nil {
			return fmt.Errorf("%w: no %s role", ErrBadMetadata, role)
		}
		if err := checkRole(role, rl.KeyIDs, rl.Threshold, root.Signed.Keys); err != nil {
			return err
		}
		if role == metadata.ROOT || role == metadata.TARGETS {
			for _, id := range rl.KeyIDs {
				offline[id] = true
			}
		}
	}
	for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		for _, id := range root.Signed.Roles[role].KeyIDs {
			if offline[id] {
				return fmt.Errorf("%w: key %s is both offline (root/targets) and online (%s)", ErrBadMetadata, id, role)
			}
		}
	}
	return nil
}

func checkRole(role string, ids []string, threshold int, keys map[string]*metadata.Key) error {
	if threshold < 1 || threshold > len(ids) {
		return fmt.Errorf("%w: %s threshold %d with %d keys", ErrBadMetadata, role, threshold, len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if keys[id] == nil {
			return fmt.Errorf("%w: %s key %s not listed", ErrBadMetadata, role, id)
		}
		if seen[id] {
			return fmt.Errorf("%w: %s key %s listed twice", ErrBadMetadata, role, id)
		}
		seen[id] = true
	}
	return nil
}

// checkTargets enforces the shape of ODI's top-level targets: no targets
// of its own, everything delegated to succinct bins signed by valid keys.
func checkTargets(t *metadata.Metadata[metadata.TargetsType]) error {
	if t.Signed.Type != metadata.TARGETS {
		return fmt.Errorf("%w: not targets metadata", ErrBadMetadata)
	}
	if len(t.Signed.Targets) != 0 {
		return fmt.Errorf("%w: top-level targets must delegate every target to bins", ErrBadMetadata)
	}
	d := t.Signed.Delegations
	if d == nil || d.SuccinctRoles == nil || len(d.Roles) != 0 {
		return fmt.Errorf("%w: targets must delegate to succinct_roles only", ErrBadMetadata)
	}
	sr := d.SuccinctRoles
	if sr.NamePrefix != BinPrefix || sr.BitLength < 1 || sr.BitLength > MaxBinBits {
		return fmt.Errorf("%w: succinct_roles prefix %q bit_length %d", ErrBadMetadata, sr.NamePrefix, sr.BitLength)
	}
	for id, k := range d.Keys {
		pk, err := publicKeyFromTUF(k)
		if err != nil {
			return fmt.Errorf("%w: bins key %s: %w", ErrBadMetadata, id, err)
		}
		if pk.ID() != id {
			return fmt.Errorf("%w: key listed as %s has ID %s", ErrBadMetadata, id, pk.ID())
		}
	}
	return checkRole("bins", sr.KeyIDs, sr.Threshold, d.Keys)
}

// verifyDelegate runs go-tuf's signature check, which counts each public
// key once however many key IDs or signatures name it. go-tuf panics on
// some malformed keys, so a panic is a refusal, not a crash.
func verifyDelegate[T metadata.Roles](delegator *metadata.Metadata[T], role string, m any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: verifying %s: %v", ErrBadMetadata, role, p)
		}
	}()
	if err := delegator.VerifyDelegate(role, m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMetadata, err)
	}
	return nil
}

// PublishRoot verifies a signed root proposal (next version; a threshold
// of the current root keys and a threshold of its own root keys) and
// publishes it. If it changes the snapshot or timestamp key, the new keys
// must already be loaded (AddSigners): snapshot and timestamp are re-signed
// with them in the same commit, since the old signatures stop verifying
// the moment a client sees the new root.
func (r *Repository) PublishRoot(data []byte, now time.Time) (*Commit, error) {
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMetadata, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.begin(now)
	if err := r.publishRootLocked(t, root, data); err != nil {
		return nil, err
	}
	return t.finish()
}

// publishRootLocked checks root and writes it in t. With data nil, root is
// signed here with every local key of the old and new root roles.
func (r *Repository) publishRootLocked(t *txn, root *metadata.Metadata[metadata.RootType], data []byte) error {
	old := r.root
	if root.Signed.Version != old.Signed.Version+1 {
		return fmt.Errorf("%w: root version %d, want %d", ErrBadMetadata, root.Signed.Version, old.Signed.Version+1)
	}
	if err := checkRoot(root); err != nil {
		return err
	}
	if data == nil {
		ids := append(slices.Clone(old.Signed.Roles[metadata.ROOT].KeyIDs), root.Signed.Roles[metadata.ROOT].KeyIDs...)
		if err := sign(root, r.keysFor(ids)); err != nil {
			return err
		}
	}
	if err := verifyDelegate(old, metadata.ROOT, root); err != nil {
		return fmt.Errorf("tufrepo: new root not signed by the old root's threshold: %w", err)
	}
	if err := verifyDelegate(root, metadata.ROOT, root); err != nil {
		return fmt.Errorf("tufrepo: new root not signed by its own threshold: %w", err)
	}
	changed := func(role string) bool {
		return !slices.Equal(sortedIDs(old.Signed.Roles[role].KeyIDs), sortedIDs(root.Signed.Roles[role].KeyIDs)) ||
			old.Signed.Roles[role].Threshold != root.Signed.Roles[role].Threshold
	}
	if r.snapshot != nil && (changed(metadata.SNAPSHOT) || changed(metadata.TIMESTAMP)) {
		for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
			if _, err := r.roleKeys(root, role); err != nil {
				return fmt.Errorf("tufrepo: load the new %s key before publishing the root: %w", role, err)
			}
		}
		// Re-sign both: after a leak, clients must drop the snapshot and
		// timestamp they cached (possibly fast-forwarded by the thief),
		// which TUF clients do when the keys change.
		t.forceSnapshot = true
	}
	enc, err := root.ToBytes(false)
	if err != nil {
		return fmt.Errorf("tufrepo: encode root: %w", err)
	}
	return t.writeRoot(root, enc)
}

func sortedIDs(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

// RotateRoot makes, signs (with every local root key of the old and new
// root) and publishes the next root version: the one-step form of
// ProposeRoot, SignMetadata, PublishRoot for when all keys are at hand.
func (r *Repository) RotateRoot(ch RootChange, now time.Time) (*Commit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	root, err := r.proposeRootLocked(ch, now)
	if err != nil {
		return nil, err
	}
	t := r.begin(now)
	if err := r.publishRootLocked(t, root, nil); err != nil {
		return nil, err
	}
	return t.finish()
}

// ProposeTargets returns the unsigned next top-level targets version with
// ch applied and a fresh expiry.
func (r *Repository) ProposeTargets(ch TargetsChange, now time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.proposeTargetsLocked(ch, now)
	if err != nil {
		return nil, err
	}
	return t.ToBytes(true)
}

func (r *Repository) proposeTargetsLocked(ch TargetsChange, now time.Time) (*metadata.Metadata[metadata.TargetsType], error) {
	t, err := copyMeta(r.targets)
	if err != nil {
		return nil, err
	}
	t.ClearSignatures()
	t.Signed.Version++
	t.Signed.Expires = expiresAt(now, r.opts.Expiry.Targets)
	sr := t.Signed.Delegations.SuccinctRoles
	if !ch.BinsKey.IsZero() {
		t.Signed.Delegations.Keys = map[string]*metadata.Key{ch.BinsKey.ID(): ch.BinsKey.tufKey()}
		sr.KeyIDs, sr.Threshold = []string{ch.BinsKey.ID()}, 1
	}
	if ch.BinBits != 0 {
		sr.BitLength = ch.BinBits
	}
	if err := checkTargets(t); err != nil {
		return nil, err
	}
	return t, nil
}

// PublishTargets verifies a signed targets proposal (next version, a
// threshold of the root's targets keys) and publishes it. If it changes the
// bins key or the bin count, every bin is re-signed (and re-grouped) with
// the delegated key, which must be loaded. This is how a leaked bins key is
// replaced: the old key's bins stop verifying as soon as clients see the
// new targets, which arrive in the same snapshot as the re-signed bins.
func (r *Repository) PublishTargets(data []byte, now time.Time) (*Commit, error) {
	t, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMetadata, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.publishTargetsLocked(t, false, now)
}

func (r *Repository) publishTargetsLocked(targets *metadata.Metadata[metadata.TargetsType], signHere bool, now time.Time) (*Commit, error) {
	if targets.Signed.Version != r.targets.Signed.Version+1 {
		return nil, fmt.Errorf("%w: targets version %d, want %d", ErrBadMetadata, targets.Signed.Version, r.targets.Signed.Version+1)
	}
	if err := checkTargets(targets); err != nil {
		return nil, err
	}
	if signHere {
		keys, err := r.roleKeys(r.root, metadata.TARGETS)
		if err != nil {
			return nil, err
		}
		if err := sign(targets, keys); err != nil {
			return nil, err
		}
	}
	if err := verifyDelegate(r.root, metadata.TARGETS, targets); err != nil {
		return nil, err
	}
	oldSR, newSR := r.targets.Signed.Delegations.SuccinctRoles, targets.Signed.Delegations.SuccinctRoles
	regroup := oldSR.BitLength != newSR.BitLength || !slices.Equal(sortedIDs(oldSR.KeyIDs), sortedIDs(newSR.KeyIDs))
	if regroup && r.snapshot != nil {
		if _, err := r.binKey(targets); err != nil {
			return nil, fmt.Errorf("tufrepo: load the new bins key before publishing targets: %w", err)
		}
	}
	enc, err := targets.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: encode targets: %w", err)
	}
	t := r.begin(now)
	if err := t.writeTargets(targets, enc); err != nil {
		return nil, err
	}
	if regroup && r.snapshot != nil {
		if err := t.signBins(r.regroupJobs(oldSR.BitLength, newSR.BitLength)); err != nil {
			return nil, err
		}
	}
	if r.snapshot == nil {
		// Still initialized offline: nothing online to update yet.
		r.targets = targets
		return r.versions(), nil
	}
	return t.finish()
}

// RotateBinsKey replaces the bins' online key with newKey (whose private
// half must be loaded), signing the new targets with the local targets
// keys: the one-step form of ProposeTargets, SignMetadata, PublishTargets.
func (r *Repository) RotateBinsKey(newKey PublicKey, now time.Time) (*Commit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.proposeTargetsLocked(TargetsChange{BinsKey: newKey}, now)
	if err != nil {
		return nil, err
	}
	return r.publishTargetsLocked(t, true, now)
}
