// Package tufrepo signs and verifies catalog metadata: one TUF repository
// per catalog (github.com/theupdateframework/go-tuf/v2 inside), so that a
// relay run by a stranger cannot change one byte undetected, and so that
// any stock TUF client can check what it downloads.
//
// # Roles and keys
//
// All keys are ed25519; key IDs are TUF's (hex SHA-256 of the canonical
// JSON key object).
//
//   - root (offline, threshold configurable, e.g. 2 of 3): lists the keys of
//     the top-level roles. Held by the catalog's owners.
//   - targets (offline, threshold configurable): signs no targets itself; it
//     delegates every path to hashed bins with TAP 15 succinct_roles, all
//     bins signed by one online "bins" key.
//   - bins "bin-00".."bin-ff" (online): each lists length and sha256 of the
//     artifacts whose path hashes into it.
//   - snapshot and timestamp (online, one key each): the home directory
//     holds these and the bins key. Online and offline keys never mix: the
//     package refuses an offline key in an online role.
//
// A leak of the online keys lets a thief sign a false catalog state only
// until the owners rotate those keys; it never lets them change the root.
//
// # Files
//
// A Repository lives in one folder, laid out exactly as a directory serves
// it under /c/<catalog>/tuf/ (consistent_snapshot is on):
//
//	1.root.json, 2.root.json, ...  every root version, kept forever
//	timestamp.json                 the only file that changes in place
//	<v>.snapshot.json              versions of targets and of every bin
//	<v>.targets.json
//	<v>.bin-<hex>.json
//	state.json                     private: per-bin expiry and size
//
// Serve only names for which IsMetadataName is true; versioned files never
// change once written (IsImmutableName) and may be cached forever.
//
// Every write goes to a temporary file that is synced and renamed into
// place. A commit writes bins, then targets, then the snapshot, and
// timestamp.json last, so a reader never sees a timestamp naming a file
// not yet complete; nothing changes for clients until that last rename.
//
// # Bin count
//
// A catalog of n artifacts gets 2^b bins, b the smallest value in
// [MinBinBits, ChosenBinBits] = [4, 16] with n <= 64 * 2^b (BinBits): a bin
// holds 32-64 targets on average, about 5-10 KB. Small bins keep updates
// cheap — an update of k paths re-signs, sends and verifies about k bins —
// while the snapshot, one entry per bin and fetched by every client on every
// update, grows with the bin count: at 200,000 artifacts 4096 bins and a
// 190 KB snapshot; past about four million artifacts the bin count stays
// at 65,536 (a 3 MB snapshot) and the bins grow instead.
//
// When the average reaches four times that (b is two below BinBits(n)),
// the bins are split, but only when the targets keys are loaded (the demo,
// or an owner bringing the targets key for Rebin), since it means re-signing
// targets; Status reports NeedsRebin otherwise. Re-binning reads and
// writes one group of bins at a time. Bin names of the old count stay
// listed in the snapshot, because TUF clients reject a snapshot that
// drops a name they have seen.
//
// # Signing
//
// Init creates the repository (Build fills it from scratch). Apply signs
// one catalog version's changes: it re-signs only the bins holding changed
// paths, then snapshot and timestamp, so k changes cost O(k × bin size)
// plus one snapshot of O(bins). Renew re-signs roles close to expiry; it
// is meant to be called on a timer with the current time. All methods take
// the time explicitly.
//
// # Expiry
//
// Defaults (DefaultExpiry), each role re-signed by Renew once less than
// half of its period remains:
//
//	timestamp  1 day     (renewed every 12 hours, and on every commit)
//	snapshot   7 days    (renewed on every commit, at the latest after 3.5 days)
//	bins       30 days   (renewed when touched, at the latest after 15 days,
//	                      at most Options.MaxRenewBins per call)
//	targets    365 days  (renewed by Renew only if the targets keys are loaded)
//	root       365 days  (likewise with the root keys; otherwise the owners
//	                      must publish a new root before it expires)
//
// A client (and so a relay) cut off from its directory keeps vouching for
// the last state it verified until the timestamp expires, then refuses.
//
// # Rotation flows
//
// Offline documents (root, targets) are changed in three steps that may
// run on different machines: Propose* on the directory's repository
// writes an unsigned proposal; each key holder runs SignMetadata on it in
// turn; Publish* on the directory verifies the thresholds and publishes.
// Rotate* do all three when every key is at hand (demo, tests).
//
// Root N -> N+1 (new root keys, thresholds, or any top-level key):
// ProposeRoot(RootChange); sign with a threshold of the current root keys
// and a threshold of the new root keys; PublishRoot. Clients walk
// 1.root.json, 2.root.json, ... in order, so every version is kept.
//
// Leaked snapshot or timestamp key: generate new keys on the directory and
// AddSigners them; ProposeRoot with the new SnapshotKey/TimestampKey; root
// key holders sign; PublishRoot, which re-signs snapshot and timestamp with
// the new keys in the same commit. Clients then discard the snapshot and
// timestamp they cached (they no longer verify), which is also how they
// recover from a fast-forward attack: a thief who signed versions near 2^62
// cannot make clients refuse the honest, lower versions any more.
//
// Leaked bins key: AddSigners(new key); ProposeTargets(TargetsChange{BinsKey});
// targets key holders sign; PublishTargets, which re-signs every bin with
// the new key together with targets, snapshot and timestamp.
//
// Renewing root or targets before expiry is the same flow with an empty
// change.
//
// # Old versions
//
// Prune deletes snapshot, targets and bin versions superseded more than a
// grace period ago (clients that read the previous timestamp may still
// fetch them); root versions are never deleted.
//
// # Verifying
//
// Client wraps go-tuf's updater (a fresh one per Refresh, since an Updater
// refreshes only once) with the caller's http.Client, a metadata cache
// folder and size limits. Once it trusts a state, a refresh with no new
// root runs TUF's steps on go-tuf's TrustedMetadata itself and checks a
// canonical snapshot over its own bytes (fastsnapshot.go), as it checks
// canonical bins (fastbins.go): go-tuf would decode and re-encode every
// entry. Target returns the signed length and digest of a
// path, loading and verifying its bin once; it never downloads artifacts:
// callers stream them and call TargetInfo.Check. It refuses any path that
// fails catalog.ValidatePath before touching the network, refuses
// delegations ODI never makes, and turns go-tuf panics on malformed signed
// input into errors.
//
// A stock TUF client works too, with the metadata URL /c/<catalog>/tuf/
// and the targets URL /r/<catalog>/: it asks for targets by their
// consistent-snapshot name "<dir>/<sha256>.<name>" (HashedTargetName,
// ParseHashedTargetName).
package tufrepo
