package catalog

import "time"

// Artifact is one file of a catalog as the directory publishes it.
type Artifact struct {
	Path    string
	Size    int64
	Digest  Digest
	ModTime time.Time
	// Version is the catalog version that last set this path.
	Version uint64
}

// Change is one entry of a catalog's change log: the current state of a path
// that changed after some version, or its removal.
type Change struct {
	Path    string
	Deleted bool
	// Size, Digest and ModTime are zero for a deletion.
	Size    int64
	Digest  Digest
	ModTime time.Time
	// Version is the catalog version that made this change.
	Version uint64
}

// Summary counts what one new catalog version changed.
type Summary struct {
	Added, Changed, Removed int
	// BytesHashed is what the scan had to read to learn the new digests.
	BytesHashed int64
}

// Empty reports whether the scan found nothing to change.
func (s Summary) Empty() bool { return s.Added == 0 && s.Changed == 0 && s.Removed == 0 }
