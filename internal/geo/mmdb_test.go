package geo_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/geo/geotest"
)

// loopbackFiles writes the shared loopback world as City and ASN files.
func loopbackFiles(t testing.TB) (city, asn string) {
	t.Helper()
	dir := t.TempDir()
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, geotest.LoopbackCities())
	geotest.WriteASN(t, asn, geotest.LoopbackASNs())
	return city, asn
}

func openLoopback(t testing.TB) *geo.DB {
	t.Helper()
	city, asn := loopbackFiles(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var (
	berlin = geo.Location{ASN: 64500, ASOrg: "Example Net DE", Country: "DE", Continent: "EU",
		Lat: 52.52, Lon: 13.405, HasCoords: true}
	newYork = geo.Location{ASN: 64501, ASOrg: "Example Net US", Country: "US", Continent: "NA",
		Lat: 40.7128, Lon: -74.006, HasCoords: true}
	amsterdam = geo.Location{ASN: 64505, ASOrg: "Example Net NL", Country: "NL", Continent: "EU",
		Lat: 52.3676, Lon: 4.9041, HasCoords: true}
)

func TestDBLookup(t *testing.T) {
	db := openLoopback(t)
	for _, tc := range []struct {
		name, addr string
		want       geo.Location
	}{
		{"ipv4", "127.0.1.7", berlin},
		{"ipv4 other range", "127.0.2.200", newYork},
		{"ipv4-mapped ipv6", "::ffff:127.0.1.7", berlin},
		{"ipv6", "::1", amsterdam},
		{"ipv6 with zone", "::1%lo", amsterdam},
		{"not covered", "127.0.9.1", geo.Location{}},
		{"public, not covered", "2001:db8::1", geo.Location{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := db.Lookup(netip.MustParseAddr(tc.addr))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Lookup(%s) (-want +got):\n%s", tc.addr, diff)
			}
		})
	}
	t.Run("invalid address", func(t *testing.T) {
		if got := db.Lookup(netip.Addr{}); !got.IsZero() {
			t.Errorf("Lookup(zero Addr) = %+v, want zero", got)
		}
	})
	if n := db.Errors(); n != 0 {
		t.Errorf("Errors() = %d, want 0", n)
	}
}

func TestDBLookupEitherDatabaseAlone(t *testing.T) {
	city, asn := loopbackFiles(t)
	addr := netip.MustParseAddr("127.0.1.1")
	for _, tc := range []struct {
		name      string
		city, asn string
		want      geo.Location
	}{
		{"city only", city, "", geo.Location{Country: "DE", Continent: "EU", Lat: 52.52, Lon: 13.405, HasCoords: true}},
		{"asn only", "", asn, geo.Location{ASN: 64500, ASOrg: "Example Net DE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := geo.Open(tc.city, tc.asn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if diff := cmp.Diff(tc.want, db.Lookup(addr)); diff != "" {
				t.Errorf("Lookup (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDBLookupRecordShapes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		write func(path string)
		addr  string
		want  geo.Location
	}{
		{
			name: "country database has no coordinates",
			write: func(p string) {
				geotest.WriteCountry(t, p, []geotest.CityEntry{{Prefix: "127.0.1.0/24", Country: "DE", Continent: "EU", Lat: 52.5, Lon: 13.4}})
			},
			addr: "127.0.1.1",
			want: geo.Location{Country: "DE", Continent: "EU"},
		},
		{
			name: "registered country when no country",
			write: func(p string) {
				geotest.Write(t, p, geotest.DB{Type: "GeoIP2-City", Records: []geotest.Record{{
					Prefix: "127.0.1.0/24",
					Data:   map[string]any{"registered_country": map[string]any{"iso_code": "SE", "geoname_id": 1}},
				}}})
			},
			addr: "127.0.1.1",
			want: geo.Location{Country: "SE", Continent: "EU"},
		},
		{
			name: "coordinates at 0,0 are coordinates",
			write: func(p string) {
				geotest.WriteCity(t, p, []geotest.CityEntry{{Prefix: "127.0.1.0/24", Coords0: true}})
			},
			addr: "127.0.1.1",
			want: geo.Location{HasCoords: true},
		},
		{
			name: "ipv4-only database",
			write: func(p string) {
				geotest.Write(t, p, geotest.DB{Type: "GeoLite2-Country", IPVersion: 4, RecordSize: 24, Records: []geotest.Record{{
					Prefix: "127.0.1.0/24",
					Data:   map[string]any{"country": map[string]any{"iso_code": "DE"}, "continent": map[string]any{"code": "EU"}},
				}}})
			},
			addr: "::ffff:127.0.1.1",
			want: geo.Location{Country: "DE", Continent: "EU"},
		},
		{
			name: "ipv6 in ipv4-only database",
			write: func(p string) {
				geotest.Write(t, p, geotest.DB{Type: "GeoLite2-Country", IPVersion: 4, Records: []geotest.Record{{
					Prefix: "127.0.1.0/24",
					Data:   map[string]any{"country": map[string]any{"iso_code": "DE"}},
				}}})
			},
			addr: "2001:db8::1",
			want: geo.Location{},
		},
		{
			name: "32-bit records and unknown fields",
			write: func(p string) {
				geotest.Write(t, p, geotest.DB{Type: "GeoIP2-Enterprise", RecordSize: 32, Records: []geotest.Record{{
					Prefix: "2001:db8::/32",
					Data: map[string]any{
						"traits":       map[string]any{"is_anycast": true, "connection_type": "Corporate"},
						"subdivisions": []any{map[string]any{"iso_code": "BY"}},
						"country":      map[string]any{"iso_code": "DE", "is_in_european_union": true},
						"location":     map[string]any{"latitude": 48.1, "longitude": 11.6, "metro_code": 7},
					},
				}}})
			},
			addr: "2001:db8:1::1",
			want: geo.Location{Country: "DE", Continent: "EU", Lat: 48.1, Lon: 11.6, HasCoords: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".mmdb")
			tc.write(path)
			db, err := geo.Open(path, "")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if diff := cmp.Diff(tc.want, db.Lookup(netip.MustParseAddr(tc.addr))); diff != "" {
				t.Errorf("Lookup(%s) (-want +got):\n%s", tc.addr, diff)
			}
			if n := db.Errors(); n != 0 {
				t.Errorf("Errors() = %d, want 0", n)
			}
		})
	}
}

func TestDBCountsMalformedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.mmdb")
	geotest.Write(t, path, geotest.DB{Type: "GeoLite2-City", Records: []geotest.Record{{
		Prefix: "127.0.1.0/24",
		Data:   map[string]any{"country": "DE"}, // a string where a map belongs
	}}})
	db, err := geo.Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Lookup(netip.MustParseAddr("127.0.1.1")); !got.IsZero() {
		t.Errorf("Lookup = %+v, want zero", got)
	}
	if n := db.Errors(); n != 1 {
		t.Errorf("Errors() = %d, want 1", n)
	}
}

func TestDBInfo(t *testing.T) {
	city, asn := loopbackFiles(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []string
	for _, i := range db.Info() {
		got = append(got, i.Type+" "+filepath.Base(i.Path)+" "+i.Built.Format("2006-01-02"))
	}
	want := []string{"GeoLite2-City city.mmdb 2023-11-14", "GeoLite2-ASN asn.mmdb 2023-11-14"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
}

// openErr opens and returns the error, failing if Open succeeded.
func openErr(t *testing.T, city, asn string) error {
	t.Helper()
	db, err := geo.Open(city, asn)
	if err == nil {
		db.Close()
		t.Fatalf("Open(%q, %q) succeeded, want error", city, asn)
	}
	return err
}

// wantErr checks that err mentions every fragment, so operators see which
// file is wrong and why.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
	if !strings.HasPrefix(err.Error(), "geo: ") {
		t.Errorf("error %q lacks the geo: prefix", err)
	}
}

func TestOpenRefusesASNFileAsCityDB(t *testing.T) {
	_, asn := loopbackFiles(t)
	err := openErr(t, asn, "")
	wantErr(t, err, asn, `"GeoLite2-ASN" is an ASN database, not a City/Country database`)
	if !errors.Is(err, geo.ErrBadDatabase) {
		t.Errorf("error %v is not ErrBadDatabase", err)
	}
}

func TestOpenRefusesCityFileAsASNDB(t *testing.T) {
	city, _ := loopbackFiles(t)
	err := openErr(t, "", city)
	wantErr(t, err, city, `"GeoLite2-City" is a City/Country database, not an ASN database`)
}

func TestOpenRefusesUnknownDatabaseType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anon.mmdb")
	geotest.Write(t, path, geotest.DB{Type: "GeoIP2-Anonymous-IP", Records: []geotest.Record{{
		Prefix: "127.0.1.0/24", Data: map[string]any{"is_anonymous": true},
	}}})
	wantErr(t, openErr(t, path, ""), path, `"GeoIP2-Anonymous-IP" is neither`)
}

func TestOpenRefusesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.mmdb")
	err := openErr(t, path, "")
	wantErr(t, err, path)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v is not os.ErrNotExist", err)
	}
}

