package geo

import (
	"errors"
	"fmt"
	"math"
)

// Location is what is known of where an address is. The zero value means
// nothing is known. Every field is optional on its own.
type Location struct {
	// ASN is the autonomous system number announcing the address; 0 if
	// unknown.
	ASN uint32 `json:"asn,omitempty"`
	// ASOrg is the autonomous system's organisation, for display only.
	ASOrg string `json:"as_org,omitempty"`
	// Country is an ISO 3166-1 alpha-2 code in upper case, such as "DE".
	Country string `json:"country,omitempty"`
	// Continent is one of AF AN AS EU NA OC SA.
	Continent string `json:"continent,omitempty"`
	// Lat and Lon are in degrees, meaningful only when HasCoords is set:
	// 0,0 is a real place, so it cannot mean "unknown".
	Lat       float64 `json:"lat,omitempty"`
	Lon       float64 `json:"lon,omitempty"`
	HasCoords bool    `json:"has_coords,omitempty"`
	// Region is a name an operator gave a range of addresses in the
	// directory's config ("campus", "fra1"). Databases never set it.
	Region string `json:"region,omitempty"`
}

// IsZero reports whether nothing is known of the location.
func (l Location) IsZero() bool { return l == Location{} }

// Problems with a Location, as reported by Validate and NewRanges. Callers
// test for them with errors.Is.
var (
	ErrBadCountry     = errors.New("bad country code")
	ErrBadContinent   = errors.New("bad continent code")
	ErrBadCoordinates = errors.New("bad coordinates")
)

// Validate reports every problem with l at once, joined. Codes must be in
// upper case: configuration is meant to be written once and read by people,
// and one spelling per country keeps it greppable.
func (l Location) Validate() error {
	var errs []error
	if l.Country != "" && ContinentOf(l.Country) == "" {
		hint := ""
		if l.Country == "UK" {
			hint = " (the United Kingdom is GB)"
		}
		errs = append(errs, fmt.Errorf("%w %q: want an ISO 3166-1 alpha-2 code in upper case, such as DE%s",
			ErrBadCountry, l.Country, hint))
	}
	if l.Continent != "" && !validContinent(l.Continent) {
		errs = append(errs, fmt.Errorf("%w %q: want one of AF AN AS EU NA OC SA", ErrBadContinent, l.Continent))
	}
	if l.HasCoords {
		if !(l.Lat >= -90 && l.Lat <= 90) { // written so NaN fails too
			errs = append(errs, fmt.Errorf("%w: latitude %v out of range [-90, 90]", ErrBadCoordinates, l.Lat))
		}
		if !(l.Lon >= -180 && l.Lon <= 180) {
			errs = append(errs, fmt.Errorf("%w: longitude %v out of range [-180, 180]", ErrBadCoordinates, l.Lon))
		}
	} else if l.Lat != 0 || l.Lon != 0 {
		// A config loader that forgot HasCoords would otherwise lose the
		// coordinates without a word.
		errs = append(errs, fmt.Errorf("%w: latitude/longitude %v,%v given but HasCoords is false",
			ErrBadCoordinates, l.Lat, l.Lon))
	}
	return errors.Join(errs...)
}

// Merge returns looked (typically from a database lookup) overridden by the
// fields set in explicit (typically from a relay's or a range's config).
//
// A looked-up field finer than an explicit one that contradicts it is
// dropped rather than kept: coordinates found for a US address say nothing
// about a relay its operator declares to be in DE, and the continent of an
// overridden country is derived from the new country. An explicit ASN that
// differs drops the looked-up organisation name for the same reason.
func Merge(looked, explicit Location) Location {
	out := looked
	if out.Continent == "" {
		out.Continent = ContinentOf(out.Country)
	}
	if explicit.Continent != "" && explicit.Continent != out.Continent {
		// An operator who names both the country and the continent of a
		// transcontinental country (RU in AS) contradicts only the
		// database's continent, not its country and coordinates.
		if out.Continent != "" && (explicit.Country == "" || explicit.Country != out.Country) {
			out.Country = ""
			out.dropCoords()
		}
		out.Continent = explicit.Continent
	}
	if explicit.Country != "" && explicit.Country != out.Country {
		if out.Country != "" || out.Continent != "" && ContinentOf(explicit.Country) != out.Continent {
			out.dropCoords()
		}
		out.Country = explicit.Country
		if explicit.Continent == "" {
			if c := ContinentOf(explicit.Country); c != "" {
				out.Continent = c
			}
		}
	}
	if explicit.HasCoords {
		out.Lat, out.Lon, out.HasCoords = explicit.Lat, explicit.Lon, true
	}
	if explicit.ASN != 0 && explicit.ASN != out.ASN {
		out.ASN = explicit.ASN
		out.ASOrg = ""
	}
	if explicit.ASOrg != "" {
		out.ASOrg = explicit.ASOrg
	}
	if explicit.Region != "" {
		out.Region = explicit.Region
	}
	return out
}

func (l *Location) dropCoords() { l.Lat, l.Lon, l.HasCoords = 0, 0, false }

// earthRadiusKm is the mean Earth radius (IUGG). The spherical model is off
// by at most 0.5%, far below the precision of any IP geolocation.
const earthRadiusKm = 6371.0088

// DistanceKm returns the great-circle distance between a and b in
// kilometres (haversine formula), and false if either lacks coordinates.
func DistanceKm(a, b Location) (float64, bool) {
	if !a.HasCoords || !b.HasCoords {
		return 0, false
	}
	const rad = math.Pi / 180
	lat1, lat2 := a.Lat*rad, b.Lat*rad
	dLat := lat2 - lat1
	dLon := (b.Lon - a.Lon) * rad
	s1, s2 := math.Sin(dLat/2), math.Sin(dLon/2)
	h := s1*s1 + math.Cos(lat1)*math.Cos(lat2)*s2*s2
	// Rounding can push h a hair above 1 for antipodal points.
	h = min(h, 1)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(h)), true
}
