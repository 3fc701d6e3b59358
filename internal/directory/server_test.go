package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

type fixture struct {
	t    *testing.T
	srv  *Server
	http *httptest.Server
	src  string
	data string
}

func newFixture(t *testing.T, files map[string]string) *fixture {
	t.Helper()
	f := &fixture{t: t, src: t.TempDir(), data: t.TempDir()}
	for p, body := range files {
		f.write(p, body)
	}
	f.start()
	return f
}

func (f *fixture) write(p, body string) {
	abs := filepath.Join(f.src, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(abs, []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) start() {
	cfg := config.DefaultDirectory()
	cfg.Data = f.data
	cfg.EnrollTokens = []string{"test-token"}
	cfg.Catalogs = []config.CatalogSource{{Name: "demo", Path: f.src}}
	srv, err := New(context.Background(), cfg, Deps{Logger: slog.New(slog.NewTextHandler(f.t.Output(), nil))})
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
	f.http = httptest.NewServer(srv.Handler())
	f.t.Cleanup(func() {
		f.http.Close()
		srv.Close()
	})
}

// publish rescans synchronously.
func (f *fixture) publish() uint64 {
	f.t.Helper()
	_, v, err := f.srv.publish(context.Background(), config.CatalogSource{Name: "demo", Path: f.src})
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

func (f *fixture) get(path string, hdr ...string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.http.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesArtifactsItselfWithoutRelays(t *testing.T) {
	files := map[string]string{
		"a.txt":                       "alpha",
		"deep/er/still/b.tar.gz":      "bravo",
		"@scope/pkg+1.0~rc!.tgz":      "charlie",
		"with space/100% done.txt":    "delta",
		"pool/main/g/gcc_12+deb1.deb": "echo",
	}
	f := newFixture(t, files)
	if v := f.publish(); v != 1 {
		t.Fatalf("first publish made version %d", v)
	}
	for p, want := range files {
		resp := f.get("/r/demo/" + escapeForTest(p))
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", p, resp.StatusCode, body(t, resp))
		}
		if got := body(t, resp); got != want {
			t.Errorf("GET %s = %q, want %q", p, got, want)
		}
		sum := sha256.Sum256([]byte(want))
		if etag := resp.Header.Get("ETag"); etag != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("GET %s ETag = %s", p, etag)
		}
		if rd := resp.Header.Get("Repr-Digest"); !strings.HasPrefix(rd, "sha-256=:") {
			t.Errorf("GET %s Repr-Digest = %q", p, rd)
		}
	}
}

func escapeForTest(p string) string {
	return strings.NewReplacer(" ", "%20", "%", "%25").Replace(p)
}

func TestRangeAndConditionalRequests(t *testing.T) {
	f := newFixture(t, map[string]string{"x.bin": "0123456789"})
	f.publish()
	resp := f.get("/r/demo/x.bin", "Range", "bytes=2-5")
	if resp.StatusCode != http.StatusPartialContent || body(t, resp) != "2345" {
		t.Fatalf("range request = %d", resp.StatusCode)
	}
	etag := f.get("/r/demo/x.bin").Header.Get("ETag")
	resp = f.get("/r/demo/x.bin", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match = %d, want 304", resp.StatusCode)
	}
}

func TestRefusesMalformedPaths(t *testing.T) {
	f := newFixture(t, map[string]string{"a/b.txt": "x"})
	f.publish()
	for name, p := range map[string]string{
		"dotdot":         "/r/demo/a/../a/b.txt",
		"encoded dotdot": "/r/demo/a/%2e%2e/a/b.txt",
		"encoded slash":  "/r/demo/a%2Fb.txt",
		"nul":            "/r/demo/a/b%00.txt",
		"backslash":      "/r/demo/a%5Cb.txt",
		"absolute":       "/r/demo//etc/passwd",
		"dot segment":    "/r/demo/./a/b.txt",
		"bad catalog":    "/r/De%20mo/a/b.txt",
		"dotdot catalog": "/r/../a/b.txt",
		"empty path":     "/r/demo/",
		"bad escape":     "/r/demo/a%zz",
	} {
		resp := f.rawGet(p)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: GET %s = %d, want 400", name, p, resp.StatusCode)
		}
	}
}

// rawGet sends the request line exactly as given, as an attacker would.
func (f *fixture) rawGet(p string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.http.URL, nil)
	req.URL.Opaque = p
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestUnknownCatalogAndPath(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "x"})
	f.publish()
	for p, want := range map[string]string{
		"/r/nope/a.txt": `no catalog "nope"`,
		"/r/demo/b.txt": `no artifact "b.txt" in catalog "demo"`,
	} {
		resp := f.get(p)
		msg := body(t, resp)
		if resp.StatusCode != 404 || !strings.Contains(msg, want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("GET %s = %d %q, want 404 with one line mentioning %q", p, resp.StatusCode, msg, want)
		}
	}
}