func TestOpenRefusesMissingASNFileAndKeepsNothingOpen(t *testing.T) {
	city, _ := loopbackFiles(t)
	path := filepath.Join(t.TempDir(), "nope.mmdb")
	wantErr(t, openErr(t, city, path), path, "ASN database")
}

func TestOpenRefusesTruncatedFile(t *testing.T) {
	city, _ := loopbackFiles(t)
	b, err := os.ReadFile(city)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		keep int
	}{
		{"half", len(b) / 2},
		{"inside metadata", len(b) - 20},
		{"one byte", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, b[:tc.keep], 0o644); err != nil {
				t.Fatal(err)
			}
			err := openErr(t, path, "")
			wantErr(t, err, path)
			if !errors.Is(err, geo.ErrBadDatabase) {
				t.Errorf("error %v is not ErrBadDatabase", err)
			}
		})
	}
}

func TestOpenRefusesNonMMDBFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		mention string
	}{
		{"empty", nil, "empty"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, "gzip"},
		{"tar", append(make([]byte, 257), []byte("ustar\x0000")...), "tar archive"},
		{"zip", []byte("PK\x03\x04rest"), "zip archive"},
		{"csv", []byte("network,geoname_id\n1.0.0.0/24,2077456\n"), "not a MaxMind DB file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			err := openErr(t, path, "")
			wantErr(t, err, path, tc.mention)
			if !errors.Is(err, geo.ErrBadDatabase) {
				t.Errorf("error %v is not ErrBadDatabase", err)
			}
		})
	}
}

