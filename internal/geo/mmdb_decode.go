package geo

import (
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// The decoders below walk a record with the cursor API instead of letting
// the reflection decoder fill a struct: they read the handful of fields a
// ranking needs, skip the rest (names in twenty languages, subdivisions,
// postal codes) without materialising it, and tell a missing location apart
// from one at 0,0. Strings come from the reader's string cache, so a warm
// lookup allocates nothing.

// geoRecord holds the fields of a GeoIP2/GeoLite2 City or Country record.
type geoRecord struct {
	country    string // country.iso_code
	registered string // registered_country.iso_code
	continent  string // continent.code
	lat, lon   float64
	hasLat     bool
	hasLon     bool
}

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (g *geoRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var next mmdbdata.Cursor
	for {
		key, v, ok := m.Next(next)
		if !ok {
			break
		}
		switch string(key) {
		case "country":
			next, err = readStringIn(v, "iso_code", &g.country)
		case "registered_country":
			next, err = readStringIn(v, "iso_code", &g.registered)
		case "continent":
			next, err = readStringIn(v, "code", &g.continent)
		case "location":
			next, err = g.readLocation(v)
		default:
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

func (g *geoRecord) readLocation(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var next mmdbdata.Cursor
	for {
		key, v, ok := m.Next(next)
		if !ok {
			break
		}
		switch string(key) {
		case "latitude":
			g.lat, next, err = v.ReadFloat()
			g.hasLat = err == nil
		case "longitude":
			g.lon, next, err = v.ReadFloat()
			g.hasLon = err == nil
		default:
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

// readStringIn reads the string under key in the map at c into dst.
//
// It finds the map's successor with Skip first and stops reading at the
// key. In MaxMind's files these maps (country, continent) are shared by
// millions of records and stored once behind a pointer, so Skip costs O(1)
// and the early stop spares walking the localised names that follow
// iso_code in key order.
func readStringIn(c mmdbdata.Cursor, key string, dst *string) (mmdbdata.Cursor, error) {
	next, err := c.Skip()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var vnext mmdbdata.Cursor
	for {
		k, v, ok := m.Next(vnext)
		if !ok {
			return next, m.Err()
		}
		if string(k) == key {
			*dst, _, err = v.ReadString()
			return next, err
		}
		if vnext, err = v.Skip(); err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
}

// asnRecord holds the fields of a GeoLite2 ASN (or GeoIP2 ISP) record.
type asnRecord struct {
	asn uint64
	org string
}

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (a *asnRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var next mmdbdata.Cursor
	for {
		key, v, ok := m.Next(next)
		if !ok {
			break
		}
		switch string(key) {
		case "autonomous_system_number":
			a.asn, next, err = v.ReadUint()
		case "autonomous_system_organization":
			a.org, next, err = v.ReadString()
		default:
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}