func TestRescanMakesVersionsAndChangeLog(t *testing.T) {
	f := newFixture(t, map[string]string{"keep.txt": "k", "change.txt": "c1", "drop.txt": "d"})
	v1 := f.publish()
	if v := f.publish(); v != v1 {
		t.Fatalf("rescan without changes made version %d", v)
	}
	f.write("change.txt", "c2-longer")
	f.write("new.txt", "n")
	os.Remove(filepath.Join(f.src, "drop.txt"))
	v2 := f.publish()
	if v2 != v1+1 {
		t.Fatalf("version after change = %d, want %d", v2, v1+1)
	}
	if resp := f.get("/r/demo/drop.txt"); resp.StatusCode != 404 {
		t.Errorf("deleted path = %d, want 404", resp.StatusCode)
	}
	if got := body(t, f.get("/r/demo/change.txt")); got != "c2-longer" {
		t.Errorf("changed path serves %q", got)
	}
	c := httpapi.NewClient(f.http.URL, http.DefaultClient)
	page, err := c.Changes(context.Background(), "demo", v1, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range page.Changes {
		got = append(got, fmt.Sprintf("%s del=%v v=%d", ch.Path, ch.Deleted, ch.Version))
	}
	want := []string{"change.txt del=false v=2", "drop.txt del=true v=2", "new.txt del=false v=2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("changes since %d = %v, want %v", v1, got, want)
	}
	full, err := c.Changes(context.Background(), "demo", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Changes) != 4 { // keep, change, new, plus drop's tombstone
		t.Errorf("changes since 0 = %d entries: %+v", len(full.Changes), full.Changes)
	}
}

func TestChangeLogPaging(t *testing.T) {
	files := map[string]string{}
	for i := 0; i < 57; i++ {
		files[fmt.Sprintf("f%03d", i)] = fmt.Sprint(i)
	}
	f := newFixture(t, files)
	f.publish()
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		u := "/c/demo/changes?since=0&limit=10"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		resp := f.get(u)
		var page httpapi.ChangesPage
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Changes {
			if seen[c.Path] {
				t.Fatalf("%s on two pages", c.Path)
			}
			seen[c.Path] = true
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != 57 {
		t.Fatalf("paged through %d changes, want 57", len(seen))
	}
	if resp := f.get("/c/demo/changes?cursor=garbage"); resp.StatusCode != 400 {
		t.Errorf("malformed cursor = %d", resp.StatusCode)
	}
	if resp := f.get("/c/demo/changes?since=-1"); resp.StatusCode != 400 {
		t.Errorf("negative since = %d", resp.StatusCode)
	}
}

func TestRestartKeepsCatalog(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	f.http.Close()
	f.srv.Close()
	f.start()
	// Served at once from the database, before any rescan.
	if got := body(t, f.get("/r/demo/a.txt")); got != "alpha" {
		t.Fatalf("after restart = %q", got)
	}
	if v := f.publish(); v != 1 {
		t.Errorf("rescan after restart made version %d, want still 1", v)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	req, _ := http.NewRequest("POST", f.http.URL+"/r/demo/a.txt", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("POST = %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestDamagedBlobIsNeverServedAndIsRepaired(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "the right bytes"})
	f.publish()
	if got := body(t, f.get("/r/demo/a.txt")); got != "the right bytes" {
		t.Fatalf("before damage: %q", got)
	}
	d := catalog.DigestOf([]byte("the right bytes"))
	path := f.srv.store.(*store.Disk).Path(d)
	time.Sleep(20 * time.Millisecond)
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, []byte("the wrong bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := f.get("/r/demo/a.txt")
	if got := body(t, resp); resp.StatusCode == 200 || strings.Contains(got, "wrong") {
		t.Fatalf("served %d %q from a damaged blob", resp.StatusCode, got)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("damaged blob answered %d, want 503", resp.StatusCode)
	}
	if resp := f.get("/api/v1/blobs/" + d.String()); resp.StatusCode == 200 {
		t.Errorf("blob API served a damaged blob")
	}
	// The next scan copies the file in again.
	f.publish()
	if got := body(t, f.get("/r/demo/a.txt")); got != "the right bytes" {
		t.Fatalf("after repair: %q", got)
	}
}

func TestBlobAPIServesOnlyCatalogBlobs(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	if resp := f.get("/api/v1/blobs/" + catalog.DigestOf([]byte("alpha")).String()); resp.StatusCode != 200 {
		t.Errorf("catalog blob = %d", resp.StatusCode)
	}
	if resp := f.get("/api/v1/blobs/" + catalog.DigestOf([]byte("beta")).String()); resp.StatusCode != 404 {
		t.Errorf("unknown blob = %d", resp.StatusCode)
	}
	if resp := f.get("/api/v1/blobs/nothex"); resp.StatusCode != 400 {
		t.Errorf("malformed digest = %d", resp.StatusCode)
	}
}

func TestPublishPathsLooksOnlyAtThem(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie"})
	v1 := f.publish()
	f.write("a.txt", "alpha two")
	f.write("new.txt", "new")
	os.Remove(filepath.Join(f.src, "c.txt"))
	f.write("b.txt", "bravo two") // changed, but not named: left for a full scan
	src := config.CatalogSource{Name: "demo", Path: f.src}
	sum, v, err := f.srv.publishPaths(context.Background(), src, []string{"a.txt", "new.txt", "c.txt", "never-existed.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if v != v1+1 || sum.Added != 1 || sum.Changed != 1 || sum.Removed != 1 {
		t.Fatalf("publishPaths = %+v version %d", sum, v)
	}
	if got := body(t, f.get("/r/demo/a.txt")); got != "alpha two" {
		t.Errorf("a.txt = %q", got)
	}
	if got := body(t, f.get("/r/demo/b.txt")); got != "bravo" {
		t.Errorf("b.txt = %q, want the old bytes until a full scan", got)
	}
	if resp := f.get("/r/demo/c.txt"); resp.StatusCode != 404 {
		t.Errorf("c.txt = %d", resp.StatusCode)
	}
	if _, _, err := f.srv.publishPaths(context.Background(), src, []string{"../etc/passwd"}); err == nil {
		t.Error("publishPaths accepted a traversal")
	}
}

func TestShardListingCoversEachArtifactOnce(t *testing.T) {
	files := map[string]string{}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("pool/f%03d.tar.gz", i)] = fmt.Sprint(i)
	}
	f := newFixture(t, files)
	f.publish()
	c := httpapi.NewClient(f.http.URL, http.DefaultClient)
	seen := map[string]int{}
	const bits = 4
	for start := uint32(0); start < 1<<bits; start += 3 {
		end := min(start+3, 1<<bits)
		cursor := ""
		for pages := 0; ; pages++ {
			req, _ := http.NewRequest("GET", f.http.URL+fmt.Sprintf("/c/demo/changes?shards=%d:%d-%d&limit=7", bits, start, end), nil)
			if cursor != "" {
				req.URL.RawQuery += "&cursor=" + cursor
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var page httpapi.ChangesPage
			json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			for _, ch := range page.Changes {
				if sh := uint32(catalog.PathHash(ch.Path) >> (64 - bits)); sh < start || sh >= end {
					t.Fatalf("%s (shard %d) listed in shards %d-%d", ch.Path, sh, start, end)
				}
				seen[ch.Path]++
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	if len(seen) != 200 {
		t.Fatalf("listed %d distinct artifacts, want 200", len(seen))
	}
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times", p, n)
		}
	}
	if _, err := c.ShardState(context.Background(), "demo", 4, 5, 3, ""); err == nil {
		t.Error("start > end accepted")
	}
}

func TestBlobsNoArtifactUsesAreDeletedOthersKept(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "shared", "b.txt": "shared", "c.txt": "only c", "d.txt": "only d"})
	f.publish()
	held := func(body string) bool {
		_, err := f.srv.store.Stat(catalog.DigestOf([]byte(body)))
		return err == nil
	}
	for _, b := range []string{"shared", "only c", "only d"} {
		if !held(b) {
			t.Fatalf("blob of %q not in the store after publishing", b)
		}
	}
	// a.txt gone, but b.txt has the same bytes; c.txt replaced.
	os.Remove(filepath.Join(f.src, "a.txt"))
	f.write("c.txt", "c, second edition")
	f.publish()
	if !held("only c") {
		t.Error("the publish deleted a blob itself; the reaper should, later")
	}
	f.srv.reapUnused(context.Background())
	if !held("shared") {
		t.Error("blob still used by b.txt was deleted with a.txt")
	}
	if held("only c") {
		t.Error("blob of the replaced c.txt is still in the store")
	}
	// The same through a publish of named paths.
	os.Remove(filepath.Join(f.src, "b.txt"))
	os.Remove(filepath.Join(f.src, "d.txt"))
	if _, _, err := f.srv.publishPaths(context.Background(), config.CatalogSource{Name: "demo", Path: f.src}, []string{"b.txt", "d.txt"}); err != nil {
		t.Fatal(err)
	}
	f.srv.reapUnused(context.Background())
	if held("shared") || held("only d") {
		t.Error("blobs of deleted paths are still in the store")
	}
	if !held("c, second edition") {
		t.Error("blob of the current c.txt was deleted")
	}
	if got := body(t, f.get("/r/demo/c.txt")); got != "c, second edition" {
		t.Errorf("c.txt = %q", got)
	}
}

func TestRunDeletesUnusedBlobsAfterThePublish(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "first"})
	f.publish()
	// A publish whose reaper never ran: the directory stops at once.
	f.write("a.txt", "second")
	f.publish()
	first := catalog.DigestOf([]byte("first"))
	if _, err := f.srv.store.Stat(first); err != nil {
		t.Fatal("the publish deleted a blob itself; the reaper should, later")
	}
	f.http.Close()
	f.srv.Close()
	f.start()
	f.srv.reapDelay = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	gone := func(d catalog.Digest, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := f.srv.store.Stat(d); err != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still in the store", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	gone(first, "the blob left queued by the stop")
	// While running, a publish's unused blob goes reapDelay later.
	f.write("a.txt", "third")
	f.srv.publishMu.Lock() // as the rescan handler does
	_, _, err := f.srv.publishPaths(ctx, config.CatalogSource{Name: "demo", Path: f.src}, []string{"a.txt"})
	f.srv.publishMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	gone(catalog.DigestOf([]byte("second")), "the blob a.txt no longer uses")
	if got := body(t, f.get("/r/demo/a.txt")); got != "third" {
		t.Errorf("a.txt = %q", got)
	}
}

// An expunged file still in the catalog folder is copied in by the next
// scan and left out of the catalog; the reaper deletes the copy.
func TestExpungedFileFoundAgainIsNotKept(t *testing.T) {
	f := newFixture(t, map[string]string{"bad.tar.gz": "malware", "good.tar.gz": "fine"})
	f.publish()
	bad := catalog.DigestOf([]byte("malware"))
	if _, err := f.srv.expunge(context.Background(), httpapi.ExpungeRequest{Catalog: "demo", Path: "bad.tar.gz", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.store.Stat(bad); err == nil {
		t.Fatal("the expunged blob is still in the store")
	}
	f.write("bad.tar.gz", "malware") // touched: the next scan reads it again
	f.publish()
	f.srv.reapUnused(context.Background())
	if _, err := f.srv.store.Stat(bad); err == nil {
		t.Error("the expunged file, found again, stays in the store")
	}
	if resp := f.get("/r/demo/bad.tar.gz"); resp.StatusCode != http.StatusGone {
		t.Errorf("bad.tar.gz = %d, want 410", resp.StatusCode)
	}
}
