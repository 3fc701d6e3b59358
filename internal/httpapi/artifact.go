package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"path"

	"github.com/opendistribution/odi/internal/catalog"
)

// SetArtifactHeaders sets what every response carrying artifact bytes has,
// on a directory or a relay: the digest as ETag and Repr-Digest (RFC 9530),
// a type from the name's extension, and headers that keep the bytes data.
//
// Relays call it for every download, so the values share one allocation
// and go in under their canonical keys directly.
func SetArtifactHeaders(h http.Header, name string, d catalog.Digest) {
	var b [2 + 64 + len("sha-256=::") + 44]byte
	b[0] = '"'
	hex.Encode(b[1:65], d[:])
	b[65] = '"'
	copy(b[66:], "sha-256=:")
	base64.StdEncoding.Encode(b[75:119], d[:])
	b[119] = ':'
	both := string(b[:])
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	vals := make([]string, 5)
	vals[0], vals[1], vals[2] = both[:66], both[66:], ct
	vals[3] = "nosniff"
	// Artifacts are data, never pages of this site: even an HTML file
	// published in a catalog cannot run script in the server's origin.
	vals[4] = "default-src 'none'; sandbox"
	h["Etag"] = vals[0:1:1]
	h["Repr-Digest"] = vals[1:2:2]
	h["Content-Type"] = vals[2:3:3]
	h["X-Content-Type-Options"] = vals[3:4:4]
	h["Content-Security-Policy"] = vals[4:5:5]
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
