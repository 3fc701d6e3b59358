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
	var b [etagLen + reprDigestLen]byte
	both := string(appendReprDigest(appendETag(b[:0], d), d))
	vals := make([]string, 5)
	vals[0], vals[1], vals[2] = both[:etagLen], both[etagLen:], contentType(name)
	vals[3], vals[4] = noSniff, dataOnly
	h["Etag"] = vals[0:1:1]
	h["Repr-Digest"] = vals[1:2:2]
	h["Content-Type"] = vals[2:3:3]
	h["X-Content-Type-Options"] = vals[3:4:4]
	h["Content-Security-Policy"] = vals[4:5:5]
}

// AppendArtifactHeaders appends the header lines SetArtifactHeaders sets
// to an HTTP/1.1 response head, for a server that writes its own.
func AppendArtifactHeaders(b []byte, name string, d catalog.Digest) []byte {
	b = append(b, "Content-Security-Policy: "+dataOnly+"\r\nContent-Type: "...)
	b = append(b, contentType(name)...)
	b = append(b, "\r\nEtag: "...)
	b = appendETag(b, d)
	b = append(b, "\r\nRepr-Digest: "...)
	b = appendReprDigest(b, d)
	return append(b, "\r\nX-Content-Type-Options: "+noSniff+"\r\n"...)
}

const (
	noSniff = "nosniff"
	// dataOnly keeps artifacts data, never pages of this site: even an
	// HTML file published in a catalog cannot run script in the server's
	// origin.
	dataOnly      = "default-src 'none'; sandbox"
	etagLen       = 2 + 64
	reprDigestLen = len("sha-256=::") + 44
)

// appendETag appends the ETag of d: its hex digest, quoted.
func appendETag(b []byte, d catalog.Digest) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, d[:])
	return append(b, '"')
}

// appendReprDigest appends the Repr-Digest value of d (RFC 9530).
func appendReprDigest(b []byte, d catalog.Digest) []byte {
	b = append(b, "sha-256=:"...)
	b = base64.StdEncoding.AppendEncode(b, d[:])
	return append(b, ':')
}

// contentType is the type of an artifact named name, from its extension.
func contentType(name string) string {
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		return ct
	}
	return "application/octet-stream"
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
