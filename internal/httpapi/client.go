package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
)

// StatusError is a non-2xx answer from a server.
type StatusError struct {
	Status int
	Msg    string
	URL    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.URL, e.Status, e.Msg)
}

// Client calls a directory's API. Calls that concern a relay are signed
// with the relay's key when one is set.
type Client struct {
	base  string // no trailing slash
	hc    *http.Client
	relay string
	key   ed25519.PrivateKey
	now   func() time.Time
	// adminToken authorizes admin API calls.
	adminToken string
}

// NewClient returns a client for the directory at base (http://host:port).
func NewClient(base string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(base, "/"), hc: hc, now: time.Now}
}

// WithRelay returns a copy of c that signs its calls as relay id with key,
// using now as its clock.
func (c *Client) WithRelay(id string, key ed25519.PrivateKey, now func() time.Time) *Client {
	d := *c
	d.relay, d.key, d.now = id, key, now
	return &d
}

// Base returns the directory's URL.
func (c *Client) Base() string { return c.base }

// Enroll asks the directory to accept the relay; the call is signed with
// the key being enrolled, proving the relay holds it.
func (c *Client) Enroll(ctx context.Context, req EnrollRequest) (EnrollResponse, error) {
	var resp EnrollResponse
	err := c.do(ctx, "POST", PathEnroll, req, &resp)
	return resp, err
}

// Heartbeat sends the relay's periodic report.
func (c *Client) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error) {
	var resp HeartbeatResponse
	err := c.do(ctx, "POST", RelayPath(c.relay, "heartbeat"), req, &resp)
	return resp, err
}

// Inventory reports the blobs the relay holds.
func (c *Client) Inventory(ctx context.Context, req InventoryReport) (InventoryResponse, error) {
	var resp InventoryResponse
	err := c.do(ctx, "POST", RelayPath(c.relay, "inventory"), req, &resp)
	return resp, err
}

// Changes fetches one page of a catalog's change log after version since,
// starting at cursor ("" for the first page).
func (c *Client) Changes(ctx context.Context, name string, since uint64, cursor string) (ChangesPage, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page ChangesPage
	err := c.do(ctx, "GET", ChangesPath(name)+"?"+q.Encode(), nil, &page)
	return page, err
}

// Catalogs lists the directory's catalogs.
func (c *Client) Catalogs(ctx context.Context) ([]CatalogInfo, error) {
	var list []CatalogInfo
	err := c.do(ctx, "GET", PathCatalogs, nil, &list)
	return list, err
}

// Status fetches the directory's status.
func (c *Client) Status(ctx context.Context) (DirectoryStatus, error) {
	var st DirectoryStatus
	err := c.do(ctx, "GET", PathStatus, nil, &st)
	return st, err
}

// Blob opens blob d on the directory. The caller verifies what it reads.
func (c *Client) Blob(ctx context.Context, d catalog.Digest) (io.ReadCloser, int64, error) {
	return OpenBlob(ctx, c.hc, c.base+PathBlobs+d.String())
}

// OpenBlob GETs a blob URL and returns its body and announced size.
func OpenBlob(ctx context.Context, hc *http.Client, u string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, readError(resp, u)
	}
	return resp.Body, resp.ContentLength, nil
}

// maxResponse bounds what the client reads of an API answer: the largest
// is a change-log page.
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	u := c.base + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
	}
	if c.key != nil {
		id := c.relay
		if id == "" {
			id = auth.RelayID(c.key.Public().(ed25519.PublicKey))
		}
		auth.Sign(req, body, id, c.key, c.now())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp, u)
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponse))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", u, err)
	}
	return nil
}

func readError(resp *http.Response, u string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(b))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &StatusError{Status: resp.StatusCode, Msg: msg, URL: u}
}

// Events opens the relay's event stream. The caller reads Events from the
// body with a json.Decoder and closes it.
func (c *Client) Events(ctx context.Context) (io.ReadCloser, error) {
	u := c.base + RelayPath(c.relay, "events")
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	auth.Sign(req, nil, c.relay, c.key, c.now())
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp, u)
	}
	return resp.Body, nil
}

// WithAdminToken returns a copy of c that sends token to the admin API.
func (c *Client) WithAdminToken(token string) *Client {
	d := *c
	d.adminToken = token
	return &d
}

// Expunge withdraws an artifact (admin API).
func (c *Client) Expunge(ctx context.Context, req ExpungeRequest) (Expunge, error) {
	var e Expunge
	err := c.do(ctx, "POST", PathExpunge, req, &e)
	return e, err
}

// Expunges lists expunges and their confirmations (admin API).
func (c *Client) Expunges(ctx context.Context) ([]Expunge, error) {
	var list []Expunge
	err := c.do(ctx, "GET", PathExpunges, nil, &list)
	return list, err
}

// DrainRelay drains (or undrains) relay id from the directory (admin API).
func (c *Client) DrainRelay(ctx context.Context, id string, drain bool, reason string) (RelayInfo, error) {
	action := "drain"
	if !drain {
		action = "undrain"
	}
	var info RelayInfo
	err := c.do(ctx, "POST", AdminRelayPath(id, action), DrainRequest{Reason: reason}, &info)
	return info, err
}

// Rescan publishes catalog name's folder again (admin API).
func (c *Client) Rescan(ctx context.Context, name string, paths []string) (RescanResult, error) {
	var res RescanResult
	err := c.do(ctx, "POST", RescanPath(name), RescanRequest{Paths: paths}, &res)
	return res, err
}

// ShardState fetches one page of the current state of shards [start,
// end) of catalog name cut into 2^bits shards, starting at cursor.
func (c *Client) ShardState(ctx context.Context, name string, bits uint8, start, end uint32, cursor string) (ChangesPage, error) {
	q := url.Values{"shards": {fmt.Sprintf("%d:%d-%d", bits, start, end)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page ChangesPage
	err := c.do(ctx, "GET", ChangesPath(name)+"?"+q.Encode(), nil, &page)
	return page, err
}
