package geo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Range maps the addresses of one CIDR prefix to a Location, as written in
// a directory's config.
type Range struct {
	CIDR     string
	Location Location
}

// Problems with a Range, as reported by NewRanges (besides those of
// Location.Validate).
var (
	ErrBadCIDR         = errors.New("bad CIDR")
	ErrDuplicatePrefix = errors.New("duplicate prefix")
)

// RangeError is one problem with one entry given to NewRanges.
type RangeError struct {
	Index int    // position in the slice given to NewRanges
	CIDR  string // as given
	Err   error
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("ranges[%d] (%s): %v", e.Index, e.CIDR, e.Err)
}

func (e *RangeError) Unwrap() error { return e.Err }

// Ranges answers "which configured range holds this address" by longest
// prefix match. It is immutable once built and safe for concurrent use.
//
// Prefixes in a routing table are nested or disjoint, never partly
// overlapping, so the table can be flattened once into sorted boundaries:
// each boundary starts a stretch of addresses whose most specific prefix is
// the same. A lookup is then one binary search, with no allocation, and
// its cost does not depend on how many prefix lengths are in use.
type Ranges struct {
	locs   []Location
	v4, v6 []bound // sorted by start
}

// bound starts a stretch of addresses that belongs to locs[loc], or to no
// range if loc < 0.
type bound struct {
	start u128
	loc   int32
}

// prefixEntry is a parsed range awaiting flattening.
type prefixEntry struct {
	first, last u128
	bits        int
	loc         int32
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// next returns a+1, or false if a is end, the last address of its family.
func (a u128) next(end u128) (u128, bool) {
	switch {
	case a == end:
		return u128{}, false
	case a.lo != ^uint64(0):
		return u128{a.hi, a.lo + 1}, true
	default:
		return u128{a.hi + 1, 0}, true
	}
}

// u128Of places an IPv4 address in the low 32 bits, so the same sweep
// serves both families.
func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// NewRanges validates entries and builds the table. It reports every
// problem at once, each as a *RangeError wrapping one of ErrBadCIDR,
// ErrDuplicatePrefix, ErrBadCountry, ErrBadContinent or ErrBadCoordinates,
// so an operator fixes the config in one round.
//
// A location that names a country but no continent gets the country's
// continent. IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) are stored as
// the IPv4 prefixes they denote, as lookups of mapped addresses are.
func NewRanges(entries []Range) (*Ranges, error) {
	var errs []error
	bad := func(i int, err error) {
		errs = append(errs, &RangeError{Index: i, CIDR: entries[i].CIDR, Err: err})
	}
	seen := make(map[netip.Prefix]int, len(entries))
	var v4, v6 []prefixEntry
	r := &Ranges{locs: make([]Location, len(entries))}
	for i, e := range entries {
		loc := e.Location
		if loc.Continent == "" {
			loc.Continent = ContinentOf(loc.Country)
		}
		r.locs[i] = loc
		if err := loc.Validate(); err != nil {
			for _, err := range unjoin(err) {
				bad(i, err)
			}
		}
		p, err := parseCIDR(e.CIDR)
		if err != nil {
			bad(i, err)
			continue
		}
		if j, dup := seen[p]; dup {
			bad(i, fmt.Errorf("%w: same as ranges[%d] (%s)", ErrDuplicatePrefix, j, entries[j].CIDR))
			continue
		}
		seen[p] = i
		pe := prefixEntry{first: u128Of(p.Addr()), last: u128Of(lastAddr(p)), bits: p.Bits(), loc: int32(i)}
		if p.Addr().Is4() {
			v4 = append(v4, pe)
		} else {
			v6 = append(v6, pe)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("geo: bad address ranges:\n%w", errors.Join(errs...))
	}
	r.v4 = flatten(v4, u128{0, 1<<32 - 1})
	r.v6 = flatten(v6, u128{^uint64(0), ^uint64(0)})
	return r, nil
}

// flatten turns prefixes of one family, whose last address is end, into
// the boundaries of the stretches each most specific prefix owns.
func flatten(ps []prefixEntry, end u128) []bound {
	// Wider prefixes first among those starting at the same address, so
	// the sweep meets every prefix after all prefixes that contain it.
	slices.SortFunc(ps, func(a, b prefixEntry) int {
		switch {
		case a.first.less(b.first):
			return -1
		case b.first.less(a.first):
			return 1
		}
		return a.bits - b.bits
	})
	var bs []bound
	emit := func(start u128, loc int32) {
		if n := len(bs); n > 0 && bs[n-1].start == start {
			bs[n-1].loc = loc // an inner prefix ended where the next begins
			return
		}
		bs = append(bs, bound{start, loc})
	}
	// stack holds the chain of prefixes containing the current one. When
	// a prefix ends, the addresses after it return to the innermost prefix
	// still open, or to none.
	var stack []prefixEntry
	closeBefore := func(start u128, all bool) {
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			if !all && !top.last.less(start) {
				return
			}
			stack = stack[:len(stack)-1]
			after, ok := top.last.next(end)
			if !ok {
				continue
			}
			outer := int32(-1)
			if len(stack) > 0 {
				outer = stack[len(stack)-1].loc
			}
			emit(after, outer)
		}
	}
	for _, p := range ps {
		closeBefore(p.first, false)
		emit(p.first, p.loc)
		stack = append(stack, p)
	}
	closeBefore(u128{}, true)
	return bs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// parseCIDR accepts only canonical prefixes: "10.0.0.1/8" is far more often
// a typo for 10.0.0.1/32 or 10.0.0.0/8 than a deliberate spelling, and
// silently masking it would pin the wrong addresses.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
			return netip.Prefix{}, fmt.Errorf("%w: no prefix length; for one address write %s/%d", ErrBadCIDR, a, a.BitLen())
		}
		return netip.Prefix{}, fmt.Errorf("%w: %w", ErrBadCIDR, err)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%w: host bits set; the prefix is %s", ErrBadCIDR, m)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// Len returns the number of ranges in the table.
func (r *Ranges) Len() int {
	if r == nil {
		return 0
	}
	return len(r.locs)
}

// Lookup returns the Location of the most specific range holding addr. A
// nil *Ranges holds nothing. IPv4-mapped IPv6 addresses are looked up as
// IPv4; zones are ignored.
func (r *Ranges) Lookup(addr netip.Addr) (Location, bool) {
	if r == nil || !addr.IsValid() {
		return Location{}, false
	}
	addr = addr.Unmap()
	bs := r.v6
	if addr.Is4() {
		bs = r.v4
	}
	x := u128Of(addr)
	// Find the last bound starting at or before x.
	lo, hi := 0, len(bs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.less(bs[mid].start) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == 0 {
		return Location{}, false
	}
	loc := bs[lo-1].loc
	if loc < 0 {
		return Location{}, false
	}
	return r.locs[loc], true
}
