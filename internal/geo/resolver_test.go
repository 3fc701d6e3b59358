package geo_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo"
)

func TestResolver(t *testing.T) {
	db := openLoopback(t)
	ranges, err := geo.NewRanges([]geo.Range{
		// Pins a range the database knows, overriding its country.
		{CIDR: "127.0.2.128/25", Location: geo.Location{Region: "lab", Country: "CA"}},
		// Names a range the database also knows, adding only a region.
		{CIDR: "127.0.1.0/24", Location: geo.Location{Region: "berlin-dc"}},
		// A private range the database cannot know.
		{CIDR: "10.0.0.0/8", Location: geo.Location{Region: "campus", Country: "DE", Lat: 50, Lon: 8, HasCoords: true, ASN: 64999}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		resolver *geo.Resolver
		addr     string
		want     geo.Location
	}{
		{"database only", geo.NewResolver(nil, db), "127.0.2.1", newYork},
		{"range adds region", geo.NewResolver(ranges, db), "127.0.1.9", func() geo.Location {
			l := berlin
			l.Region = "berlin-dc"
			return l
		}()},
		{"range overrides country, keeps ASN", geo.NewResolver(ranges, db), "127.0.2.200",
			geo.Location{ASN: 64501, ASOrg: "Example Net US", Country: "CA", Continent: "NA", Region: "lab"}},
		{"range beside database", geo.NewResolver(ranges, db), "127.0.2.1", newYork},
		{"private range", geo.NewResolver(ranges, db), "10.1.2.3",
			geo.Location{ASN: 64999, Country: "DE", Continent: "EU", Lat: 50, Lon: 8, HasCoords: true, Region: "campus"}},
		{"ranges only", geo.NewResolver(ranges, nil), "127.0.1.9", geo.Location{Region: "berlin-dc"}},
		{"ipv4-mapped", geo.NewResolver(ranges, nil), "::ffff:10.0.0.1",
			geo.Location{ASN: 64999, Country: "DE", Continent: "EU", Lat: 50, Lon: 8, HasCoords: true, Region: "campus"}},
		{"neither knows", geo.NewResolver(ranges, db), "192.0.2.1", geo.Location{}},
		{"nothing configured", geo.NewResolver(nil, nil), "127.0.1.9", geo.Location{}},
		{"nil resolver", nil, "127.0.1.9", geo.Location{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.resolver.Lookup(netip.MustParseAddr(tc.addr))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Lookup(%s) (-want +got):\n%s", tc.addr, diff)
			}
		})
	}
}

func TestResolverLookupDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	db := openLoopback(t)
	ranges, err := geo.NewRanges([]geo.Range{{CIDR: "127.0.1.0/24", Location: geo.Location{Region: "dc"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := geo.NewResolver(ranges, db)
	addrs := []netip.Addr{netip.MustParseAddr("127.0.1.1"), netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("::1")}
	r.Lookup(addrs[0]) // warm the string cache
	allocs := testing.AllocsPerRun(100, func() {
		for _, a := range addrs {
			r.Lookup(a)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkResolverLookup(b *testing.B) {
	db := openLoopback(b)
	ranges, addrs := benchRanges(b)
	r := geo.NewResolver(ranges, db)
	addrs = append(addrs, netip.MustParseAddr("127.0.1.1"), netip.MustParseAddr("127.0.2.1"))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Lookup(addrs[i%len(addrs)])
		i++
	}
}
