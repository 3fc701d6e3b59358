package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/geo/geotest"
)

func fp(v float64) *float64 { return &v }

func TestDirectoryGeoFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, geotest.LoopbackCities())
	geotest.WriteASN(t, asn, geotest.LoopbackASNs())
	path := writeFile(t, `
data = "/var/lib/odi"
geoip_db = "`+city+`"
trusted_proxies = ["10.0.0.1", "192.0.2.0/24"]
[[range]]
cidr = "10.1.0.0/16"
region = "campus"
country = "DE"
lat = 52.5
lon = 13.4
asn = 64500
[[range]]
cidr = "2001:db8::/32"
continent = "EU"
`)
	d := DefaultDirectory()
	if err := load(t, &d, "--config", path, "--asn-db", asn, "--trusted-proxy", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	want := []Range{
		{CIDR: "10.1.0.0/16", Region: "campus", Country: "DE", Lat: fp(52.5), Lon: fp(13.4), ASN: 64500},
		{CIDR: "2001:db8::/32", Continent: "EU"},
	}
	if diff := cmp.Diff(want, d.Ranges); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
	if d.GeoIPDB != city || d.ASNDB != asn || !cmp.Equal(d.TrustedProxies, []string{"127.0.0.1"}) {
		t.Errorf("geoip %q asn %q proxies %v", d.GeoIPDB, d.ASNDB, d.TrustedProxies)
	}
	if got := GeoRanges(d.Ranges)[0].Location; got != (geo.Location{Region: "campus", Country: "DE", ASN: 64500, Lat: 52.5, Lon: 13.4, HasCoords: true}) {
		t.Errorf("GeoRanges = %+v", got)
	}

	// --range replaces the file's ranges.
	d = DefaultDirectory()
	if err := load(t, &d, "--config", path, "--range", "10.9.0.0/16,region=lab,country=FR,lat=48.8,lon=2.3,asn=AS64501"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Range{{CIDR: "10.9.0.0/16", Region: "lab", Country: "FR", Lat: fp(48.8), Lon: fp(2.3), ASN: 64501}}, d.Ranges); diff != "" {
		t.Errorf("--range (-want +got):\n%s", diff)
	}
}

func TestDirectoryGeoProblemsAreAllListed(t *testing.T) {
	dir := t.TempDir()
	asn := filepath.Join(dir, "asn.mmdb")
	geotest.WriteASN(t, asn, geotest.LoopbackASNs())
	notMMDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notMMDB, []byte("hello"), 0o644)
	path := writeFile(t, `
data = "/x"
[[range]]
cidr = "10.1.0.0/33"
[[range]]
cidr = "10.2.0.0/16"
country = "UK"
lat = 100
[[range]]
cidr = "10.3.0.0/16"
[[range]]
cidr = "10.3.0.0/16"
`)
	d := DefaultDirectory()
	// The ASN file given as the City database: a swapped pair of flags.
	err := load(t, &d, "--config", path, "--geoip-db", asn, "--asn-db", notMMDB, "--trusted-proxy", "not-an-address", "--range", "")
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"geoip-db:", "asn-db:",
		"range[0] (10.1.0.0/33)", `"UK"`, "the United Kingdom is GB", "give both lat and lon", "duplicate prefix",
		`trusted-proxy: "not-an-address"`, "--range",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestRelayRoutingSettings(t *testing.T) {
	path := writeFile(t, `
data = "/srv/relay"
directory = "http://dir.example"
enroll_token = "secret-token"
public_url = "https://relay.example"
weight = 250
only_countries = ["DE", "AT"]
exclude_asns = [64512]
ipv6 = "no"
[location]
country = "DE"
region = "fra1"
lat = 50.1
lon = 8.7
asn = 64500
`)
	r := DefaultRelay()
	if err := load(t, &r, "--config", path, "--exclude-countries", "FR", "--only-asns", "AS64501,64502", "--continent", "EU"); err != nil {
		t.Fatal(err)
	}
	want := Place{Region: "fra1", Country: "DE", Continent: "EU", Lat: fp(50.1), Lon: fp(8.7), ASN: 64500}
	if diff := cmp.Diff(want, r.Location); diff != "" {
		t.Errorf("location (-want +got):\n%s", diff)
	}
	if r.Weight != 250 || !cmp.Equal(r.OnlyCountries, []string{"DE", "AT"}) || !cmp.Equal(r.ExcludeCountries, []string{"FR"}) ||
		!cmp.Equal(r.OnlyASNs, []uint32{64501, 64502}) || !cmp.Equal(r.ExcludeASNs, []uint32{64512}) || r.IPv4 != ReachAuto || r.IPv6 != ReachNo {
		t.Errorf("settings: %+v", r)
	}
	if b := ReachBool(r.IPv6); b == nil || *b {
		t.Errorf("ReachBool(no) = %v", b)
	}
	if ReachBool(ReachAuto) != nil {
		t.Error("ReachBool(auto) is not nil")
	}
}

func TestRelayRoutingProblems(t *testing.T) {
	r := DefaultRelay()
	err := load(t, &r, "--data", "/x", "--directory", "http://d", "--enroll-token", "tok", "--listen", "127.0.0.1:0",
		"--country", "XX", "--lat", "12", "--weight", "-3", "--only-countries", "de", "--ipv4", "no", "--ipv6", "no",
		"--only-asns", "AS0")
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{`"XX"`, "give both lat and lon", "weight: -3", `only-countries: "de"`, "neither family", "--only-asns"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	r = DefaultRelay()
	err = load(t, &r, "--data", "/x", "--directory", "http://d", "--enroll-token", "tok", "--listen", "127.0.0.1:0", "--ipv6", "maybe")
	if err == nil || !strings.Contains(err.Error(), `ipv6: "maybe" is not auto, yes or no`) {
		t.Errorf("--ipv6 maybe: %v", err)
	}
}
