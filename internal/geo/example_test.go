package geo_test

import (
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/opendistribution/odi/internal/geo"
)

// A directory without a GeoIP database ranks relays from its configured
// ranges alone.
func Example() {
	ranges, err := geo.NewRanges([]geo.Range{
		{CIDR: "10.1.0.0/16", Location: geo.Location{Region: "campus-north", Country: "DE"}},
		{CIDR: "10.2.0.0/16", Location: geo.Location{Region: "campus-south", Country: "DE"}},
		{CIDR: "192.0.2.0/24", Location: geo.Location{Country: "FR", Lat: 48.86, Lon: 2.35, HasCoords: true}},
		{CIDR: "198.51.100.0/24", Location: geo.Location{Country: "US", Lat: 40.71, Lon: -74.01, HasCoords: true}},
	})
	if err != nil {
		log.Fatal(err)
	}
	res := geo.NewResolver(ranges, nil)

	client := geo.Merge(res.Lookup(netip.MustParseAddr("10.1.4.20")),
		geo.Location{Lat: 52.52, Lon: 13.40, HasCoords: true})
	relays := []struct {
		name string
		addr string
	}{
		{"paris", "192.0.2.10"},
		{"south", "10.2.0.5"},
		{"north", "10.1.9.9"},
		{"newyork", "198.51.100.7"},
		{"unknown", "203.0.113.1"},
	}
	type ranked struct {
		name string
		n    geo.Nearness
	}
	var list []ranked
	for _, r := range relays {
		list = append(list, ranked{r.name, geo.Rank(client, res.Lookup(netip.MustParseAddr(r.addr)))})
	}
	slices.SortStableFunc(list, func(a, b ranked) int { return a.n.Compare(b.n) })
	for _, r := range list {
		fmt.Printf("%-8s %s\n", r.name, r.n.Reason())
	}
	// Output:
	// north    same region campus-north
	// south    same country DE
	// paris    same continent EU
	// newyork  6,385 km
	// unknown  location unknown
}

// Reloading the databases on SIGHUP: open anew, swap, close the old DB.
// Close is safe while requests still use the old DB; see DB.
func ExampleDB_Close() {
	open := func() *geo.DB {
		db, err := geo.Open("/var/lib/GeoIP/GeoLite2-City.mmdb", "/var/lib/GeoIP/GeoLite2-ASN.mmdb")
		if err != nil {
			log.Fatal(err)
		}
		return db
	}
	var current atomic.Pointer[geo.DB]
	current.Store(open())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			db, err := geo.Open("/var/lib/GeoIP/GeoLite2-City.mmdb", "/var/lib/GeoIP/GeoLite2-ASN.mmdb")
			if err != nil {
				log.Print(err) // keep serving with the old databases
				continue
			}
			current.Swap(db).Close()
		}
	}()

	// In each request handler:
	_ = current.Load().Lookup(netip.MustParseAddr("192.0.2.1"))
}
