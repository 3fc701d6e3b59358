package tufrepo

import "github.com/theupdateframework/go-tuf/v2/metadata"

// EncodeSnapshotForTest signs s with keys as a directory does, in
// canonical form, for tests outside the package that forge snapshots.
func EncodeSnapshotForTest(s *metadata.Metadata[metadata.SnapshotType], keys ...*PrivateKey) []byte {
	s.Signatures = nil
	data, err := encodeSnapshot(s, keys)
	if err != nil {
		panic(err)
	}
	return data
}

// UsesUpdaterForTest reports whether c holds a go-tuf updater, which a
// refresh by the fast path (fastsnapshot.go) drops.
func (c *Client) UsesUpdaterForTest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.u != nil
}
