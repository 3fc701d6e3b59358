// Package geotest writes tiny MaxMind-format databases for tests, so that
// nothing is ever downloaded. The records follow the GeoIP2/GeoLite2 layout
// (including the localised names a real file carries, so readers are tested
// skipping them), and reserved networks such as loopback are allowed: tests
// map 127.0.1.0/24 to one country and 127.0.2.0/24 to another, then send
// requests from those source addresses.
//
// In an IPv6 database (the default) IPv4 networks live under ::/96, as in
// MaxMind's files, so ::1/128 and 0.0.0.1/32 are the same network there.
package geotest

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// CityEntry maps a prefix to a City or Country record.
type CityEntry struct {
	Prefix            string // CIDR, e.g. "127.0.1.0/24" or "fd00::/8"
	Country           string // ISO code, written as country.iso_code
	RegisteredCountry string // registered_country.iso_code; defaults to Country
	Continent         string // continent.code
	// Lat and Lon are written as location.latitude/longitude when either
	// is non-zero or Coords0 is set (to test a record really at 0,0).
	Lat, Lon float64
	Coords0  bool
	City     string // English city name, optional
}

// ASNEntry maps a prefix to an ASN record.
type ASNEntry struct {
	Prefix string
	ASN    uint32
	Org    string
}

// DB is a database to write with Write, for layouts the helpers do not
// cover (an IPv4-only file, an unexpected database type, odd records).
type DB struct {
	Type       string // metadata database_type, e.g. "GeoLite2-City"
	IPVersion  int    // 4 or 6; 0 means 6
	RecordSize int    // 24, 28 or 32; 0 means 28
	Records    []Record
}

// Record maps a prefix to data. Data values may be string, bool, float64,
// uint16, uint32, uint64, int, int32, []any and map[string]any; ints are
// written as uint32 (the MaxMind type for numbers such as geoname_id).
type Record struct {
	Prefix string
	Data   map[string]any
}

// WriteCity writes a GeoLite2-City database mapping each entry's prefix.
func WriteCity(t testing.TB, path string, entries []CityEntry) {
	t.Helper()
	Write(t, path, DB{Type: "GeoLite2-City", Records: cityRecords(entries, true)})
}

// WriteCountry writes a GeoLite2-Country database: no coordinates, even
// where entries give them.
func WriteCountry(t testing.TB, path string, entries []CityEntry) {
	t.Helper()
	Write(t, path, DB{Type: "GeoLite2-Country", Records: cityRecords(entries, false)})
}

// WriteASN writes a GeoLite2-ASN database mapping each entry's prefix.
func WriteASN(t testing.TB, path string, entries []ASNEntry) {
	t.Helper()
	recs := make([]Record, 0, len(entries))
	for _, e := range entries {
		d := map[string]any{}
		if e.ASN != 0 {
			d["autonomous_system_number"] = e.ASN
		}
		if e.Org != "" {
			d["autonomous_system_organization"] = e.Org
		}
		recs = append(recs, Record{Prefix: e.Prefix, Data: d})
	}
	Write(t, path, DB{Type: "GeoLite2-ASN", Records: recs})
}

