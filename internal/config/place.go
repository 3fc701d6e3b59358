package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/geo"
)

// Place is where something is, as an operator writes it: every field is
// optional. A relay's [location] table overrides what the directory's
// databases say of its address; a directory's [[range]] entries give one to
// client addresses.
type Place struct {
	// Region is a name the operator chooses ("campus", "fra1"); clients in
	// a range with the same region name rank a relay there as near.
	Region    string `toml:"region"`
	Country   string `toml:"country"`   // ISO 3166-1 alpha-2, upper case: DE
	Continent string `toml:"continent"` // AF AN AS EU NA OC SA
	// Lat and Lon are in degrees; give both or neither.
	Lat *float64 `toml:"lat"`
	Lon *float64 `toml:"lon"`
	// ASN is the autonomous system number announcing the addresses.
	ASN uint32 `toml:"asn"`
}

// Location converts p for the geo package.
func (p Place) Location() geo.Location {
	l := geo.Location{Region: p.Region, Country: p.Country, Continent: p.Continent, ASN: p.ASN}
	if p.Lat != nil && p.Lon != nil {
		l.Lat, l.Lon, l.HasCoords = *p.Lat, *p.Lon, true
	}
	return l
}

// check adds p's problems to probs, each prefixed with field.
func (p Place) check(probs *Problems, field string) {
	if (p.Lat == nil) != (p.Lon == nil) {
		probs.Addf("%s: give both lat and lon, or neither", field)
	}
	if err := p.Location().Validate(); err != nil {
		for _, e := range unjoin(err) {
			probs.Addf("%s: %v", field, e)
		}
	}
}

// unjoin returns the errors joined inside err (looking through wrapping),
// or err alone.
func unjoin(err error) []error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
	}
	return []error{err}
}

// Range maps client addresses in CIDR to a place, for a directory without
// a GeoIP database or to pin ranges a database gets wrong. In TOML it is a
// [[range]] table; as a flag, --range "CIDR,region=campus,country=DE,...".
type Range struct {
	CIDR      string   `toml:"cidr"`
	Region    string   `toml:"region"`
	Country   string   `toml:"country"`
	Continent string   `toml:"continent"`
	Lat       *float64 `toml:"lat"`
	Lon       *float64 `toml:"lon"`
	ASN       uint32   `toml:"asn"`
}

func (r Range) place() Place {
	return Place{Region: r.Region, Country: r.Country, Continent: r.Continent, Lat: r.Lat, Lon: r.Lon, ASN: r.ASN}
}

// GeoRanges converts ranges for geo.NewRanges.
func GeoRanges(ranges []Range) []geo.Range {
	out := make([]geo.Range, len(ranges))
	for i, r := range ranges {
		out[i] = geo.Range{CIDR: r.CIDR, Location: r.place().Location()}
	}
	return out
}

// checkRanges adds every problem with ranges to p: each entry's own, and
// those geo.NewRanges finds (bad or duplicate prefixes).
func checkRanges(p *Problems, ranges []Range) {
	for i, r := range ranges {
		if (r.Lat == nil) != (r.Lon == nil) {
			p.Addf("range[%d] (%s): give both lat and lon, or neither", i, r.CIDR)
		}
	}
	if _, err := geo.NewRanges(GeoRanges(ranges)); err != nil {
		for _, e := range unjoin(err) {
			p.Addf("%v", strings.Replace(e.Error(), "ranges[", "range[", 1))
		}
	}
}

// rangeFlag reads --range CIDR,key=value,...; its first use replaces the
// file's ranges, later uses append.
type rangeFlag struct {
	list    *[]Range
	touched bool
}

func (f *rangeFlag) String() string {
	if f.list == nil {
		return ""
	}
	var s []string
	for _, r := range *f.list {
		s = append(s, r.CIDR)
	}
	return strings.Join(s, " ")
}

func (f *rangeFlag) Set(v string) error {
	parts := strings.Split(v, ",")
	r := Range{CIDR: strings.TrimSpace(parts[0])}
	if r.CIDR == "" {
		return fmt.Errorf("%q does not start with a CIDR", v)
	}
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%q: %q is not key=value", v, kv)
		}
		switch k {
		case "region":
			r.Region = val
		case "country":
			r.Country = val
		case "continent":
			r.Continent = val
		case "lat", "lon":
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return fmt.Errorf("%q: %s %q is not a number", v, k, val)
			}
			if k == "lat" {
				r.Lat = &x
			} else {
				r.Lon = &x
			}
		case "asn":
			n, err := parseASN(val)
			if err != nil {
				return fmt.Errorf("%q: %v", v, err)
			}
			r.ASN = n
		default:
			return fmt.Errorf("%q: unknown key %q (want region, country, continent, lat, lon, asn)", v, k)
		}
	}
	if !f.touched {
		*f.list, f.touched = nil, true
	}
	*f.list = append(*f.list, r)
	return nil
}

// parseASN reads 64500 or AS64500.
func parseASN(s string) (uint32, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "AS"), "as")
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not an AS number", s)
	}
	return uint32(n), nil
}

// floatFlag sets a *float64 from a flag.
type floatFlag struct{ p **float64 }

func (f floatFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return strconv.FormatFloat(**f.p, 'g', -1, 64)
}

func (f floatFlag) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*f.p = &x
	return nil
}

// asnFlag sets a uint32 AS number from a flag (64500 or AS64500).
type asnFlag struct{ p *uint32 }

func (f asnFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(*f.p), 10)
}

func (f asnFlag) Set(v string) error {
	n, err := parseASN(v)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}

// asnListFlag reads a comma-separated list of AS numbers; its first use
// replaces the file's list.
type asnListFlag struct {
	list    *[]uint32
	touched bool
}

func (f *asnListFlag) String() string {
	if f.list == nil {
		return ""
	}
	var s []string
	for _, n := range *f.list {
		s = append(s, strconv.FormatUint(uint64(n), 10))
	}
	return strings.Join(s, ",")
}

func (f *asnListFlag) Set(v string) error {
	if !f.touched {
		*f.list, f.touched = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := parseASN(s)
		if err != nil {
			return err
		}
		*f.list = append(*f.list, n)
	}
	return nil
}

// ParseProxies parses trusted proxy entries: addresses or CIDR prefixes.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted-proxy: %q is not an address or CIDR prefix", s))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// Reachability says whether a relay can be reached over one IP family.
const (
	ReachAuto = "auto" // the directory decides from the public URL's host
	ReachYes  = "yes"
	ReachNo   = "no"
)

func checkReach(p *Problems, field, v string) {
	switch v {
	case ReachAuto, ReachYes, ReachNo:
	default:
		p.Addf("%s: %q is not auto, yes or no", field, v)
	}
}

// ReachBool converts a reachability setting for the wire: nil for auto.
func ReachBool(v string) *bool {
	switch v {
	case ReachYes:
		t := true
		return &t
	case ReachNo:
		f := false
		return &f
	}
	return nil
}

// checkCountries adds a problem for each entry that is not a country code.
func checkCountries(p *Problems, field string, list []string) {
	for _, c := range list {
		if geo.ContinentOf(c) == "" {
			p.Addf("%s: %q is not an ISO 3166-1 alpha-2 country code in upper case, such as DE", field, c)
		}
	}
}
