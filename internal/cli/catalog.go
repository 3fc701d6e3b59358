package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/directory"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// subcommands dispatches "odi <group> <sub> ...".
func subcommands(group string, subs map[string]command) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprintf(stderr, "Usage: odi %s <command> [flags]\n\nCommands:\n", group)
			for _, name := range sortedKeys(subs) {
				fmt.Fprintf(stderr, "  %-16s %s\n", name, subs[name].summary)
			}
			if len(args) == 0 {
				return &usageError{fmt.Sprintf("odi %s: a command is required", group)}
			}
			return nil
		}
		sub, ok := subs[args[0]]
		if !ok {
			return &usageError{fmt.Sprintf("odi %s: unknown command %q", group, args[0])}
		}
		return sub.run(ctx, args[1:], stdout, stderr)
	}
}

func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return subcommands("catalog", map[string]command{
		"init":   {"create a catalog's signing keys (offline ones encrypted) and its signed metadata", runCatalogInit},
		"status": {"show a catalog's signed metadata: versions, expiries, bins, keys at hand", runCatalogStatus},
		"rescan": {"publish a catalog's folder again, or only the paths given (O(changes))", runCatalogRescan},
	})(ctx, args, stdout, stderr)
}

// catalogRepoDir is where a directory keeps catalog name's metadata.
func catalogRepoDir(data, name string) string { return filepath.Join(data, "tuf", name) }

func runCatalogInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi catalog init", stderr)
	keys := fs.String("keys", "", "`folder` to write the catalog's keys into (must not hold keys yet)")
	data := fs.String("data", "", "the directory's data `folder`: also create the catalog's signed metadata there")
	rootN := fs.Int("root-keys", 3, "number of root keys")
	rootT := fs.Int("root-threshold", 2, "root keys needed to sign a new root")
	targetsN := fs.Int("targets-keys", 1, "number of targets keys")
	targetsT := fs.Int("targets-threshold", 1, "targets keys needed to sign targets")
	expected := fs.Int("expected", 1000, "expected number of artifacts (chooses the number of bins)")
	passFile := fs.String("passphrase-file", "", "read the passphrase for the offline keys from this `file` (else $"+directory.PassphraseEnv+", else a prompt)")
	setUsage(fs, stderr, "Usage: odi catalog init --keys DIR [--data DIR] [flags] NAME")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var probs []string
	if fs.NArg() != 1 {
		probs = append(probs, "want exactly one catalog NAME")
	} else if err := catalog.ValidateName(fs.Arg(0)); err != nil {
		probs = append(probs, err.Error())
	}
	if *keys == "" {
		probs = append(probs, "--keys is required")
	}
	if *rootT < 1 || *rootT > *rootN {
		probs = append(probs, fmt.Sprintf("--root-threshold %d must be between 1 and --root-keys %d", *rootT, *rootN))
	}
	if *targetsT < 1 || *targetsT > *targetsN {
		probs = append(probs, fmt.Sprintf("--targets-threshold %d must be between 1 and --targets-keys %d", *targetsT, *targetsN))
	}
	if *expected < 0 {
		probs = append(probs, "--expected must not be negative")
	}
	if len(probs) > 0 {
		return &usageError{"odi catalog init: " + strings.Join(probs, "; ")}
	}
	name := fs.Arg(0)
	if _, err := os.Stat(filepath.Join(*keys, "keyset.json")); err == nil {
		return fmt.Errorf("%s already holds a key set; refusing to overwrite keys", *keys)
	}
	repoDir := ""
	if *data != "" {
		repoDir = catalogRepoDir(*data, name)
		if _, err := os.Stat(filepath.Join(repoDir, "1.root.json")); err == nil {
			return fmt.Errorf("catalog %s already has signed metadata in %s", name, repoDir)
		}
	}
	pass, err := passphrase(*passFile, stderr, true)
	if err != nil {
		return err
	}
	ks, err := tufrepo.GenerateKeySet(*rootN, *rootT, *targetsN, *targetsT)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*keys, 0o700); err != nil {
		return err
	}
	if err := ks.Save(*keys, pass); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Keys of catalog %s written to %s:\n", name, *keys)
	for i, k := range ks.Root {
		fmt.Fprintf(stdout, "  root-%d.key     %s  (encrypted; offline)\n", i+1, k.ID())
	}
	for i, k := range ks.Targets {
		fmt.Fprintf(stdout, "  targets-%d.key  %s  (encrypted; offline)\n", i+1, k.ID())
	}
	fmt.Fprintf(stdout, "  snapshot.key, timestamp.key, bins.key  (online: the directory uses them)\n")
	if repoDir != "" {
		if _, err := tufrepo.Init(repoDir, ks.InitOptions(*expected), tufrepo.Options{Signers: ks.All()}, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Signed metadata created in %s (root needs %d of %d keys).\n", repoDir, *rootT, *rootN)
	}
	fmt.Fprintf(stdout, "\nNext: give each root-*.key and targets-*.key to its holder and remove them from\n")
	fmt.Fprintf(stdout, "this machine; point the directory at the folder with the online keys:\n\n")
	fmt.Fprintf(stdout, "  [[catalog]]\n  name = %q\n  path = \"/srv/%s\"\n  keys = %q\n", name, name, *keys)
	return nil
}

func runCatalogStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi catalog status", stderr)
	data := fs.String("data", "", "the directory's data `folder`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *data == "" {
		return &usageError{"usage: odi catalog status --data DIR NAME"}
	}
	r, err := tufrepo.Open(catalogRepoDir(*data, fs.Arg(0)), tufrepo.Options{})
	if err != nil {
		return err
	}
	st := r.Status()
	fmt.Fprintf(stdout, "catalog %s: %d artifacts in %d bins\n", fs.Arg(0), st.Artifacts, st.Bins)
	fmt.Fprintf(stdout, "  root       v%-6d expires %s\n", st.Root, st.RootExpires.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "  targets    v%-6d expires %s\n", st.Targets, st.TargetsExpires.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "  snapshot   v%-6d expires %s\n", st.Snapshot, st.SnapshotExpires.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "  timestamp  v%-6d expires %s\n", st.Timestamp, st.TimestampExpires.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "  oldest bin expires %s\n", st.OldestBinExpires.UTC().Format(time.RFC3339))
	if st.NeedsRebin {
		fmt.Fprintln(stdout, "  the catalog has outgrown its bins: re-bin with the targets keys")
	}
	return nil
}

// passphrase returns the passphrase for offline keys: from file, from the
// environment, or asked on the terminal (twice when creating keys).
func passphrase(file string, stderr io.Writer, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("%s is empty", file)
		}
		return b, nil
	}
	if p := os.Getenv(directory.PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, errors.New("offline keys are encrypted: give a passphrase with --passphrase-file or $" + directory.PassphraseEnv)
	}
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		return b, err
	}
	p, err := read("Passphrase for the offline keys: ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		again, err := read("Again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passphrases differ")
		}
	}
	return p, nil
}

func runCatalogRescan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi catalog rescan", stderr)
	dir := fs.String("directory", "", "the directory's `URL`")
	token := fs.String("token", "", "admin `token` (default $"+adminTokenEnv+")")
	fromFile := fs.String("paths-from", "", "read the changed paths from this `file`, one per line (- for standard input)")
	setUsage(fs, stderr, `Usage: odi catalog rescan --directory URL NAME [PATH...]

Publishes the catalog's folder again. With paths (added, changed or deleted
files, relative to the folder), only those are looked at.`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return &usageError{"odi catalog rescan: a catalog NAME is required"}
	}
	c, err := adminClient(*dir, *token)
	if err != nil {
		return err
	}
	paths := fs.Args()[1:]
	if *fromFile != "" {
		var r io.Reader = os.Stdin
		if *fromFile != "-" {
			f, err := os.Open(*fromFile)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if p := strings.TrimSpace(sc.Text()); p != "" {
				paths = append(paths, p)
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	res, err := c.Rescan(ctx, fs.Arg(0), paths)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog %s: version %d (%d added, %d changed, %d removed)\n", res.Catalog, res.Version, res.Added, res.Changed, res.Removed)
	return nil
}
