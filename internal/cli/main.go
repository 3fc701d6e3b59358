// Package cli implements the odi command: one file per subcommand, each
// filling its options and calling runX(ctx, ...). It is the only package
// that knows both the directory and the relay, and the only one that opens
// sockets, handles signals and decides server timeouts.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/opendistribution/odi/internal/config"
)

// command is one odi subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand.
func commands() map[string]command {
	return map[string]command{
		"directory": {"run a directory: publish catalogs and redirect downloads to relays", runDirectory},
		"relay":     {"run a relay (odi relay drain|undrain: take it out of service and back)", runRelay},
		"dev":       {"run a whole network (directory, relays, sample catalog) on loopback", runDev},
		"catalog":   {"create and inspect a catalog's signing keys and signed metadata", runCatalog},
		"keys":      {"rotate a catalog's root key, replace a leaked online key, sign proposals", runKeys},
		"expunge":   {"withdraw an artifact at once and see which relays confirmed deleting it", runExpunge},
		"get":       {"download an artifact, verified against its catalog's signed metadata", runGet},
		"version":   {"print the version", runVersion},
	}
}

// Main runs odi with args (without the program name) and returns the exit
// code: 0 on success, 2 for a usage or configuration error, 1 otherwise.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "odi: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	var ce *config.Error
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ce), errors.As(err, new(*usageError)):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintf(stderr, "odi %s: %v\n", args[0], err)
		return 1
	}
}

// usageError is a mistake in how a command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "odi distributes the release artifacts of open-source projects through")
	fmt.Fprintln(w, "directories that redirect each download to a relay holding a verified copy.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: odi <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, n := range sortedKeys(cmds) {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "odi <command> -h" for the flags of a command.`)
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintln(stdout, "odi", version())
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return strings.TrimSpace(v)
	}
	return "unknown"
}

// newLogger builds the daemon's logger from its settings.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(l.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, stderr, "Usage: "+name+" [flags]")
	return fs
}

// setUsage makes fs's usage text, then its flags.
func setUsage(fs *flag.FlagSet, stderr io.Writer, text string) {
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", text)
		fs.PrintDefaults()
	}
}

func sortedKeys(m map[string]command) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
