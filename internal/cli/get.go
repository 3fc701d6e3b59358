package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/getter"
)

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi get", stderr)
	out := fs.String("o", "", "write to `file` (default: the artifact's name)")
	rootFile := fs.String("root", "", "trust this root metadata `file` instead of the directory's first root")
	quiet := fs.Bool("q", false, "no progress bar")
	setUsage(fs, stderr, `Usage: odi get [-o FILE] [-root FILE] [-q] URL

Downloads http(s)://<directory>/r/<catalog>/<path>, verifying it against the
catalog's signed metadata, resuming a partial download and falling back
to other relays when one fails.`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &usageError{"odi get: want exactly one URL"}
	}
	if _, err := getter.ParseURL(fs.Arg(0)); err != nil {
		return &usageError{"odi get: " + err.Error()}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	opts := getter.Options{
		URL:      fs.Arg(0),
		Output:   *out,
		CacheDir: filepath.Join(cache, "odi"),
		Notice:   func(f string, a ...any) { fmt.Fprintf(stderr, "odi get: "+f+"\n", a...) },
	}
	if *rootFile != "" {
		if opts.Root, err = os.ReadFile(*rootFile); err != nil {
			return err
		}
	}
	if f, ok := stderr.(*os.File); ok && !*quiet && term.IsTerminal(int(f.Fd())) {
		opts.Progress = progressBar(stderr)
	}
	path, err := getter.Download(ctx, opts)
	if opts.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: verified\n", path)
	return nil
}

// progressBar draws at most ten updates a second on one terminal line.
func progressBar(w io.Writer) func(done, total int64) {
	start := time.Now()
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if now.Sub(last) < 100*time.Millisecond && done < total {
			return
		}
		last = now
		pct := 100.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		width := 30
		fill := int(pct / 100 * float64(width))
		rate := float64(done) / max(now.Sub(start).Seconds(), 0.001)
		bar := make([]byte, width)
		for i := range bar {
			if i < fill {
				bar[i] = '='
			} else {
				bar[i] = ' '
			}
		}
		fmt.Fprintf(w, "\r[%s] %5.1f%%  %s / %s  %s/s ", bar, pct, config.Human(done), config.Human(total), config.Human(int64(rate)))
	}
}