// Write writes db to path, failing the test on any error.
func Write(t testing.TB, path string, db DB) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            db.Type,
		IPVersion:               db.IPVersion,
		RecordSize:              db.RecordSize,
		IncludeReservedNetworks: true,
		Languages:               []string{"en", "de"},
		Description:             map[string]string{"en": "ODI test database"},
		// A fixed epoch keeps written files byte-identical between runs.
		BuildEpoch: 1700000000,
	})
	if err != nil {
		t.Fatalf("geotest: %s: %v", path, err)
	}
	for _, r := range db.Records {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			t.Fatalf("geotest: %s: %v", path, err)
		}
		p = p.Masked()
		n := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		v, err := toMMDB(r.Data)
		if err != nil {
			t.Fatalf("geotest: %s: %s: %v", path, r.Prefix, err)
		}
		if err := tree.Insert(n, v); err != nil {
			t.Fatalf("geotest: %s: insert %s: %v", path, r.Prefix, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("geotest: %v", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatalf("geotest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("geotest: close %s: %v", path, err)
	}
}

// LoopbackCities is a small world on loopback addresses for tests across
// packages: one /24 per place, so a test picks a client's location by
// binding to a source address in it (Linux routes all of 127.0.0.0/8 to
// loopback; other systems may only have 127.0.0.1, so tests there should
// hand the address to the code under test instead). Each call returns a
// fresh slice.
func LoopbackCities() []CityEntry {
	return []CityEntry{
		{Prefix: "127.0.1.0/24", Country: "DE", Continent: "EU", Lat: 52.52, Lon: 13.405, City: "Berlin"},
		{Prefix: "127.0.2.0/24", Country: "US", Continent: "NA", Lat: 40.7128, Lon: -74.006, City: "New York"},
		{Prefix: "127.0.3.0/24", Country: "JP", Continent: "AS", Lat: 35.6762, Lon: 139.6503, City: "Tokyo"},
		{Prefix: "127.0.4.0/24", Country: "FR", Continent: "EU", Lat: 48.8566, Lon: 2.3522, City: "Paris"},
		{Prefix: "127.0.5.0/24", Country: "DE", Continent: "EU", Lat: 48.1351, Lon: 11.582, City: "Munich"},
		{Prefix: "127.0.6.0/24", Country: "BR", Continent: "SA", Lat: -23.5505, Lon: -46.6333, City: "São Paulo"},
		{Prefix: "::1/128", Country: "NL", Continent: "EU", Lat: 52.3676, Lon: 4.9041, City: "Amsterdam"},
	}
}

// LoopbackASNs pairs with LoopbackCities: the Berlin and Munich ranges are
// one network (AS64500), so tests can tell "same network" from "same
// country"; the others each have their own private-use ASN.
func LoopbackASNs() []ASNEntry {
	return []ASNEntry{
		{Prefix: "127.0.1.0/24", ASN: 64500, Org: "Example Net DE"},
		{Prefix: "127.0.5.0/24", ASN: 64500, Org: "Example Net DE"},
		{Prefix: "127.0.2.0/24", ASN: 64501, Org: "Example Net US"},
		{Prefix: "127.0.3.0/24", ASN: 64502, Org: "Example Net JP"},
		{Prefix: "127.0.4.0/24", ASN: 64503, Org: "Example Net FR"},
		{Prefix: "127.0.6.0/24", ASN: 64504, Org: "Example Net BR"},
		{Prefix: "::1/128", ASN: 64505, Org: "Example Net NL"},
	}
}

func cityRecords(entries []CityEntry, withLocation bool) []Record {
	recs := make([]Record, 0, len(entries))
	for _, e := range entries {
		d := map[string]any{}
		if e.Continent != "" {
			d["continent"] = map[string]any{
				"code":       e.Continent,
				"geoname_id": geonameID(e.Continent),
				"names":      names(e.Continent),
			}
		}
		if e.Country != "" {
			d["country"] = map[string]any{
				"iso_code":   e.Country,
				"geoname_id": geonameID(e.Country),
				"names":      names(e.Country),
			}
		}
		if reg := cmp.Or(e.RegisteredCountry, e.Country); reg != "" {
			d["registered_country"] = map[string]any{
				"iso_code":   reg,
				"geoname_id": geonameID(reg),
				"names":      names(reg),
			}
		}
		if withLocation {
			if e.City != "" {
				d["city"] = map[string]any{"geoname_id": geonameID(e.City), "names": names(e.City)}
			}
			if e.Lat != 0 || e.Lon != 0 || e.Coords0 {
				d["location"] = map[string]any{
					"accuracy_radius": uint16(20),
					"latitude":        e.Lat,
					"longitude":       e.Lon,
					"time_zone":       "Etc/UTC",
				}
			}
		}
		recs = append(recs, Record{Prefix: e.Prefix, Data: d})
	}
	return recs
}

// geonameID makes up a stable ID per name, so that records of one country
// share their country map as in MaxMind's files, where the writer stores it
// once and points to it.
func geonameID(name string) uint32 {
	h := uint32(2166136261)
	for i := range len(name) {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return h % 10_000_000
}

func names(s string) map[string]any {
	return map[string]any{"en": s, "de": s, "fr": s, "ja": s, "pt-BR": s, "ru": s, "zh-CN": s}
}

func toMMDB(v any) (mmdbtype.DataType, error) {
	switch v := v.(type) {
	case string:
		return mmdbtype.String(v), nil
	case bool:
		return mmdbtype.Bool(v), nil
	case float64:
		return mmdbtype.Float64(v), nil
	case uint16:
		return mmdbtype.Uint16(v), nil
	case uint32:
		return mmdbtype.Uint32(v), nil
	case uint64:
		return mmdbtype.Uint64(v), nil
	case int:
		if v < 0 || v > 1<<32-1 {
			return nil, fmt.Errorf("int %d does not fit uint32", v)
		}
		return mmdbtype.Uint32(v), nil
	case int32:
		return mmdbtype.Int32(v), nil
	case []any:
		s := make(mmdbtype.Slice, 0, len(v))
		for _, e := range v {
			d, err := toMMDB(e)
			if err != nil {
				return nil, err
			}
			s = append(s, d)
		}
		return s, nil
	case map[string]any:
		m := make(mmdbtype.Map, len(v))
		for k, e := range v {
			d, err := toMMDB(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[mmdbtype.String(k)] = d
		}
		return m, nil
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}
