// Package getter is the verifying download client behind `odi get`: it
// learns an artifact's signed length and SHA-256 from the catalog's TUF
// metadata, streams the bytes from the relays the directory names (falling
// back from one to the next, resuming where the last one stopped), and
// keeps the file only if it matches.
package getter

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// Options describe one download.
type Options struct {
	// URL is the artifact's download URL, http(s)://<directory>/r/<catalog>/<path>.
	URL string
	// Output is the file to write; the artifact's name in the current
	// folder when empty.
	Output string
	// CacheDir keeps the trusted root and verified metadata per directory
	// and catalog.
	CacheDir string
	// Root, when set, is the root metadata to trust instead of the
	// directory's first root.
	Root []byte
	// HTTPClient makes the requests; it must not follow redirects itself
	// for the directory's answer to be read (Download sees to that).
	HTTPClient *http.Client
	// Progress, when set, is called as bytes arrive.
	Progress func(done, total int64)
	// Notice receives messages for the user (trusting a new root, falling
	// back to another source).
	Notice func(format string, args ...any)
}

// Target is a parsed download URL.
type Target struct {
	Base    string // scheme://host[/prefix], the directory
	Catalog string
	Path    string
}

// ParseURL splits a download URL.
func ParseURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Target{}, fmt.Errorf("getter: %q is not an http(s) URL", raw)
	}
	esc := u.EscapedPath()
	i := strings.Index(esc, httpapi.PathRedirect)
	if i < 0 {
		return Target{}, fmt.Errorf("getter: %q is not a download URL (…/r/<catalog>/<path>)", raw)
	}
	name, rest, _ := strings.Cut(esc[i+len(httpapi.PathRedirect):], "/")
	if err := catalog.ValidateName(name); err != nil {
		return Target{}, fmt.Errorf("getter: %w", err)
	}
	p, err := catalog.ParseRequestPath(rest)
	if err != nil {
		return Target{}, fmt.Errorf("getter: %w", err)
	}
	return Target{Base: u.Scheme + "://" + u.Host + esc[:i], Catalog: name, Path: p}, nil
}

// URL returns the artifact's download URL.
func (t Target) URL() string {
	return t.Base + httpapi.PathRedirect + t.Catalog + "/" + catalog.EscapePath(t.Path)
}

// ErrMismatch is returned when no source gave the signed bytes.
var ErrMismatch = errors.New("getter: no source gave the bytes the signed metadata names")

// Download fetches and verifies opts.URL, returning the file written.
func Download(ctx context.Context, opts Options) (string, error) {
	t, err := ParseURL(opts.URL)
	if err != nil {
		return "", err
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Notice == nil {
		opts.Notice = func(string, ...any) {}
	}
	info, err := signedInfo(ctx, t, opts)
	if err != nil {
		return "", err
	}
	out := opts.Output
	if out == "" {
		out = path.Base(t.Path)
	}
	part := out + ".part"
	sources, err := findSources(ctx, t, info, opts.HTTPClient)
	if err != nil {
		return "", err
	}
	// First, resume whatever an earlier run left, falling from one source
	// to the next where a transfer breaks. If the result does not match,
	// a source lied or the partial file was damaged: start again from
	// nothing, one source at a time, until one gives the signed bytes.
	err = fetchInto(ctx, part, info, sources, opts)
	for i := 0; errors.Is(err, ErrMismatch) && i < len(sources); i++ {
		opts.Notice("the bytes did not match the signed digest; downloading again from %s", hostOf(sources[i]))
		os.Remove(part)
		err = fetchInto(ctx, part, info, sources[i:i+1], opts)
	}
	if errors.Is(err, ErrMismatch) {
		os.Remove(part)
	}
	if err != nil {
		// A broken transfer keeps its partial file: the next run resumes.
		return "", err
	}
	if err := os.Rename(part, out); err != nil {
		return "", err
	}
	return out, nil
}

// signedInfo refreshes the catalog's metadata and looks the path up.
func signedInfo(ctx context.Context, t Target, opts Options) (tufrepo.TargetInfo, error) {
	u, _ := url.Parse(t.Base)
	dir := filepath.Join(opts.CacheDir, sanitize(u.Host+u.Path), t.Catalog)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tufrepo.TargetInfo{}, err
	}
	rootFile := filepath.Join(dir, "trusted-root.json")
	root := opts.Root
	if root == nil {
		b, err := os.ReadFile(rootFile)
		switch {
		case err == nil:
			root = b
		case errors.Is(err, os.ErrNotExist):
			if root, err = get(ctx, opts.HTTPClient, t.Base+httpapi.PathCatalog+t.Catalog+"/tuf/1.root.json", 1<<20); err != nil {
				return tufrepo.TargetInfo{}, fmt.Errorf("getter: fetch trusted root: %w", err)
			}
			if err := os.WriteFile(rootFile, root, 0o600); err != nil {
				return tufrepo.TargetInfo{}, err
			}
			opts.Notice("trusting the first root of catalog %s from %s (kept in %s)", t.Catalog, u.Host, rootFile)
		default:
			return tufrepo.TargetInfo{}, err
		}
	}
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: t.Base + httpapi.PathCatalog + t.Catalog + "/tuf/",
		TrustedRoot: root,
		CacheDir:    filepath.Join(dir, "metadata"),
		HTTPClient:  opts.HTTPClient,
	})
	if err != nil {
		return tufrepo.TargetInfo{}, err
	}
	if err := c.Refresh(ctx); err != nil {
		return tufrepo.TargetInfo{}, fmt.Errorf("getter: catalog %s: %w", t.Catalog, err)
	}
	info, err := c.Target(ctx, t.Path)
	if err != nil {
		return info, fmt.Errorf("getter: %s: %w", t.Path, err)
	}
	return info, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

