package geo_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo"
)

func region(name string) geo.Location { return geo.Location{Region: name} }

func TestRangesLookup(t *testing.T) {
	r, err := geo.NewRanges([]geo.Range{
		{CIDR: "10.0.0.0/8", Location: region("private")},
		{CIDR: "10.1.0.0/16", Location: region("campus")},
		{CIDR: "10.1.2.0/24", Location: region("lab")},
		{CIDR: "10.1.2.128/25", Location: region("lab-b")},
		{CIDR: "10.1.3.255/32", Location: region("printer")},
		{CIDR: "0.0.0.0/0", Location: region("v4-default")},
		{CIDR: "192.0.2.0/24", Location: geo.Location{Region: "doc", Country: "DE"}},
		{CIDR: "2001:db8::/32", Location: region("doc6")},
		{CIDR: "2001:db8:1::/48", Location: region("doc6-1")},
		{CIDR: "fd00::/8", Location: region("ula")},
		{CIDR: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", Location: region("top6")},
		{CIDR: "::ffff:198.51.100.0/120", Location: region("mapped")},
		{CIDR: "255.255.255.0/24", Location: region("top4")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want string // region; "" for no match
	}{
		{"10.0.0.1", "private"},
		{"10.1.0.1", "campus"},
		{"10.1.2.1", "lab"},
		{"10.1.2.127", "lab"},
		{"10.1.2.128", "lab-b"},
		{"10.1.2.255", "lab-b"},
		{"10.1.3.0", "campus"},
		{"10.1.3.255", "printer"},
		{"10.1.4.0", "campus"},
		{"10.1.255.255", "campus"},
		{"10.2.0.0", "private"},
		{"10.255.255.255", "private"},
		{"11.0.0.0", "v4-default"},
		{"0.0.0.0", "v4-default"},
		{"9.255.255.255", "v4-default"},
		{"255.255.254.255", "v4-default"},
		{"255.255.255.255", "top4"},
		{"::ffff:10.1.2.200", "lab-b"},
		{"198.51.100.7", "mapped"},
		{"2001:db8::1", "doc6"},
		{"2001:db8:1::1", "doc6-1"},
		{"2001:db8:2::1", "doc6"},
		{"2001:db9::", ""},
		{"fd12:3456::1", "ula"},
		{"fe80::1%eth0", ""},
		{"::1", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "top6"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			loc, ok := r.Lookup(netip.MustParseAddr(tc.addr))
			if ok != (tc.want != "") || loc.Region != tc.want {
				t.Errorf("Lookup(%s) = %q, %v; want %q", tc.addr, loc.Region, ok, tc.want)
			}
		})
	}
}

func TestRangesFillsContinentFromCountry(t *testing.T) {
	r, err := geo.NewRanges([]geo.Range{
		{CIDR: "10.0.0.0/8", Location: geo.Location{Region: "hq", Country: "JP"}},
		{CIDR: "10.1.0.0/16", Location: geo.Location{Country: "RU", Continent: "AS"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want geo.Location
	}{
		{"10.0.0.1", geo.Location{Region: "hq", Country: "JP", Continent: "AS"}},
		{"10.1.0.1", geo.Location{Country: "RU", Continent: "AS"}}, // explicit wins
	} {
		got, _ := r.Lookup(netip.MustParseAddr(tc.addr))
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Lookup(%s) (-want +got):\n%s", tc.addr, diff)
		}
	}
}

func TestRangesNilAndEmpty(t *testing.T) {
	var nilRanges *geo.Ranges
	if _, ok := nilRanges.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("nil Ranges matched")
	}
	empty, err := geo.NewRanges(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Lookup(netip.MustParseAddr("::1")); ok {
		t.Error("empty Ranges matched")
	}
	if _, ok := empty.Lookup(netip.Addr{}); ok {
		t.Error("empty Ranges matched the zero Addr")
	}
}

// TestRangesMatchesNaiveLongestPrefix checks the flattened table against
// the obvious definition on random nested and disjoint prefixes.
func TestRangesMatchesNaiveLongestPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var entries []geo.Range
		seen := map[netip.Prefix]bool{}
		for len(entries) < 60 {
			p := randomPrefix(rng, round%2 == 0)
			if seen[p] {
				continue
			}
			seen[p] = true
			entries = append(entries, geo.Range{CIDR: p.String(), Location: region(p.String())})
		}
		r, err := geo.NewRanges(entries)
		if err != nil {
			t.Fatal(err)
		}
		for range 2000 {
			var a netip.Addr
			// Probe near prefix edges, where off-by-one errors live.
			p := netip.MustParsePrefix(entries[rng.IntN(len(entries))].CIDR)
			a = p.Addr()
			if rng.IntN(2) == 0 {
				a = lastOf(p)
			}
			switch rng.IntN(3) {
			case 0:
				a = a.Prev()
			case 1:
				a = a.Next()
			}
			if !a.IsValid() {
				continue
			}
			want := naiveLookup(entries, a)
			got, _ := r.Lookup(a)
			if got.Region != want {
				t.Fatalf("round %d: Lookup(%s) = %q, want %q", round, a, got.Region, want)
			}
		}
	}
}

func randomPrefix(rng *rand.Rand, v4 bool) netip.Prefix {
	if v4 {
		var b [4]byte
		b[0] = 10
		b[1] = byte(rng.IntN(4))
		b[2] = byte(rng.IntN(4))
		b[3] = byte(rng.IntN(256))
		bits := 8 + rng.IntN(25)
		p, _ := netip.AddrFrom4(b).Prefix(bits)
		return p
	}
	var b [16]byte
	b[0], b[1] = 0xfd, byte(rng.IntN(4))
	b[2] = byte(rng.IntN(4))
	b[15] = byte(rng.IntN(256))
	bits := 8 + rng.IntN(121)
	p, _ := netip.AddrFrom16(b).Prefix(bits)
	return p
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func naiveLookup(entries []geo.Range, a netip.Addr) string {
	best, bestBits := "", -1
	for _, e := range entries {
		p := netip.MustParsePrefix(e.CIDR)
		if p.Contains(a) && p.Bits() > bestBits {
			best, bestBits = e.Location.Region, p.Bits()
		}
	}
	return best
}

// rangeErrs builds a table from entries and returns its problems, failing
// if there are none.
func rangeErrs(t *testing.T, entries ...geo.Range) error {
	t.Helper()
	r, err := geo.NewRanges(entries)
	if err == nil {
		t.Fatalf("NewRanges = %v, want error", r)
	}
	if !strings.HasPrefix(err.Error(), "geo: ") {
		t.Errorf("error %q lacks the geo: prefix", err)
	}
	return err
}

func TestRangesRejectsBadCIDR(t *testing.T) {
	for _, tc := range []struct{ cidr, mention string }{
		{"10.0.0.0/33", "10.0.0.0/33"},
		{"10.0.0.0", "no prefix length"},
		{"10.0.0.1/8", "host bits set; the prefix is 10.0.0.0/8"},
		{"2001:db8::1/32", "the prefix is 2001:db8::/32"},
		{"fe80::/10%eth0", "fe80"},
		{"campus", "campus"},
		{"", "ranges[0]"},
	} {
		t.Run(tc.cidr, func(t *testing.T) {
			err := rangeErrs(t, geo.Range{CIDR: tc.cidr})
			if !errors.Is(err, geo.ErrBadCIDR) {
				t.Errorf("error %v is not ErrBadCIDR", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestRangesRejectsDuplicatePrefix(t *testing.T) {
	for _, tc := range []struct{ name, a, b string }{
		{"same spelling", "10.0.0.0/8", "10.0.0.0/8"},
		{"ipv6 spellings", "2001:db8::/32", "2001:0db8:0000::/32"},
		{"ipv4-mapped", "192.0.2.0/24", "::ffff:192.0.2.0/120"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rangeErrs(t, geo.Range{CIDR: tc.a}, geo.Range{CIDR: tc.b})
			if !errors.Is(err, geo.ErrDuplicatePrefix) {
				t.Errorf("error %v is not ErrDuplicatePrefix", err)
			}
			if want := "ranges[1] (" + tc.b + "): duplicate prefix: same as ranges[0]"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		})
	}
}

func TestRangesRejectsBadLocation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		loc     geo.Location
		want    error
		mention string
	}{
		{"lower-case country", geo.Location{Country: "de"}, geo.ErrBadCountry, `"de"`},
		{"UK for GB", geo.Location{Country: "UK"}, geo.ErrBadCountry, "GB"},
		{"unassigned country", geo.Location{Country: "ZZ"}, geo.ErrBadCountry, `"ZZ"`},
		{"three letters", geo.Location{Country: "DEU"}, geo.ErrBadCountry, `"DEU"`},
		{"continent", geo.Location{Continent: "EUR"}, geo.ErrBadContinent, `"EUR"`},
		{"antarctica spelled out", geo.Location{Continent: "Antarctica"}, geo.ErrBadContinent, "AN"},
		{"latitude", geo.Location{Lat: 91, HasCoords: true}, geo.ErrBadCoordinates, "latitude 91"},
		{"longitude", geo.Location{Lon: -180.5, HasCoords: true}, geo.ErrBadCoordinates, "longitude -180.5"},
		{"coordinates without HasCoords", geo.Location{Lat: 52, Lon: 13}, geo.ErrBadCoordinates, "HasCoords"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rangeErrs(t, geo.Range{CIDR: "10.0.0.0/8", Location: tc.loc})
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestRangesReportsEveryProblemAtOnce(t *testing.T) {
	err := rangeErrs(t,
		geo.Range{CIDR: "10.0.0.0/8", Location: region("ok")},
		geo.Range{CIDR: "10.0.0.0/33"},
		geo.Range{CIDR: "10.0.0.0/8"},
		geo.Range{CIDR: "192.0.2.0/24", Location: geo.Location{Country: "XX", Continent: "Europe", Lat: 100, HasCoords: true}},
	)
	var got []string
	for _, re := range rangeErrors(err) {
		got = append(got, fmt.Sprintf("%d %s", re.Index, kind(re.Err)))
	}
	want := []string{
		"1 ErrBadCIDR",
		"2 ErrDuplicatePrefix",
		"3 ErrBadCountry",
		"3 ErrBadContinent",
		"3 ErrBadCoordinates",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s\nerror:\n%v", diff, err)
	}
}

// rangeErrors collects the *RangeErrors in err's tree, in order.
func rangeErrors(err error) []*geo.RangeError {
	if re, ok := err.(*geo.RangeError); ok {
		return []*geo.RangeError{re}
	}
	var out []*geo.RangeError
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = rangeErrors(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, rangeErrors(e)...)
		}
	}
	return out
}

func kind(err error) string {
	for _, k := range []struct {
		name string
		err  error
	}{
		{"ErrBadCIDR", geo.ErrBadCIDR},
		{"ErrDuplicatePrefix", geo.ErrDuplicatePrefix},
		{"ErrBadCountry", geo.ErrBadCountry},
		{"ErrBadContinent", geo.ErrBadContinent},
		{"ErrBadCoordinates", geo.ErrBadCoordinates},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return err.Error()
}

// benchRanges builds ~100 ranges like a directory config might hold: a few
// private blocks carved into sites, and per-provider IPv4 and IPv6 blocks.
func benchRanges(b *testing.B) (*geo.Ranges, []netip.Addr) {
	var entries []geo.Range
	for i := range 40 {
		entries = append(entries, geo.Range{
			CIDR:     fmt.Sprintf("%d.%d.0.0/16", 20+i, i*3%256),
			Location: geo.Location{Region: fmt.Sprintf("v4-%d", i), Country: "DE"},
		})
		entries = append(entries, geo.Range{
			CIDR:     fmt.Sprintf("2001:db8:%x::/48", i),
			Location: geo.Location{Region: fmt.Sprintf("v6-%d", i), Country: "FR"},
		})
	}
	entries = append(entries, geo.Range{CIDR: "10.0.0.0/8", Location: region("private")})
	for i := range 19 {
		entries = append(entries, geo.Range{CIDR: fmt.Sprintf("10.%d.0.0/16", i), Location: region(fmt.Sprintf("site-%d", i))})
	}
	r, err := geo.NewRanges(entries)
	if err != nil {
		b.Fatal(err)
	}
	if r.Len() != 100 {
		b.Fatalf("Len = %d", r.Len())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		p := netip.MustParsePrefix(entries[rng.IntN(len(entries))].CIDR)
		a := p.Addr().AsSlice()
		a[len(a)-1] = byte(rng.IntN(256))
		if i%8 == 0 {
			a[0] ^= 0x80 // some misses
		}
		addrs[i], _ = netip.AddrFromSlice(a)
	}
	return r, addrs
}

func BenchmarkRangesLookup(b *testing.B) {
	r, addrs := benchRanges(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Lookup(addrs[i%len(addrs)])
		i++
	}
}
