package tufrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// KeySet is every key of one catalog's repository. In production the
// offline halves (Root, Targets) live with the catalog's owners and the
// directory holds only Online(); the demo keeps a whole KeySet in the
// directory's data folder.
type KeySet struct {
	Root             []*PrivateKey
	RootThreshold    int
	Targets          []*PrivateKey
	TargetsThreshold int
	Snapshot         *PrivateKey
	Timestamp        *PrivateKey
	Bins             *PrivateKey
}

// GenerateKeySet makes fresh keys: rootKeys root keys of which
// rootThreshold must sign, likewise for targets, and one key per online role.
func GenerateKeySet(rootKeys, rootThreshold, targetsKeys, targetsThreshold int) (*KeySet, error) {
	if rootKeys < 1 || rootThreshold < 1 || rootThreshold > rootKeys ||
		targetsKeys < 1 || targetsThreshold < 1 || targetsThreshold > targetsKeys {
		return nil, fmt.Errorf("tufrepo: key set: thresholds %d-of-%d, %d-of-%d", rootThreshold, rootKeys, targetsThreshold, targetsKeys)
	}
	ks := &KeySet{RootThreshold: rootThreshold, TargetsThreshold: targetsThreshold}
	gen := func(n int) ([]*PrivateKey, error) {
		var out []*PrivateKey
		for range n {
			k, err := GenerateKey()
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		return out, nil
	}
	var err error
	if ks.Root, err = gen(rootKeys); err != nil {
		return nil, err
	}
	if ks.Targets, err = gen(targetsKeys); err != nil {
		return nil, err
	}
	online, err := gen(3)
	if err != nil {
		return nil, err
	}
	ks.Snapshot, ks.Timestamp, ks.Bins = online[0], online[1], online[2]
	return ks, nil
}

func publics(ks []*PrivateKey) []PublicKey {
	out := make([]PublicKey, len(ks))
	for i, k := range ks {
		out[i] = k.Public()
	}
	return out
}

// InitOptions describes a repository using these keys.
func (ks *KeySet) InitOptions(expectedArtifacts int) InitOptions {
	return InitOptions{
		RootKeys: publics(ks.Root), RootThreshold: ks.RootThreshold,
		TargetsKeys: publics(ks.Targets), TargetsThreshold: ks.TargetsThreshold,
		SnapshotKey: ks.Snapshot.Public(), TimestampKey: ks.Timestamp.Public(), BinsKey: ks.Bins.Public(),
		ExpectedArtifacts: expectedArtifacts,
	}
}

// Online returns the keys the home directory holds in production.
func (ks *KeySet) Online() []*PrivateKey { return []*PrivateKey{ks.Snapshot, ks.Timestamp, ks.Bins} }

// All returns every key.
func (ks *KeySet) All() []*PrivateKey {
	out := append([]*PrivateKey{}, ks.Root...)
	out = append(out, ks.Targets...)
	return append(out, ks.Online()...)
}

// keySetManifest records the thresholds next to the key files.
type keySetManifest struct {
	RootKeys         int `json:"root_keys"`
	RootThreshold    int `json:"root_threshold"`
	TargetsKeys      int `json:"targets_keys"`
	TargetsThreshold int `json:"targets_threshold"`
}

const keySetManifestName = "keyset.json"

// Save writes the key set into dir: root-N.key and targets-N.key
// (encrypted with passphrase, or plain if it is empty: the demo),
// snapshot.key, timestamp.key and bins.key (plain: the directory loads them
// unattended), and keyset.json with the thresholds. Existing files are
// never overwritten.
func (ks *KeySet) Save(dir string, passphrase []byte) error {
	save := func(name string, k *PrivateKey, pass []byte) error {
		p := filepath.Join(dir, name)
		if len(pass) == 0 {
			return SavePlainPrivateKey(p, k)
		}
		return SavePrivateKey(p, k, pass)
	}
	for i, k := range ks.Root {
		if err := save("root-"+strconv.Itoa(i+1)+".key", k, passphrase); err != nil {
			return err
		}
	}
	for i, k := range ks.Targets {
		if err := save("targets-"+strconv.Itoa(i+1)+".key", k, passphrase); err != nil {
			return err
		}
	}
	for name, k := range map[string]*PrivateKey{"snapshot.key": ks.Snapshot, "timestamp.key": ks.Timestamp, "bins.key": ks.Bins} {
		if err := save(name, k, nil); err != nil {
			return err
		}
	}
	m, _ := json.MarshalIndent(keySetManifest{len(ks.Root), ks.RootThreshold, len(ks.Targets), ks.TargetsThreshold}, "", "  ")
	return writeNewFile(filepath.Join(dir, keySetManifestName), append(m, '\n'), 0o600)
}

// LoadKeySet reads what Save wrote. Offline key files that are missing
// (moved offline after the demo) are skipped, so the result may hold only
// the online keys; passphrase decrypts encrypted ones.
func LoadKeySet(dir string, passphrase []byte) (*KeySet, error) {
	data, err := os.ReadFile(filepath.Join(dir, keySetManifestName))
	if err != nil {
		return nil, fmt.Errorf("tufrepo: load key set: %w", err)
	}
	var m keySetManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("tufrepo: load key set: %s: %w", keySetManifestName, err)
	}
	ks := &KeySet{RootThreshold: m.RootThreshold, TargetsThreshold: m.TargetsThreshold}
	load := func(name string, optional bool) (*PrivateKey, error) {
		k, err := LoadPrivateKey(filepath.Join(dir, name), passphrase)
		if optional && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return k, err
	}
	for i := range m.RootKeys {
		k, err := load("root-"+strconv.Itoa(i+1)+".key", true)
		if err != nil {
			return nil, err
		}
		if k != nil {
			ks.Root = append(ks.Root, k)
		}
	}
	for i := range m.TargetsKeys {
		k, err := load("targets-"+strconv.Itoa(i+1)+".key", true)
		if err != nil {
			return nil, err
		}
		if k != nil {
			ks.Targets = append(ks.Targets, k)
		}
	}
	for _, p := range []struct {
		name string
		dst  **PrivateKey
	}{{"snapshot.key", &ks.Snapshot}, {"timestamp.key", &ks.Timestamp}, {"bins.key", &ks.Bins}} {
		k, err := load(p.name, false)
		if err != nil {
			return nil, err
		}
		*p.dst = k
	}
	return ks, nil
}