func TestOpenRefusesNoPaths(t *testing.T) {
	wantErr(t, openErr(t, "", ""), "no database")
}

// TestCloseDuringLookupsIsSafe defends the SIGHUP reload path: swapping in a
// new DB and closing the old one while requests still use it must neither
// crash nor race.
func TestCloseDuringLookupsIsSafe(t *testing.T) {
	city, asn := loopbackFiles(t)
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("127.0.1.1")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			<-start
			for range 2000 {
				if got := db.Lookup(addr); !got.IsZero() && got.Country != "DE" {
					t.Errorf("Lookup = %+v", got)
					return
				}
			}
		})
	}
	close(start)
	db.Close()
	wg.Wait()
	if got := db.Lookup(addr); !got.IsZero() {
		t.Errorf("Lookup after Close = %+v, want zero", got)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func BenchmarkDBLookup(b *testing.B) {
	db := openLoopback(b)
	for _, bc := range []struct{ name, addr string }{
		{"ipv4 hit", "127.0.1.7"},
		{"ipv6 hit", "::1"},
		{"miss", "127.0.9.1"},
	} {
		addr := netip.MustParseAddr(bc.addr)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				db.Lookup(addr)
			}
		})
	}
}

// BenchmarkDBLookupLarge looks up random addresses in a database shaped
// like a real one: tens of thousands of networks, records of one country
// sharing their country data, IPv6 networks at /48.
func BenchmarkDBLookupLarge(b *testing.B) {
	countries := []struct{ cc, cont string }{
		{"DE", "EU"}, {"US", "NA"}, {"JP", "AS"}, {"BR", "SA"}, {"AU", "OC"}, {"ZA", "AF"},
		{"FR", "EU"}, {"CA", "NA"}, {"IN", "AS"}, {"NL", "EU"}, {"GB", "EU"}, {"SE", "EU"},
	}
	var cities []geotest.CityEntry
	var asns []geotest.ASNEntry
	var addrs []netip.Addr
	for i := range 20000 {
		c := countries[i%len(countries)]
		v4 := netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 0, 0})
		for _, p := range []netip.Prefix{netip.PrefixFrom(v4, 24), netip.PrefixFrom(v6, 48)} {
			if p.Addr().Is6() && i%4 != 0 {
				continue
			}
			cities = append(cities, geotest.CityEntry{
				Prefix: p.String(), Country: c.cc, Continent: c.cont,
				Lat: float64(i%180) - 89.5, Lon: float64(i%360) - 179.5, City: fmt.Sprintf("city-%d", i%500),
			})
			asns = append(asns, geotest.ASNEntry{Prefix: p.String(), ASN: uint32(64512 + i%1000), Org: fmt.Sprintf("Org %d", i%1000)})
			a := p.Addr().AsSlice()
			a[len(a)-1] = byte(i)
			addr, _ := netip.AddrFromSlice(a)
			addrs = append(addrs, addr)
		}
	}
	dir := b.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(b, city, cities)
	geotest.WriteASN(b, asn, asns)
	db, err := geo.Open(city, asn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	if got := db.Lookup(addrs[0]); got.Country == "" || got.ASN == 0 || !got.HasCoords {
		b.Fatalf("Lookup(%s) = %+v", addrs[0], got)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		db.Lookup(addrs[i%len(addrs)])
		i++
	}
}
