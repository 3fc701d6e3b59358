package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/httpapi"
)

// devOptions are odi dev's flags.
type devOptions struct {
	relays   int
	addr     string
	data     string
	catalogs []config.CatalogSource
	quota    config.Size
	logLevel string
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts := devOptions{relays: 3, addr: "127.0.0.1:8080", quota: 1 << 30, logLevel: "warn"}
	fs := newFlagSet("odi dev", stderr)
	fs.IntVar(&opts.relays, "relays", opts.relays, "number of relays")
	fs.StringVar(&opts.addr, "addr", opts.addr, "directory `address` (a free port is used if it is taken)")
	fs.StringVar(&opts.data, "data", "", "keep the network's state in this `folder` (default: a temporary folder, removed at exit)")
	fs.Var(config.CatalogFlag(&opts.catalogs), "catalog", "publish `NAME=PATH` instead of the sample catalog (repeatable)")
	fs.Var(&opts.quota, "quota", "disk quota of each relay (`SIZE`)")
	fs.StringVar(&opts.logLevel, "log-level", opts.logLevel, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var probs config.Problems
	if opts.relays < 0 || opts.relays > 64 {
		probs.Addf("--relays: %d is not between 0 and 64", opts.relays)
	}
	for _, c := range opts.catalogs {
		if err := catalog.ValidateName(c.Name); err != nil {
			probs.Addf("--catalog %s: %v", c.Name, err)
		}
		if fi, err := os.Stat(c.Path); err != nil || !fi.IsDir() {
			probs.Addf("--catalog %s: %s is not a folder", c.Name, c.Path)
		}
	}
	logCfg := config.Log{Level: opts.logLevel, Format: "text"}
	logCfg.Check(&probs)
	if err := probs.Err("odi dev"); err != nil {
		return err
	}

	root := opts.data
	if root == "" {
		tmp, err := os.MkdirTemp("", "odi-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	addr := opts.addr
	if ln, err := net.Listen("tcp", addr); err != nil {
		fmt.Fprintf(stderr, "odi dev: %s is taken; using a free port\n", addr)
		addr = "127.0.0.1:0"
	} else {
		ln.Close()
	}
	start := time.Now()
	nw, err := devnet.Start(ctx, devnet.Options{
		Relays: opts.relays, DirectoryAddr: addr, Root: root, Catalogs: opts.catalogs,
		Logger: newLogger(stderr, logCfg),
	})
	if err != nil {
		return err
	}
	defer nw.Close()
	if err := nw.WaitReady(ctx, 60*time.Second); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	printDevBanner(ctx, stdout, nw, time.Since(start))
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping")
	return nil
}

func printDevBanner(ctx context.Context, w io.Writer, n *devnet.Network, took time.Duration) {
	st := n.Directory.Server.Status()
	fmt.Fprintf(w, "ODI network up in %s\n\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "  directory  %s\n", n.Directory.URL)
	for _, r := range n.Relays {
		fmt.Fprintf(w, "  relay      %s\n", r.URL)
	}
	var example string
	for _, c := range st.Catalogs {
		fmt.Fprintf(w, "  catalog    %s: %d artifacts, version %d\n", c.Name, c.Artifacts, c.Version)
		if example == "" {
			example = c.Name + "/" + firstArtifact(ctx, n, c.Name)
		}
	}
	fmt.Fprintf(w, "\nTry it:\n\n")
	fmt.Fprintf(w, "  curl -L -O %s/r/%s\n", n.Directory.URL, example)
	fmt.Fprintf(w, "  curl -sI %s/r/%s    # the 302 to a relay\n", n.Directory.URL, example)
	fmt.Fprintf(w, "  %s/r/%s?mirrorlist    # the relays, ranked for you (JSON with Accept: application/json)\n", n.Directory.URL, example)
	fmt.Fprintf(w, "  curl -s %s/api/v1/status\n", n.Directory.URL)
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}

// firstArtifact names an artifact of catalog name for the banner,
// preferring a tarball.
func firstArtifact(ctx context.Context, n *devnet.Network, name string) string {
	page, err := httpapi.NewClient(n.Directory.URL, http.DefaultClient).Changes(ctx, name, 0, "")
	if err != nil || len(page.Changes) == 0 {
		return "<path>"
	}
	pick := page.Changes[0].Path
	for _, c := range page.Changes {
		if strings.HasSuffix(c.Path, ".tar.gz") && !c.Deleted {
			pick = c.Path
			break
		}
	}
	return catalog.EscapePath(pick)
}
