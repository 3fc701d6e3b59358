package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/directory"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// The key flows change a catalog's signed metadata in the directory's data
// folder. Run them while the directory is stopped (it keeps the metadata
// open), then start it again; relays and clients follow the new root at
// their next refresh. doc/operating.md walks through each flow.

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return subcommands("keys", map[string]command{
		"generate":        {"generate one key pair (FILE encrypted, FILE.pub public)", runKeysGenerate},
		"rotate-root":     {"replace every root key with new ones (all keys at hand)", runKeysRotateRoot},
		"replace-online":  {"replace a leaked snapshot, timestamp or bins key", runKeysReplaceOnline},
		"propose-root":    {"write the next root version for key holders to sign", runKeysProposeRoot},
		"propose-targets": {"write the next targets version (new bins key) for key holders to sign", runKeysProposeTargets},
		"sign":            {"add one key holder's signature to a proposal", runKeysSign},
		"publish-root":    {"publish a root proposal signed by enough holders", runKeysPublish("root")},
		"publish-targets": {"publish a targets proposal signed by enough holders", runKeysPublish("targets")},
	})(ctx, args, stdout, stderr)
}

// keyFlags are the flags every flow on a catalog's repository shares.
type keyFlags struct {
	data, keys, passFile string
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.data, "data", "", "the directory's data `folder`")
	fs.StringVar(&k.keys, "keys", "", "the catalog's key `folder` (from odi catalog init)")
	fs.StringVar(&k.passFile, "passphrase-file", "", "passphrase `file` for encrypted keys (else $ODI_KEY_PASSPHRASE, else a prompt)")
}

// parse checks the common flags and returns the catalog name.
func (k *keyFlags) parse(fs *flag.FlagSet, args []string, needKeys bool) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	var probs []string
	if fs.NArg() != 1 {
		probs = append(probs, "want exactly one catalog NAME after the flags")
	}
	if k.data == "" {
		probs = append(probs, "--data is required")
	}
	if needKeys && k.keys == "" {
		probs = append(probs, "--keys is required")
	}
	if len(probs) > 0 {
		return "", &usageError{fs.Name() + ": " + strings.Join(probs, "; ")}
	}
	return fs.Arg(0), nil
}

func (k *keyFlags) loadKeySet(stderr io.Writer) (*tufrepo.KeySet, []byte, error) {
	pass, err := passphrase(k.passFile, stderr, false)
	if err != nil {
		return nil, nil, err
	}
	ks, err := tufrepo.LoadKeySet(k.keys, pass)
	if errors.Is(err, tufrepo.ErrWrongPassphrase) {
		return nil, nil, fmt.Errorf("wrong passphrase for the keys in %s", k.keys)
	}
	return ks, pass, err
}

// rewriteKeySet saves ks into dir, first moving the key files there into
// dir/retired-<unix time>/: a replaced key is kept, never overwritten, in
// case a flow has to be undone.
func rewriteKeySet(dir string, ks *tufrepo.KeySet, pass []byte) error {
	retired := filepath.Join(dir, "retired-"+strconv.FormatInt(time.Now().Unix(), 10))
	if err := os.MkdirAll(retired, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".key") || e.Name() == "keyset.json") {
			continue
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(retired, e.Name())); err != nil {
			return err
		}
	}
	return ks.Save(dir, pass)
}

func runKeysGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys generate", stderr)
	out := fs.String("out", "", "write the private key to this `file` and the public key to FILE.pub")
	passFile := fs.String("passphrase-file", "", "passphrase `file` (else $ODI_KEY_PASSPHRASE, else a prompt)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return &usageError{"usage: odi keys generate --out FILE"}
	}
	pass, err := passphrase(*passFile, stderr, true)
	if err != nil {
		return err
	}
	k, err := tufrepo.GenerateKey()
	if err != nil {
		return err
	}
	if err := tufrepo.SavePrivateKey(*out, k, pass); err != nil {
		return err
	}
	if err := tufrepo.SavePublicKey(*out+".pub", k.Public()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: private %s (encrypted), public %s.pub\n", k.ID(), *out, *out)
	return nil
}

func runKeysRotateRoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys rotate-root", stderr)
	var kf keyFlags
	kf.register(fs)
	n := fs.Int("root-keys", 0, "number of new root keys (default: as many as now)")
	t := fs.Int("root-threshold", 0, "new root threshold (default: as now)")
	name, err := kf.parse(fs, args, true)
	if err != nil {
		return err
	}
	ks, pass, err := kf.loadKeySet(stderr)
	if err != nil {
		return err
	}
	if *n == 0 {
		*n = len(ks.Root)
	}
	if *t == 0 {
		*t = ks.RootThreshold
	}
	if *n < 1 || *t < 1 || *t > *n {
		return &usageError{fmt.Sprintf("odi keys rotate-root: threshold %d of %d keys is not possible", *t, *n)}
	}
	var fresh []*tufrepo.PrivateKey
	var pubs []tufrepo.PublicKey
	for range *n {
		k, err := tufrepo.GenerateKey()
		if err != nil {
			return err
		}
		fresh = append(fresh, k)
		pubs = append(pubs, k.Public())
	}
	r, err := tufrepo.Open(catalogRepoDir(kf.data, name), tufrepo.Options{Signers: append(ks.All(), fresh...)})
	if err != nil {
		return err
	}
	c, err := r.RotateRoot(tufrepo.RootChange{RootKeys: pubs, RootThreshold: *t}, time.Now())
	if err != nil {
		return err
	}
	ks.Root, ks.RootThreshold = fresh, *t
	if err := rewriteKeySet(kf.keys, ks, pass); err != nil {
		return fmt.Errorf("root v%d is published but the new keys could not be saved: %w", c.Root, err)
	}
	fmt.Fprintf(stdout, "catalog %s: root v%d published with %d new root keys (%d needed); old keys moved to %s/retired-*\n", name, c.Root, *n, *t, kf.keys)
	return nil
}

func runKeysReplaceOnline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys replace-online", stderr)
	var kf keyFlags
	kf.register(fs)
	role := fs.String("role", "", "the leaked key's role: snapshot, timestamp or bins")
	name, err := kf.parse(fs, args, true)
	if err != nil {
		return err
	}
	if *role != "snapshot" && *role != "timestamp" && *role != "bins" {
		return &usageError{fmt.Sprintf("odi keys replace-online: --role must be snapshot, timestamp or bins, not %q", *role)}
	}
	ks, pass, err := kf.loadKeySet(stderr)
	if err != nil {
		return err
	}
	fresh, err := tufrepo.GenerateKey()
	if err != nil {
		return err
	}
	r, err := tufrepo.Open(catalogRepoDir(kf.data, name), tufrepo.Options{Signers: append(ks.All(), fresh)})
	if err != nil {
		return err
	}
	var c *tufrepo.Commit
	now := time.Now()
	switch *role {
	case "snapshot":
		c, err = r.RotateRoot(tufrepo.RootChange{SnapshotKey: fresh.Public()}, now)
		ks.Snapshot = fresh
	case "timestamp":
		c, err = r.RotateRoot(tufrepo.RootChange{TimestampKey: fresh.Public()}, now)
		ks.Timestamp = fresh
	case "bins":
		c, err = r.RotateBinsKey(fresh.Public(), now)
		ks.Bins = fresh
	}
	if err != nil {
		return err
	}
	if err := rewriteKeySet(kf.keys, ks, pass); err != nil {
		return fmt.Errorf("the new %s key is in effect but could not be saved: %w", *role, err)
	}
	fmt.Fprintf(stdout, "catalog %s: %s key replaced by %s (root v%d, targets v%d); the old key is in %s/retired-*\n",
		name, *role, fresh.ID(), c.Root, c.Targets, kf.keys)
	return nil
}

// pubList is a repeatable flag of public key files.
type pubList []tufrepo.PublicKey

func (p *pubList) String() string { return fmt.Sprint(len(*p), " keys") }

func (p *pubList) Set(path string) error {
	k, err := tufrepo.LoadPublicKey(path)
	if err != nil {
		return err
	}
	*p = append(*p, k)
	return nil
}

// pendingKey generates the next key of an online role into the key folder
// as <role>.key.next (unencrypted: the directory will load it unattended)
// and returns its public half for the proposal. Publishing promotes it.
func pendingKey(dir, role string) (tufrepo.PublicKey, error) {
	k, err := tufrepo.GenerateKey()
	if err != nil {
		return tufrepo.PublicKey{}, err
	}
	if err := tufrepo.SavePlainPrivateKey(filepath.Join(dir, role+".key.next"), k); err != nil {
		return tufrepo.PublicKey{}, fmt.Errorf("%w (a proposal for a new %s key is already pending?)", err, role)
	}
	return k.Public(), nil
}

