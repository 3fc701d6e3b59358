package geo_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo"
)

func TestMerge(t *testing.T) {
	us := geo.Location{ASN: 64501, ASOrg: "Example US", Country: "US", Continent: "NA", Lat: 40.7, Lon: -74, HasCoords: true}
	ru := geo.Location{ASN: 64502, Country: "RU", Continent: "EU", Lat: 55.75, Lon: 37.6, HasCoords: true}
	for _, tc := range []struct {
		name             string
		looked, explicit geo.Location
		want             geo.Location
	}{
		{"nothing explicit", us, geo.Location{}, us},
		{"nothing looked up", geo.Location{}, berlin, berlin},
		{
			"region only is added",
			us, geo.Location{Region: "nyc"},
			geo.Location{ASN: 64501, ASOrg: "Example US", Country: "US", Continent: "NA", Lat: 40.7, Lon: -74, HasCoords: true, Region: "nyc"},
		},
		{
			"other country drops looked coordinates and continent",
			us, geo.Location{Country: "DE"},
			geo.Location{ASN: 64501, ASOrg: "Example US", Country: "DE", Continent: "EU"},
		},
		{
			"other country with coordinates",
			us, geo.Location{Country: "DE", Lat: 50.1, Lon: 8.7, HasCoords: true},
			geo.Location{ASN: 64501, ASOrg: "Example US", Country: "DE", Continent: "EU", Lat: 50.1, Lon: 8.7, HasCoords: true},
		},
		{
			"same country keeps coordinates",
			us, geo.Location{Country: "US"},
			us,
		},
		{
			"coordinates only",
			us, geo.Location{Lat: 37.8, Lon: -122.4, HasCoords: true},
			geo.Location{ASN: 64501, ASOrg: "Example US", Country: "US", Continent: "NA", Lat: 37.8, Lon: -122.4, HasCoords: true},
		},
		{
			"other continent drops country and coordinates",
			us, geo.Location{Continent: "EU"},
			geo.Location{ASN: 64501, ASOrg: "Example US", Continent: "EU"},
		},
		{
			"transcontinental country keeps its coordinates",
			ru, geo.Location{Country: "RU", Continent: "AS"},
			geo.Location{ASN: 64502, Country: "RU", Continent: "AS", Lat: 55.75, Lon: 37.6, HasCoords: true},
		},
		{
			"other ASN drops looked organisation",
			us, geo.Location{ASN: 64999},
			geo.Location{ASN: 64999, Country: "US", Continent: "NA", Lat: 40.7, Lon: -74, HasCoords: true},
		},
		{
			"organisation only",
			us, geo.Location{ASOrg: "Renamed"},
			geo.Location{ASN: 64501, ASOrg: "Renamed", Country: "US", Continent: "NA", Lat: 40.7, Lon: -74, HasCoords: true},
		},
		{
			"continent derived for a looked country",
			geo.Location{Country: "JP"}, geo.Location{},
			geo.Location{Country: "JP", Continent: "AS"},
		},
		{
			"continent-level coordinates survive a country in that continent",
			geo.Location{Continent: "EU", Lat: 50, Lon: 10, HasCoords: true}, geo.Location{Country: "DE"},
			geo.Location{Country: "DE", Continent: "EU", Lat: 50, Lon: 10, HasCoords: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, geo.Merge(tc.looked, tc.explicit)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocationValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		loc  geo.Location
		want []error
	}{
		{"zero", geo.Location{}, nil},
		{"full", berlin, nil},
		{"edges", geo.Location{Lat: -90, Lon: 180, HasCoords: true}, nil},
		{"kosovo", geo.Location{Country: "XK"}, nil},
		{"nan latitude", geo.Location{Lat: math.NaN(), HasCoords: true}, []error{geo.ErrBadCoordinates}},
		{"everything wrong", geo.Location{Country: "uk", Continent: "eu", Lat: -91, Lon: 181, HasCoords: true},
			[]error{geo.ErrBadCountry, geo.ErrBadContinent, geo.ErrBadCoordinates, geo.ErrBadCoordinates}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.loc.Validate()
			var got []error
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					for _, sentinel := range []error{geo.ErrBadCountry, geo.ErrBadContinent, geo.ErrBadCoordinates} {
						if errors.Is(e, sentinel) {
							got = append(got, sentinel)
						}
					}
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("Validate = %v; problems (-want +got):\n%s", err, diff)
			}
		})
	}
}

func TestContinentOf(t *testing.T) {
	for country, want := range map[string]string{
		"DE": "EU", "US": "NA", "BR": "SA", "JP": "AS", "AU": "OC", "ZA": "AF", "AQ": "AN",
		"AD": "EU", "ZW": "AF", "RU": "EU", "TR": "AS", "EG": "AF", "XK": "EU",
		"": "", "D": "", "de": "", "UK": "", "ZZ": "", "DEU": "",
	} {
		if got := geo.ContinentOf(country); got != want {
			t.Errorf("ContinentOf(%q) = %q, want %q", country, got, want)
		}
	}
}

// TestContinentOfKnowsEveryCountry guards the table's shape: a missed
// comma or a misplaced entry would break the binary search silently for
// some codes.
func TestContinentOfKnowsEveryCountry(t *testing.T) {
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			c := geo.ContinentOf(string([]rune{a, b}))
			if c == "" {
				continue
			}
			n++
			switch c {
			case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
			default:
				t.Errorf("ContinentOf(%c%c) = %q", a, b, c)
			}
		}
	}
	// 249 ISO 3166-1 codes plus XK.
	if n != 250 {
		t.Errorf("%d countries known, want 250", n)
	}
}
