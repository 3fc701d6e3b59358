// Package tuftest builds signed catalog repositories and serves them over
// loopback HTTP, for tests of tufrepo and of the packages that use it
// (directory, relay, cli).
package tuftest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// Epoch is the default signing time: fixed, so tests are reproducible, and
// recent enough that default expiries are in the future for years.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure New. Zero values take the defaults noted.
type Options struct {
	// Artifacts is how many synthetic artifacts to sign (see Content).
	Artifacts int
	// RootKeys/RootThreshold default to 3 and 2; Targets* to 1 and 1.
	RootKeys, RootThreshold       int
	TargetsKeys, TargetsThreshold int
	// Expiry defaults to tufrepo.DefaultExpiry.
	Expiry tufrepo.Expiry
	// Now is the signing time (default Epoch).
	Now time.Time
	// OnlineOnly: after Init, the Repository holds only the online keys,
	// as a production directory does.
	OnlineOnly bool
}

// Repo is a repository on disk with every key that made it.
type Repo struct {
	*tufrepo.Repository
	Keys *tufrepo.KeySet
	Dir  string
	// Now is the time the repository was signed at.
	Now time.Time
	// Artifacts are the signed artifacts by path.
	Artifacts map[string]catalog.Artifact
}

// Content returns the synthetic bytes of the artifact at path p.
func Content(p string) []byte { return []byte("content of " + p + "\n") }

// ArtifactPath names synthetic artifact i.
func ArtifactPath(i int) string { return fmt.Sprintf("pool/p%03d/pkg-%d.tar.gz", i%1000, i) }

// Artifact returns the synthetic artifact at p.
func Artifact(p string) catalog.Artifact {
	c := Content(p)
	return catalog.Artifact{Path: p, Size: int64(len(c)), Digest: catalog.DigestOf(c)}
}

// New creates keys and a repository in a temporary folder and signs
// opts.Artifacts synthetic artifacts into it.
func New(t testing.TB, opts Options) *Repo {
	t.Helper()
	if opts.RootKeys == 0 {
		opts.RootKeys, opts.RootThreshold = 3, 2
	}
	if opts.TargetsKeys == 0 {
		opts.TargetsKeys, opts.TargetsThreshold = 1, 1
	}
	if opts.Now.IsZero() {
		opts.Now = Epoch
	}
	ks, err := tufrepo.GenerateKeySet(opts.RootKeys, opts.RootThreshold, opts.TargetsKeys, opts.TargetsThreshold)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tuf")
	r, err := tufrepo.Init(dir, ks.InitOptions(opts.Artifacts), tufrepo.Options{Signers: ks.All(), Expiry: opts.Expiry}, opts.Now)
	if err != nil {
		t.Fatal(err)
	}
	repo := &Repo{Repository: r, Keys: ks, Dir: dir, Now: opts.Now, Artifacts: map[string]catalog.Artifact{}}
	if opts.Artifacts > 0 {
		as := make([]catalog.Artifact, opts.Artifacts)
		for i := range as {
			as[i] = Artifact(ArtifactPath(i))
			repo.Artifacts[as[i].Path] = as[i]
		}
		if _, err := r.Build(context.Background(), tufrepo.SliceSource(as), opts.Now); err != nil {
			t.Fatal(err)
		}
	}
	if opts.OnlineOnly {
		offline := append(slices.Clone(ks.Root), ks.Targets...)
		r.RemoveSigners(offline...)
	}
	return repo
}

