package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/httpapi"
)

// adminTokenEnv names the environment variable the admin commands read the
// directory's admin token from when --token is not given.
const adminTokenEnv = "ODI_ADMIN_TOKEN"

func adminClient(dirURL, token string) (*httpapi.Client, error) {
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	var probs []string
	if dirURL == "" {
		probs = append(probs, "--directory is required")
	}
	if token == "" {
		probs = append(probs, "an admin token is required (--token or $"+adminTokenEnv+")")
	}
	if len(probs) > 0 {
		return nil, &usageError{strings.Join(probs, "; ")}
	}
	return httpapi.NewClient(dirURL, &http.Client{Timeout: 30 * time.Second}).WithAdminToken(token), nil
}

func runExpunge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi expunge", stderr)
	dir := fs.String("directory", "", "the directory's `URL`")
	token := fs.String("token", "", "admin `token` (default $"+adminTokenEnv+")")
	reason := fs.String("reason", "", "why the artifact is withdrawn (shown to operators and relays)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for every relay to confirm")
	list := fs.Bool("list", false, "list expunges and their confirmations instead")
	setUsage(fs, stderr, `Usage: odi expunge --directory URL --reason TEXT CATALOG PATH
       odi expunge --directory URL --list

Withdraws an artifact at once (security defect): no more redirects or
downloads, a new signed catalog version without it, and every relay told to
delete it. Shows which relays confirmed.`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := adminClient(*dir, *token)
	if err != nil {
		return err
	}
	if *list {
		all, err := c.Expunges(ctx)
		if err != nil {
			return err
		}
		for _, e := range all {
			printExpunge(stdout, e)
		}
		return nil
	}
	if fs.NArg() != 2 || *reason == "" {
		fs.Usage()
		return &usageError{"odi expunge: want CATALOG PATH and --reason"}
	}
	e, err := c.Expunge(ctx, httpapi.ExpungeRequest{Catalog: fs.Arg(0), Path: fs.Arg(1), Reason: *reason})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for !allConfirmed(e) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		all, err := c.Expunges(ctx)
		if err != nil {
			return err
		}
		for _, x := range all {
			if x.ID == e.ID {
				e = x
			}
		}
	}
	printExpunge(stdout, e)
	if !allConfirmed(e) {
		return fmt.Errorf("not every relay confirmed within %s; they are told again until they do (odi expunge --list)", *wait)
	}
	return nil
}

func allConfirmed(e httpapi.Expunge) bool {
	for _, r := range e.Relays {
		if !r.Confirmed {
			return false
		}
	}
	return true
}

func printExpunge(w io.Writer, e httpapi.Expunge) {
	confirmed := 0
	for _, r := range e.Relays {
		if r.Confirmed {
			confirmed++
		}
	}
	fmt.Fprintf(w, "expunge %d: catalog %s, %s (sha256 %s), version %d: %s\n", e.ID, e.Catalog, strings.Join(e.Paths, ", "), e.SHA256, e.Version, e.Reason)
	fmt.Fprintf(w, "  %d of %d relays confirmed\n", confirmed, len(e.Relays))
	for _, r := range e.Relays {
		status := "pending"
		if r.Confirmed {
			status = "confirmed " + r.At.Format(time.RFC3339) + " (" + r.Detail + ")"
		}
		fmt.Fprintf(w, "  %-20s %s\n", r.RelayID, status)
	}
}

// runRelayControl runs `odi relay drain|undrain`: on the relay's admin
// listener (--admin) or through the directory's admin API (--directory).
func runRelayControl(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("odi relay "+action, stderr)
	admin := fs.String("admin", "", "the relay's admin listener `address` (relay side)")
	dir := fs.String("directory", "", "the directory's `URL` (directory side)")
	token := fs.String("token", "", "the directory's admin `token` (default $"+adminTokenEnv+")")
	id := fs.String("relay", "", "the relay's `id` (directory side)")
	reason := fs.String("reason", "", "why (directory side; the relay's operator sees it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	drain := action == "drain"
	switch {
	case *admin != "" && *dir == "":
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+*admin+"/"+action, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", *admin, resp.Status, strings.TrimSpace(string(b)))
		}
		fmt.Fprintf(stdout, "relay %sed (transfers in flight finish; the directory sends no new clients while drained)\n", action)
		return nil
	case *dir != "" && *admin == "":
		if *id == "" {
			return &usageError{"odi relay " + action + ": --relay ID is required with --directory"}
		}
		c, err := adminClient(*dir, *token)
		if err != nil {
			return err
		}
		info, err := c.DrainRelay(ctx, *id, drain, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "relay %s: in rotation %v %s\n", info.ID, info.InRotation, info.Reason)
		return nil
	}
	return &usageError{"odi relay " + action + ": give either --admin ADDR (relay side) or --directory URL --relay ID (directory side)"}
}
