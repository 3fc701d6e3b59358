package httpapi

import (
	"io"
	"net/http"
	"sync/atomic"
)

// CountingTransport counts the bytes of the response bodies read through
// it, for measuring what a client downloads.
type CountingTransport struct {
	Base http.RoundTripper
	N    atomic.Int64
}

func (c *CountingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.Base.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.N}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