func get(ctx context.Context, hc *http.Client, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s: larger than %d bytes", u, max)
	}
	return b, err
}

var linkRE = regexp.MustCompile(`<([^>]+)>\s*;([^,]*)`)

// findSources asks the directory where the artifact is, without following
// its redirect: the relay it picked, the alternates it lists in Link
// headers, and the directory's own copy last.
func findSources(ctx context.Context, t Target, info tufrepo.TargetInfo, hc *http.Client) ([]string, error) {
	nc := *hc
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, "HEAD", t.URL(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := nc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getter: %w", err)
	}
	resp.Body.Close()
	var sources []string
	switch resp.StatusCode {
	case http.StatusOK:
		sources = append(sources, t.URL())
	case http.StatusFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusSeeOther:
		if loc, err := resp.Location(); err == nil {
			sources = append(sources, loc.String())
		}
		type alt struct {
			u   string
			pri int
		}
		var alts []alt
		for _, l := range resp.Header.Values("Link") {
			for _, m := range linkRE.FindAllStringSubmatch(l, -1) {
				if !strings.Contains(m[2], "rel=duplicate") {
					continue
				}
				pri := 999
				if i := strings.Index(m[2], "pri="); i >= 0 {
					pri, _ = strconv.Atoi(strings.TrimSpace(strings.Split(m[2][i+4:], ";")[0]))
				}
				alts = append(alts, alt{m[1], pri})
			}
		}
		sort.SliceStable(alts, func(i, j int) bool { return alts[i].pri < alts[j].pri })
		for _, a := range alts {
			sources = append(sources, a.u)
		}
	default:
		return nil, fmt.Errorf("getter: %s: %s", t.URL(), resp.Status)
	}
	return append(sources, t.Base+httpapi.PathBlobs+info.Digest.String()), nil
}

// fetchInto fills part from the sources until it holds info.Length bytes,
// resuming from what part already holds, and checks the digest.
func fetchInto(ctx context.Context, part string, info tufrepo.TargetInfo, sources []string, opts Options) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if have > info.Length {
		if err := f.Truncate(0); err != nil {
			return err
		}
		f.Seek(0, io.SeekStart)
		h.Reset()
		have = 0
	}
	var lastErr error
	for i, src := range sources {
		if have == info.Length {
			break
		}
		if i > 0 {
			opts.Notice("trying another source: %s", hostOf(src))
		}
		n, err := fetchRange(ctx, opts.HTTPClient, src, f, h, have, info.Length, opts.Progress)
		have += n
		if err == nil {
			break
		}
		lastErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if have != info.Length {
		return fmt.Errorf("getter: every source failed; last error: %w", lastErr)
	}
	var got catalog.Digest
	h.Sum(got[:0])
	if got != info.Digest {
		return ErrMismatch
	}
	return f.Sync()
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

// fetchRange appends bytes have..want-1 of src to f, hashing them.
func fetchRange(ctx context.Context, hc *http.Client, src string, f *os.File, h hash.Hash, have, want int64, progress func(int64, int64)) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", src, nil)
	if err != nil {
		return 0, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
			return 0, fmt.Errorf("%s: unexpected Content-Range %q", hostOf(src), resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			// The source ignored the range: keep the bytes we have and
			// skip as many of the new ones, hashing nothing twice.
			if _, err := io.CopyN(io.Discard, resp.Body, have); err != nil {
				return 0, err
			}
		}
	default:
		return 0, fmt.Errorf("%s: %s", hostOf(src), resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, err
	}
	w := io.MultiWriter(f, h)
	var done int64
	buf := make([]byte, 256<<10)
	// Never read past the signed length: an endless stream ends here.
	body := io.LimitReader(resp.Body, want-have)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return done, err
			}
			done += int64(n)
			if progress != nil {
				progress(have+done, want)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return done, rerr
		}
	}
	if have+done < want {
		return done, fmt.Errorf("%s: stream ended after %d of %d bytes", hostOf(src), have+done, want)
	}
	return done, nil
}