// TrustedRoot returns root version 1, what a client is bootstrapped with.
func (r *Repo) TrustedRoot(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Dir, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Put signs a change setting path p to content, returning the commit.
func (r *Repo) Put(t testing.TB, now time.Time, paths ...string) *tufrepo.Commit {
	t.Helper()
	var chs []catalog.Change
	for _, p := range paths {
		a := Artifact(p)
		chs = append(chs, catalog.Change{Path: p, Size: a.Size, Digest: a.Digest})
		r.Artifacts[p] = a
	}
	c, err := r.Apply(chs, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Server serves a repository folder the way a directory does: metadata at
// /c/<catalog>/tuf/<name> and artifacts at /r/<catalog>/<path>, also under
// their consistent-snapshot names. Tests override or hide single metadata
// files to play the attacker.
type Server struct {
	*httptest.Server
	Catalog string
	// NoBundles makes the server refuse bundle requests, as a static file
	// server would; set it before the first request.
	NoBundles bool

	mu        sync.Mutex // guards the fields below
	bundles   int        // bundle requests answered
	dir       string
	overlay   map[string][]byte // name → served instead of the file; nil → 404
	artifacts map[string][]byte // by artifact path
	log       []string
}

// Serve starts a Server for the repository in dir with the artifacts given
// (bytes by path; may be nil). It is closed when the test ends.
func Serve(t testing.TB, dir string, artifacts map[string][]byte) *Server {
	s := &Server{Catalog: "test", dir: dir, overlay: map[string][]byte{}, artifacts: artifacts}
	if s.artifacts == nil {
		s.artifacts = map[string][]byte{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /c/{catalog}/tuf/{name}", s.serveMetadata)
	mux.HandleFunc("POST /c/{catalog}/tuf/{$}", s.serveBundle)
	mux.HandleFunc("GET /r/{catalog}/{path...}", s.serveArtifact)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// ServeRepo serves r with its synthetic artifacts.
func ServeRepo(t testing.TB, r *Repo) *Server {
	as := map[string][]byte{}
	for p := range r.Artifacts {
		as[p] = Content(p)
	}
	return Serve(t, r.Dir, as)
}

// MetadataURL is the base URL of the metadata.
func (s *Server) MetadataURL() string { return s.URL + "/c/" + s.Catalog + "/tuf/" }

// TargetsURL is the base URL of the artifacts.
func (s *Server) TargetsURL() string { return s.URL + "/r/" + s.Catalog + "/" }

// Set serves data as metadata file name instead of the folder's file.
func (s *Server) Set(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overlay[name] = data
}

// Hide answers 404 for metadata file name.
func (s *Server) Hide(name string) { s.Set(name, nil) }

// Reset drops every override.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overlay = map[string][]byte{}
}

// SetArtifact serves data for artifact path p.
func (s *Server) SetArtifact(p string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.artifacts[p] = data
}

// Bundles returns how many bundle requests the server answered.
func (s *Server) Bundles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundles
}

// Requests returns the metadata and artifact names requested so far
// (those sent in bundles prefixed "bundle:"), and forgets them.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	s.log = nil
	return l
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	data, err := s.metadata(name, name)
	switch {
	case os.IsNotExist(err):
		http.NotFound(w, r)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	}
}

// metadata returns what the server sends for metadata file name, logging
// the request as logged.
func (s *Server) metadata(name, logged string) ([]byte, error) {
	s.mu.Lock()
	s.log = append(s.log, logged)
	data, overridden := s.overlay[name]
	dir := s.dir
	s.mu.Unlock()
	if !tufrepo.IsMetadataName(name) {
		return nil, os.ErrNotExist
	}
	if !overridden {
		return os.ReadFile(filepath.Join(dir, name))
	}
	if data == nil {
		return nil, os.ErrNotExist
	}
	return data, nil
}

// serveBundle answers bundle requests (httpapi.FetchBundle) as the
// directory does, with the same overrides as single requests.
func (s *Server) serveBundle(w http.ResponseWriter, r *http.Request) {
	if s.NoBundles {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.bundles++
	s.mu.Unlock()
	names, err := httpapi.ReadBundleRequest(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	httpapi.WriteBundle(w, names, func(name string) (io.ReadCloser, int64, bool) {
		data, err := s.metadata(name, "bundle:"+name)
		if err != nil {
			return nil, 0, false
		}
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), true
	})
}

func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, "artifact:"+p)
	data, ok := s.artifacts[p]
	if !ok {
		// A stock TUF client asks for "<dir>/<sha256>.<name>".
		if orig, d, hashed := tufrepo.ParseHashedTargetName(p); hashed {
			if b, found := s.artifacts[orig]; found && catalog.DigestOf(b) == d {
				data, ok = b, true
			}
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

// Files lists the served metadata files in dir.
func Files(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && tufrepo.IsMetadataName(d.Name()) {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}
