package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for t. Without one the test is skipped,
// except in CI (CI=true), whose script installs it: there a missing
// browser is a failure.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium to test the pages with (apt-get install chromium)")
		}
		t.Skip("no Chromium (apt-get install chromium) to test the pages with")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// run runs one browser action and returns its value.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// follow opens page, clicks the link sel and returns the text the browser
// then shows and where it is.
func follow(t *testing.T, ctx context.Context, page string, sel chromedp.CSS) (text, at string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(sel),
		chromedp.Click(sel),
		chromedp.WaitReady(chromedp.CSS("body")),
	)
	if err != nil {
		t.Fatalf("follow %s on %s: %v", sel, page, err)
	}
	// The click starts a navigation; wait until it has left the page.
	WaitFor(t, 10*time.Second, "navigation away from "+page, func() string {
		if at = run(t, ctx, chromedp.Location()); at == page {
			return "still on the page"
		}
		return ""
	})
	return run(t, ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)), at
}

// A person opens the mirror list of an artifact in a browser: the page
// shows the relays the JSON list ranks, in the same order with the same
// reasons, and its Download link and relay links lead to the file itself.
func TestMirrorListPageInABrowser(t *testing.T) {
	const text = "Release notes of version 1.0\n"
	files := map[string][]byte{"docs/notes.txt": []byte(text), "pool/a/app_1.0.tar.gz": []byte(strings.Repeat("tarball ", 999))}
	n, _ := Start(t, Options{Relays: 2, Files: files, DirectoryArgs: []string{"--replicas", "2"}})
	waitReady(t, n, 1)
	ctx := browser(t)

	const p = "docs/notes.txt"
	list := mirrorListOf(t, http.DefaultClient, n, p)
	if len(list.Mirrors) != 2 {
		t.Fatalf("JSON mirror list has %d relays, want 2: %+v", len(list.Mirrors), list.Mirrors)
	}
	page := n.DirectoryURL() + "/r/demo/" + p + "?mirrorlist"
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("tbody tr"))); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	title := run(t, ctx, chromedp.Title())
	h1 := run(t, ctx, chromedp.Text(chromedp.CSS("h1")))
	rows := run(t, ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("tbody tr")).map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))`))
	if title != "Mirrors of "+p || h1 != p {
		t.Errorf("title %q, heading %q", title, h1)
	}
	if len(rows) != len(list.Mirrors) {
		t.Fatalf("page shows %d relays, the JSON list %d", len(rows), len(list.Mirrors))
	}
	for i, m := range list.Mirrors {
		// Columns: rank, relay, where, why this rank, state, share.
		r := rows[i]
		if len(r) != 6 || r[0] != strconv.Itoa(m.Rank) || r[1] != m.RelayID || r[3] != m.Reason || !strings.HasPrefix(r[4], m.State) {
			t.Errorf("row %d = %q, JSON has rank %d, relay %s, reason %q, state %s", i, r, m.Rank, m.RelayID, m.Reason, m.State)
		}
	}

	// The Download link: the directory redirects, a relay serves.
	body, at := follow(t, ctx, page, chromedp.CSS("#download"))
	if body != strings.TrimSuffix(text, "\n") && body != text {
		t.Errorf("Download shows %q, want the artifact %q", body, text)
	}
	fromRelay := false
	for i := range n.RelayCount() {
		fromRelay = fromRelay || strings.HasPrefix(at, n.RelayURL(i)+"/")
	}
	if !fromRelay {
		t.Errorf("Download ended at %s, not at a relay", at)
	}

	// Each relay's link serves the same bytes.
	for i, m := range list.Mirrors {
		got, at := follow(t, ctx, page, chromedp.CSS("tbody tr:nth-child("+strconv.Itoa(i+1)+") a"))
		if strings.TrimSuffix(got, "\n") != strings.TrimSuffix(text, "\n") || at != m.URL {
			t.Errorf("link of %s led to %s showing %q", m.RelayID, at, got)
		}
	}
}

// The mirror list of a path no catalog has is a clear error page, not a
// broken one.
func TestMirrorListOfAnUnknownPathInABrowser(t *testing.T) {
	n, _ := Start(t, Options{Relays: 1, SampleSize: 2})
	waitReady(t, n, 1)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(n.DirectoryURL()+"/r/demo/no/such/file.iso?mirrorlist")); err != nil {
		t.Fatal(err)
	}
	body := run(t, ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if !strings.Contains(body, "no/such/file.iso") {
		t.Errorf("unknown path page says %q; want it to name the path", body)
	}
}
