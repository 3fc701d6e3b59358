package geotest_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo/geotest"
	"github.com/oschwald/maxminddb-golang/v2"
)

// cityFields is the GeoIP2 City layout as MaxMind documents it, read with
// the reflection decoder so that these tests do not depend on package geo.
type cityFields struct {
	Country struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Location *struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

type asnFields struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

func open(t *testing.T, path string) *maxminddb.Reader {
	t.Helper()
	r, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestWriteCityLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	geotest.WriteCity(t, path, geotest.LoopbackCities())
	r := open(t, path)
	if got, want := r.Metadata.DatabaseType, "GeoLite2-City"; got != want {
		t.Errorf("database_type = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		addr, country, continent, city string
		lat                            float64
	}{
		{"127.0.1.1", "DE", "EU", "Berlin", 52.52},
		{"::ffff:127.0.2.1", "US", "NA", "New York", 40.7128},
		{"::1", "NL", "EU", "Amsterdam", 52.3676},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			var rec cityFields
			if err := r.Lookup(netip.MustParseAddr(tc.addr)).Decode(&rec); err != nil {
				t.Fatal(err)
			}
			if rec.Country.ISOCode != tc.country || rec.RegisteredCountry.ISOCode != tc.country ||
				rec.Continent.Code != tc.continent || rec.City.Names["en"] != tc.city ||
				rec.Location == nil || rec.Location.Latitude != tc.lat {
				t.Errorf("record = %+v", rec)
			}
		})
	}
	if res := r.Lookup(netip.MustParseAddr("127.0.9.1")); res.Found() {
		t.Errorf("127.0.9.1 found in %s", res.Prefix())
	}
}

func TestWriteCountryHasNoLocation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.WriteCountry(t, path, []geotest.CityEntry{{Prefix: "127.0.1.0/24", Country: "DE", Continent: "EU", Lat: 1, Lon: 2, City: "Berlin"}})
	var rec cityFields
	if err := open(t, path).Lookup(netip.MustParseAddr("127.0.1.1")).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if rec.Location != nil || rec.City.Names != nil || rec.Country.ISOCode != "DE" {
		t.Errorf("record = %+v", rec)
	}
}

func TestWriteASNLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	geotest.WriteASN(t, path, geotest.LoopbackASNs())
	r := open(t, path)
	var got []asnFields
	for _, a := range []string{"127.0.1.1", "127.0.5.1", "127.0.2.1", "::1"} {
		var rec asnFields
		if err := r.Lookup(netip.MustParseAddr(a)).Decode(&rec); err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
	want := []asnFields{{64500, "Example Net DE"}, {64500, "Example Net DE"}, {64501, "Example Net US"}, {64505, "Example Net NL"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestWriteIPv4Only(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.mmdb")
	geotest.Write(t, path, geotest.DB{Type: "Test-Country", IPVersion: 4, RecordSize: 24, Records: []geotest.Record{
		{Prefix: "127.0.1.0/24", Data: map[string]any{"country": map[string]any{"iso_code": "DE"}}},
	}})
	r := open(t, path)
	if r.Metadata.IPVersion != 4 || r.Metadata.RecordSize != 24 {
		t.Errorf("metadata = %+v", r.Metadata)
	}
	var rec cityFields
	if err := r.Lookup(netip.MustParseAddr("127.0.1.1")).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if rec.Country.ISOCode != "DE" {
		t.Errorf("record = %+v", rec)
	}
}
