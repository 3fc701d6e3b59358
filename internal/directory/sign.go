package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// Every catalog is a TUF repository (internal/tufrepo) whose files live in
// <data>/tuf/<catalog>/ and are served under /c/<catalog>/tuf/. A catalog
// version becomes visible to relays only once it is signed: publish signs
// between committing a version to the database and applying it to the
// index, and the database remembers which version the metadata describes,
// so a failed signing is retried rather than skipped.

// PassphraseEnv names the environment variable holding the passphrase of
// encrypted key files the directory should use (offline keys brought in
// for a rotation or re-binning). Online keys are stored unencrypted.
const PassphraseEnv = "ODI_KEY_PASSPHRASE"

func (s *Server) repoDir(name string) string { return filepath.Join(s.cfg.Data, "tuf", name) }

// repo returns catalog src's repository, opening or creating it.
func (s *Server) repo(src config.CatalogSource, expected int) (*tufrepo.Repository, error) {
	s.mu.Lock()
	r := s.repos[src.Name]
	s.mu.Unlock()
	if r != nil {
		return r, nil
	}
	keysDir, generated := src.Keys, false
	if keysDir == "" {
		keysDir, generated = filepath.Join(s.cfg.Data, "keys", src.Name), true
	}
	dir := s.repoDir(src.Name)
	_, err := os.Stat(filepath.Join(dir, "1.root.json"))
	exists := err == nil
	var ks *tufrepo.KeySet
	switch {
	case !exists && generated && !fileExists(filepath.Join(keysDir, "keyset.json")):
		ks, err = tufrepo.GenerateKeySet(1, 1, 1, 1)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(keysDir, 0o700); err != nil {
			return nil, err
		}
		if err := ks.Save(keysDir, nil); err != nil {
			return nil, err
		}
		s.log.Warn("generated every signing key of the catalog in the data folder; production root and targets keys belong offline (see odi catalog init)",
			"catalog", src.Name, "keys", keysDir)
	default:
		if ks, err = LoadSigningKeys(keysDir); err != nil {
			return nil, fmt.Errorf("directory: catalog %s: %w", src.Name, err)
		}
	}
	opts := tufrepo.Options{Signers: ks.All()}
	if exists {
		r, err = tufrepo.Open(dir, opts)
	} else {
		if len(ks.Root) < ks.RootThreshold || len(ks.Targets) < ks.TargetsThreshold {
			return nil, fmt.Errorf("directory: catalog %s has no signed metadata yet and its root and targets keys are not in %s; run odi catalog init", src.Name, keysDir)
		}
		r, err = tufrepo.Init(dir, ks.InitOptions(expected), opts, s.now())
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.repos[src.Name] = r
	s.mu.Unlock()
	return r, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// LoadSigningKeys reads a catalog's key folder as the directory uses it.
// Encrypted (offline) keys are used only when their passphrase is in the
// environment; without it the directory runs with the online keys, as it
// should in production.
func LoadSigningKeys(dir string) (*tufrepo.KeySet, error) {
	pass := []byte(os.Getenv(PassphraseEnv))
	ks, err := tufrepo.LoadKeySet(dir, pass)
	if err == nil || !errors.Is(err, tufrepo.ErrPassphraseRequired) {
		return ks, err
	}
	ks = &tufrepo.KeySet{}
	for name, dst := range map[string]**tufrepo.PrivateKey{"snapshot.key": &ks.Snapshot, "timestamp.key": &ks.Timestamp, "bins.key": &ks.Bins} {
		k, err := tufrepo.LoadPrivateKey(filepath.Join(dir, name), nil)
		if err != nil {
			return nil, err
		}
		*dst = k
	}
	return ks, nil
}

// sign brings catalog src's metadata up to version v.
func (s *Server) sign(ctx context.Context, src config.CatalogSource, id int64, v uint64, expected int) error {
	signed, err := s.db.signedVersion(ctx, id)
	if err != nil || signed >= v {
		return err
	}
	r, err := s.repo(src, expected)
	if err != nil {
		return err
	}
	start := s.now()
	var c *tufrepo.Commit
	if signed == 0 {
		var arts []catalog.Artifact
		if err := s.db.loadArtifacts(ctx, id, func(a catalog.Artifact) { arts = append(arts, a) }); err != nil {
			return err
		}
		c, err = r.Build(ctx, tufrepo.SliceSource(arts), s.now())
	} else {
		var changes []catalog.Change
		if changes, err = s.db.allChanges(ctx, id, signed, v); err != nil {
			return err
		}
		c, err = r.Apply(changes, s.now())
	}
	if err != nil {
		return fmt.Errorf("directory: sign %s version %d: %w", src.Name, v, err)
	}
	if err := s.db.setSigned(ctx, id, v); err != nil {
		return err
	}
	s.log.Info("catalog signed", "catalog", src.Name, "version", v, "bins", len(c.Bins),
		"snapshot", c.Snapshot, "took", s.now().Sub(start).Round(time.Millisecond))
	return nil
}

// signAlongside signs version v of catalog src, made of changes, while
// the caller commits it: ready waits for the commit, and the new metadata
// is published only if it succeeded (tufrepo.ApplyWhen). It reports false,
// doing nothing, unless the metadata is at version v-1: sign then catches
// up from the database once the commit is done.
func (s *Server) signAlongside(ctx context.Context, src config.CatalogSource, id int64, v uint64, expected int, changes []catalog.Change, ready func() error) (bool, error) {
	signed, err := s.db.signedVersion(ctx, id)
	if err != nil || signed == 0 || signed != v-1 {
		return false, nil
	}
	r, err := s.repo(src, expected)
	if err != nil {
		return false, nil
	}
	start := s.now()
	c, err := r.ApplyWhen(changes, s.now(), ready)
	if err != nil {
		if ready() != nil {
			return true, err // the commit failed: nothing to sign
		}
		return true, fmt.Errorf("directory: sign %s version %d: %w", src.Name, v, err)
	}
	if err := s.db.setSigned(ctx, id, v); err != nil {
		return true, err
	}
	s.log.Info("catalog signed", "catalog", src.Name, "version", v, "bins", len(c.Bins),
		"snapshot", c.Snapshot, "took", s.now().Sub(start).Round(time.Millisecond))
	return true, nil
}

// renewSignatures re-signs metadata close to expiry and drops superseded
// versions, for every catalog with a repository.
func (s *Server) renewSignatures(prune bool) {
	s.mu.Lock()
	repos := make(map[string]*tufrepo.Repository, len(s.repos))
	for n, r := range s.repos {
		repos[n] = r
	}
	s.mu.Unlock()
	now := s.now()
	for name, r := range repos {
		c, err := r.Renew(now)
		if err != nil {
			s.log.Error("cannot renew catalog signatures", "catalog", name, "err", err)
		} else if !c.Empty() {
			s.log.Info("catalog signatures renewed", "catalog", name, "timestamp", c.Timestamp, "bins", len(c.Bins))
		}
		st := r.Status()
		for role, exp := range map[string]time.Time{"root": st.RootExpires, "targets": st.TargetsExpires} {
			can := st.CanSignRoot
			if role == "targets" {
				can = st.CanSignTargets
			}
			if !can && exp.Sub(now) < 30*24*time.Hour {
				s.log.Warn("offline-signed metadata expires soon; its key holders must renew it", "catalog", name, "role", role, "expires", exp)
			}
		}
		if st.NeedsRebin {
			s.log.Warn("catalog has outgrown its bins; re-bin with the targets key (odi catalog rebin)", "catalog", name, "bins", st.Bins, "artifacts", st.Artifacts)
		}
		if prune {
			if _, err := r.Prune(now, time.Hour); err != nil {
				s.log.Warn("cannot prune old metadata", "catalog", name, "err", err)
			}
		}
	}
}

// handleMetadataBundle answers POST /c/<catalog>/tuf/ (a bundle request,
// see httpapi.FetchBundle) with the named metadata files the catalog has:
// a relay catching up loads the few hundred bins an update touched in a
// few requests.
func (s *Server) handleMetadataBundle(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("catalog")
	if catalog.ValidateName(name) != nil || s.ix.catalog(name) == nil {
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	files, err := httpapi.ReadBundleRequest(w, r)
	if err != nil {
		return err
	}
	dir := s.repoDir(name)
	httpapi.WriteBundle(w, files, func(file string) (io.ReadCloser, int64, bool) {
		if !tufrepo.IsMetadataName(file) {
			return nil, 0, false
		}
		return httpapi.BundleFile(os.Open(filepath.Join(dir, file)))
	})
	return nil
}

// handleMetadata serves /c/<catalog>/tuf/<file>: the static TUF files.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) error {
	name, file := r.PathValue("catalog"), r.PathValue("file")
	if catalog.ValidateName(name) != nil || s.ix.catalog(name) == nil {
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	if !tufrepo.IsMetadataName(file) {
		return httpapi.Errorf(http.StatusNotFound, "no metadata file %q", file)
	}
	f, err := os.Open(filepath.Join(s.repoDir(name), file))
	if errors.Is(err, os.ErrNotExist) {
		return httpapi.Errorf(http.StatusNotFound, "no metadata file %q in catalog %q", file, name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if tufrepo.IsImmutableName(file) {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// timestamp.json changes in place: always ask again.
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
