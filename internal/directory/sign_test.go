package directory

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

func TestServesSignedMetadata(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	for _, p := range []string{"/c/demo/tuf/1.root.json", "/c/demo/tuf/timestamp.json", "/c/demo/tuf/1.snapshot.json", "/c/demo/tuf/1.targets.json"} {
		resp := f.get(p)
		if resp.StatusCode != 200 || !strings.Contains(body(t, resp), `"signed"`) {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}
	if cc := f.get("/c/demo/tuf/timestamp.json").Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("timestamp.json Cache-Control = %q", cc)
	}
	if cc := f.get("/c/demo/tuf/1.root.json").Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("1.root.json Cache-Control = %q", cc)
	}
	for _, p := range []string{"/c/demo/tuf/state.json", "/c/demo/tuf/..%2fstate.db", "/c/demo/tuf/9.root.json", "/c/nope/tuf/1.root.json"} {
		if resp := f.get(p); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestSignedMetadataFollowsVersions(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	f.write("b.txt", "bravo")
	f.publish()
	r := f.srv.repos["demo"]
	if st := r.Status(); st.Artifacts != 2 {
		t.Fatalf("signed metadata lists %d artifacts after version 2, want 2", st.Artifacts)
	}
	if v, _ := f.srv.db.signedVersion(t.Context(), f.srv.ix.catalog("demo").id); v != 2 {
		t.Fatalf("signed version = %d, want 2", v)
	}
}

func TestChecksumAndMetalink(t *testing.T) {
	f := newFixture(t, map[string]string{
		"dir/a.tar.gz":       "alpha",
		"real.txt.sha256":    "a real artifact",
		"real.txt":           "x",
		"with space/b c.tgz": "bravo",
	})
	f.publish()
	d := catalog.DigestOf([]byte("alpha"))
	if got := body(t, f.get("/r/demo/dir/a.tar.gz.sha256")); got != d.String()+"  a.tar.gz\n" {
		t.Errorf(".sha256 = %q", got)
	}
	if got := body(t, f.get("/r/demo/real.txt.sha256")); got != "a real artifact" {
		t.Errorf("a real artifact named .sha256 was shadowed: %q", got)
	}
	resp := f.get("/r/demo/with%20space/b%20c.tgz.meta4")
	if ct := resp.Header.Get("Content-Type"); ct != "application/metalink4+xml" {
		t.Errorf(".meta4 Content-Type = %q", ct)
	}
	var ml metalink
	if err := xml.Unmarshal([]byte(body(t, resp)), &ml); err != nil {
		t.Fatal(err)
	}
	bd := catalog.DigestOf([]byte("bravo"))
	if len(ml.Files) != 1 || ml.Files[0].Name != "b c.tgz" || ml.Files[0].Size != 5 || ml.Files[0].Hash.Value != bd.String() || len(ml.Files[0].URLs) == 0 {
		t.Fatalf("metalink = %+v", ml)
	}
	if resp := f.get("/r/demo/missing.tgz.meta4"); resp.StatusCode != 404 {
		t.Errorf(".meta4 of a missing artifact = %d", resp.StatusCode)
	}
}

func TestConsistentSnapshotNames(t *testing.T) {
	f := newFixture(t, map[string]string{"dir/a.tar.gz": "alpha", "top.txt": "top"})
	f.publish()
	d := catalog.DigestOf([]byte("alpha"))
	name := tufrepo.HashedTargetName("dir/a.tar.gz", d)
	if got := body(t, f.get("/r/demo/"+name)); got != "alpha" {
		t.Errorf("GET %s = %q", name, got)
	}
	top := tufrepo.HashedTargetName("top.txt", catalog.DigestOf([]byte("top")))
	if got := body(t, f.get("/r/demo/"+top)); got != "top" {
		t.Errorf("GET %s = %q", top, got)
	}
	wrong := tufrepo.HashedTargetName("dir/a.tar.gz", catalog.DigestOf([]byte("old bytes")))
	if resp := f.get("/r/demo/" + wrong); resp.StatusCode != 404 {
		t.Errorf("consistent-snapshot name with another digest = %d, want 404", resp.StatusCode)
	}
}

// Bundles carry only what a single request would: catalog metadata files
// and catalog blobs, nothing else in the folders.
func TestBundlesCarryOnlyCatalogFiles(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	hc := f.http.Client()
	fetch := func(u string, names ...string) (map[string]string, error) {
		got := map[string]string{}
		err := httpapi.FetchBundle(context.Background(), hc, u, names, 1<<20, func(name string, size int64, r io.Reader) error {
			b, err := io.ReadAll(r)
			got[name] = string(b)
			return err
		})
		return got, err
	}
	got, err := fetch(f.http.URL+"/c/demo/tuf/", "1.root.json", "timestamp.json", "state.json", "../state.db", "9.root.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(got["1.root.json"], `"signed"`) || !strings.Contains(got["timestamp.json"], `"timestamp"`) {
		t.Fatalf("metadata bundle carried %v", keys(got))
	}
	alpha := catalog.DigestOf([]byte("alpha")).String()
	got, err = fetch(f.http.URL+httpapi.PathBlobs, alpha, catalog.DigestOf([]byte("beta")).String(), "nothex")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[alpha] != "alpha" {
		t.Fatalf("blob bundle carried %v", keys(got))
	}
	if _, err := fetch(f.http.URL+"/c/nope/tuf/", "1.root.json"); !errors.Is(err, httpapi.ErrNoBundles) {
		t.Errorf("bundle from an unknown catalog = %v, want not found", err)
	}
	for _, body := range []string{`{"names":[]}`, `not json`} {
		resp, err := hc.Post(f.http.URL+httpapi.PathBlobs, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bundle request %q = %d, want 400", body, resp.StatusCode)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A scan's version is signed while it is committed; if the commit fails,
// relays must see nothing of it.
func TestSigningAlongsideAFailedCommitPublishesNothing(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	v1 := f.publish()
	timestamp := func() string { return body(t, f.get("/c/demo/tuf/timestamp.json")) }
	before := timestamp()
	src := config.CatalogSource{Name: "demo", Path: f.src}
	never := catalog.DigestOf([]byte("never imported"))
	_, _, err := f.srv.publishWith(context.Background(), src, func(row catalogRow) (scanResult, map[string]known, error) {
		// A blob the store cannot make durable fails the commit.
		return scanResult{
			puts:     []catalog.Artifact{{Path: "b.txt", Size: 14, Digest: never, ModTime: time.Now()}},
			imported: []catalog.Digest{never},
			sum:      catalog.Summary{Added: 1},
		}, map[string]known{}, nil
	})
	if err == nil {
		t.Fatal("publish succeeded with a blob that is not in the store")
	}
	if after := timestamp(); after != before {
		t.Fatalf("a failed commit changed the published timestamp:\n%s\n%s", before, after)
	}
	if resp := f.get("/r/demo/b.txt"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("b.txt = %d after a failed commit", resp.StatusCode)
	}
	// The next publish signs and publishes normally.
	f.write("c.txt", "charlie")
	if v := f.publish(); v != v1+1 {
		t.Fatalf("version after the failed commit = %d, want %d", v, v1+1)
	}
	if timestamp() == before {
		t.Error("the next publish did not publish")
	}
	if got := body(t, f.get("/r/demo/c.txt")); got != "charlie" {
		t.Errorf("c.txt = %q", got)
	}
}
