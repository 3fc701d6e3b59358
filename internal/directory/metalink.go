package directory

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// metalink is a Metalink 4 document (RFC 5854) for one artifact.
type metalink struct {
	XMLName   xml.Name       `xml:"urn:ietf:params:xml:ns:metalink metalink"`
	Generator string         `xml:"generator"`
	Published string         `xml:"published"`
	Files     []metalinkFile `xml:"file"`
}

type metalinkFile struct {
	Name string        `xml:"name,attr"`
	Size int64         `xml:"size"`
	Hash metalinkHash  `xml:"hash"`
	URLs []metalinkURL `xml:"url"`
}

type metalinkHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type metalinkURL struct {
	Priority int    `xml:"priority,attr"`
	URL      string `xml:",chardata"`
}

// serveMetalink answers /r/<catalog>/<path>.meta4: the artifact's size,
// SHA-256 and the relays that hold it, best first, then the directory's own
// copy, so a Metalink client (aria2c) can download from several sources
// and verify the result. The relays are those a download by this client
// could go to, nearest first.
func (s *Server) serveMetalink(w http.ResponseWriter, r *http.Request, c *catIndex, p string, e entry) error {
	cl := s.clientOf(r)
	var buf [16]candidate
	cands := s.ix.route(c, &e, &cl, "", buf[:0])
	suffix := "/" + c.name + "/" + catalog.EscapePath(p) + "?sha256=" + e.digest.String()
	f := metalinkFile{
		Name: path.Base(p),
		Size: e.size,
		Hash: metalinkHash{Type: "sha-256", Value: e.digest.String()},
	}
	for i, cand := range cands {
		f.URLs = append(f.URLs, metalinkURL{Priority: i + 1, URL: cand.url + suffix})
	}
	f.URLs = append(f.URLs, metalinkURL{Priority: len(cands) + 1, URL: s.cfg.PublicURL + httpapi.PathBlobs + e.digest.String()})
	doc := metalink{Generator: "odi", Published: time.Unix(0, e.mtime).UTC().Format(time.RFC3339), Files: []metalinkFile{f}}
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/metalink4+xml")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte(xml.Header))
		w.Write(b)
		w.Write([]byte("\n"))
	}
	return nil
}

// serveChecksum answers /r/<catalog>/<path>.sha256 in the format sha256sum
// checks: "<hex>  <name>".
func (s *Server) serveChecksum(w http.ResponseWriter, r *http.Request, p string, e entry) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("ETag", `"`+e.digest.String()+`.sha256"`)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, "%s  %s\n", e.digest, path.Base(p))
	}
	return nil
}
