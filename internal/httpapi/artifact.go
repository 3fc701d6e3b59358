package httpapi

import (
	"io"
	"mime"
	"net/http"
	"path"

	"github.com/opendistribution/odi/internal/catalog"
)

// SetArtifactHeaders sets what every response carrying artifact bytes has,
// on a directory or a relay: the digest as ETag and Repr-Digest (RFC 9530),
// a type from the name's extension, and headers that keep the bytes data.
func SetArtifactHeaders(h http.Header, name string, d catalog.Digest) {
	h.Set("ETag", d.ETag())
	h.Set("Repr-Digest", "sha-256=:"+d.Base64()+":")
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	// Artifacts are data, never pages of this site: even an HTML file
	// published in a catalog cannot run script in the server's origin.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
}

// CountingWriter counts the body bytes written through it. It keeps
// io.ReaderFrom visible, so net/http can still send files with sendfile.
type CountingWriter struct {
	http.ResponseWriter
	N int64
}

func (c *CountingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.N += int64(n)
	return n, err
}

// ReadFrom copies r to the response, through its own ReadFrom when it has
// one.
func (c *CountingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.N += n
	return n, err
}
