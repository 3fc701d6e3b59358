package tufrepo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// Limits bound the size of each metadata file a client accepts. The
// updater already bounds snapshot and bins by the lengths signed in
// timestamp and snapshot; these limits also hold when a stolen online key
// signs enormous lengths.
type Limits struct {
	Root      int64
	Timestamp int64
	Snapshot  int64
	// Targets bounds top-level targets and each bin.
	Targets int64
}

// DefaultLimits fit a 10-million-artifact catalog (65536 bins make a
// snapshot of about 3 MB; a bin then holds about 150 targets, 25 KB) with
// room for bins that have grown fourfold before re-binning.
func DefaultLimits() Limits {
	return Limits{Root: 512 << 10, Timestamp: 16 << 10, Snapshot: 8 << 20, Targets: 8 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Root <= 0 {
		l.Root = d.Root
	}
	if l.Timestamp <= 0 {
		l.Timestamp = d.Timestamp
	}
	if l.Snapshot <= 0 {
		l.Snapshot = d.Snapshot
	}
	if l.Targets <= 0 {
		l.Targets = d.Targets
	}
	return l
}

// httpFetcher is go-tuf's Fetcher over the caller's *http.Client. The
// Fetcher interface has no context, so the client sets ctx before each
// call into the updater (calls are serialized by Client.mu).
type httpFetcher struct {
	client *http.Client
	limits Limits
	ctx    context.Context
	// timestamp, when set, answers the next fetch of timestamp.json: the
	// client read it first to decide how to refresh (Client.refreshLocked).
	timestamp []byte
}

var _ fetcher.Fetcher = (*httpFetcher)(nil)

// limitFor picks the configured limit from the file name the updater asks
// for, whatever length the (possibly compromised) parent metadata states.
func (f *httpFetcher) limitFor(rawURL string) int64 {
	u, err := url.Parse(rawURL)
	if err != nil {
		return f.limits.Timestamp
	}
	name := path.Base(u.Path)
	if name == TimestampFile {
		return f.limits.Timestamp
	}
	role, _, ok := parseMetaFileName(name)
	switch {
	case !ok:
		return f.limits.Targets
	case role == metadata.ROOT:
		return f.limits.Root
	case role == metadata.SNAPSHOT:
		return f.limits.Snapshot
	default:
		return f.limits.Targets
	}
}

func isTimestampURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && path.Base(u.Path) == TimestampFile
}

// DownloadFile fetches urlPath, refusing more than maxLength bytes or the
// configured limit for the file, whichever is smaller.
func (f *httpFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx := f.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if f.timestamp != nil && isTimestampURL(urlPath) {
		data := f.timestamp
		f.timestamp = nil
		if maxLength > 0 && int64(len(data)) > maxLength {
			return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s exceeds %d bytes", urlPath, maxLength)}
		}
		return data, nil
	}
	return f.download(ctx, urlPath, maxLength)
}

// download is DownloadFile with its own context, for fetches that run side
// by side.
func (f *httpFetcher) download(ctx context.Context, urlPath string, maxLength int64) ([]byte, error) {
	if l := f.limitFor(urlPath); maxLength <= 0 || maxLength > l {
		maxLength = l
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, urlPath, nil)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The updater ends its walk of the root chain on a 404, so the
		// status must reach it as ErrDownloadHTTP.
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: urlPath}
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > maxLength {
			return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, limit %d", urlPath, n, maxLength)}
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s exceeds %d bytes", urlPath, maxLength)}
	}
	return data, nil
}