// pendingKeys loads the <role>.key.next files in dir.
func pendingKeys(dir string) (map[string]*tufrepo.PrivateKey, error) {
	out := map[string]*tufrepo.PrivateKey{}
	for _, role := range []string{"snapshot", "timestamp", "bins"} {
		k, err := tufrepo.LoadPrivateKey(filepath.Join(dir, role+".key.next"), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[role] = k
	}
	return out, nil
}

func runKeysProposeRoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys propose-root", stderr)
	var kf keyFlags
	kf.register(fs)
	var roots, targets pubList
	fs.Var(&roots, "root-key", "public key `file` of a root key holder (repeat for each; default: keep the current keys)")
	th := fs.Int("root-threshold", 0, "root keys needed (default: keep)")
	fs.Var(&targets, "targets-key", "public key `file` of a targets key holder (repeatable; default: keep)")
	tth := fs.Int("targets-threshold", 0, "targets keys needed (default: keep)")
	newSnap := fs.Bool("new-snapshot", false, "replace the snapshot key: a new one is generated into the key folder")
	newTS := fs.Bool("new-timestamp", false, "replace the timestamp key: a new one is generated into the key folder")
	out := fs.String("out", "", "write the proposal to this `file`")
	name, err := kf.parse(fs, args, *newSnap || *newTS)
	if err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"odi keys propose-root: --out is required"}
	}
	r, err := tufrepo.Open(catalogRepoDir(kf.data, name), tufrepo.Options{})
	if err != nil {
		return err
	}
	ch := tufrepo.RootChange{RootKeys: roots, RootThreshold: *th, TargetsKeys: targets, TargetsThreshold: *tth}
	if *newSnap {
		if ch.SnapshotKey, err = pendingKey(kf.keys, "snapshot"); err != nil {
			return err
		}
	}
	if *newTS {
		if ch.TimestampKey, err = pendingKey(kf.keys, "timestamp"); err != nil {
			return err
		}
	}
	doc, err := r.ProposeRoot(ch, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "proposal written to %s: have a threshold of the current and of the new root keys sign it (odi keys sign), then publish it (odi keys publish-root)\n", *out)
	return nil
}

func runKeysProposeTargets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys propose-targets", stderr)
	var kf keyFlags
	kf.register(fs)
	newBins := fs.Bool("new-bins", false, "replace the bins key: a new one is generated into the key folder")
	out := fs.String("out", "", "write the proposal to this `file`")
	name, err := kf.parse(fs, args, *newBins)
	if err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"odi keys propose-targets: --out is required"}
	}
	r, err := tufrepo.Open(catalogRepoDir(kf.data, name), tufrepo.Options{})
	if err != nil {
		return err
	}
	var ch tufrepo.TargetsChange
	if *newBins {
		if ch.BinsKey, err = pendingKey(kf.keys, "bins"); err != nil {
			return err
		}
	}
	doc, err := r.ProposeTargets(ch, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "proposal written to %s: have a threshold of the targets keys sign it, then publish it (odi keys publish-targets)\n", *out)
	return nil
}

func runKeysSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi keys sign", stderr)
	keyFile := fs.String("key", "", "your private key `file`")
	passFile := fs.String("passphrase-file", "", "passphrase `file` (else $ODI_KEY_PASSPHRASE, else a prompt)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() != 1 {
		return &usageError{"usage: odi keys sign --key FILE PROPOSAL"}
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	var pass []byte
	if tufrepo.IsEncryptedKey(data) {
		if pass, err = passphrase(*passFile, stderr, false); err != nil {
			return err
		}
	}
	k, err := tufrepo.ParsePrivateKey(data, pass)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	signed, err := tufrepo.SignMetadata(doc, k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(fs.Arg(0), signed, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s signed with key %s\n", fs.Arg(0), k.ID())
	return nil
}

func runKeysPublish(kind string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet("odi keys publish-"+kind, stderr)
		var kf keyFlags
		kf.register(fs)
		proposal := fs.String("proposal", "", "the signed proposal `file`")
		name, err := kf.parse(fs, args, true)
		if err != nil {
			return err
		}
		if *proposal == "" {
			return &usageError{"odi keys publish-" + kind + ": --proposal is required"}
		}
		doc, err := os.ReadFile(*proposal)
		if err != nil {
			return err
		}
		// Publishing re-signs with the online keys, including new ones the
		// proposal introduced (<role>.key.next, from propose-*).
		ks, err := directory.LoadSigningKeys(kf.keys)
		if err != nil {
			return err
		}
		next, err := pendingKeys(kf.keys)
		if err != nil {
			return err
		}
		signers := ks.All()
		for _, k := range next {
			signers = append(signers, k)
		}
		r, err := tufrepo.Open(catalogRepoDir(kf.data, name), tufrepo.Options{Signers: signers})
		if err != nil {
			return err
		}
		var c *tufrepo.Commit
		if kind == "root" {
			c, err = r.PublishRoot(doc, time.Now())
		} else {
			c, err = r.PublishTargets(doc, time.Now())
		}
		if err != nil {
			return err
		}
		// Promote the new online keys the published document names.
		for role := range next {
			if kind == "root" && role == "bins" || kind == "targets" && role != "bins" {
				continue
			}
			cur := filepath.Join(kf.keys, role+".key")
			retired := cur + ".retired-" + strconv.FormatInt(time.Now().Unix(), 10)
			if err := os.Rename(cur, retired); err != nil {
				return err
			}
			if err := os.Rename(cur+".next", cur); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "new %s key in use; the old one is %s\n", role, retired)
		}
		fmt.Fprintf(stdout, "catalog %s: published root v%d, targets v%d\n", name, c.Root, c.Targets)
		return nil
	}
}
