package geo

import "net/netip"

// Resolver answers where an address is from the directory's configured
// ranges and its MaxMind databases. It is immutable and safe for concurrent
// use; on reload the caller builds a new one and swaps it in.
type Resolver struct {
	ranges *Ranges
	db     *DB
}

// NewResolver combines ranges and db; either may be nil. The Resolver does
// not own db: closing it stays the caller's job, after the swap.
func NewResolver(ranges *Ranges, db *DB) *Resolver {
	return &Resolver{ranges: ranges, db: db}
}

// Lookup returns what is known of addr, or the zero Location. A nil
// Resolver knows nothing.
//
// A configured range wins over the databases field by field (see Merge):
// operators pin ranges the databases get wrong or cannot know, such as
// private networks, anycast, or a campus split in regions, while the
// fields a range leaves out (often the ASN) still come from the database.
func (r *Resolver) Lookup(addr netip.Addr) Location {
	if r == nil {
		return Location{}
	}
	var looked Location
	if r.db != nil {
		looked = r.db.Lookup(addr)
	}
	if pinned, ok := r.ranges.Lookup(addr); ok {
		return Merge(looked, pinned)
	}
	return looked
}
