package geo_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/geo"
)

var (
	// Clients and relays placed at real cities; ASNs from the private range.
	berlinClient = geo.Location{ASN: 64500, Country: "DE", Continent: "EU", Lat: 52.52, Lon: 13.405, HasCoords: true}
	munichSameAS = geo.Location{ASN: 64500, Country: "DE", Continent: "EU", Lat: 48.1351, Lon: 11.582, HasCoords: true}
	hamburg      = geo.Location{ASN: 64510, Country: "DE", Continent: "EU", Lat: 53.5511, Lon: 9.9937, HasCoords: true}
	paris        = geo.Location{ASN: 64511, Country: "FR", Continent: "EU", Lat: 48.8566, Lon: 2.3522, HasCoords: true}
	warsawNoGeo  = geo.Location{ASN: 64512, Country: "PL", Continent: "EU"}
	newYorkRelay = geo.Location{ASN: 64513, Country: "US", Continent: "NA", Lat: 40.7128, Lon: -74.006, HasCoords: true}
	tokyoNoGeo   = geo.Location{Country: "JP", Continent: "AS"}
	nowhere      = geo.Location{}
)

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		name          string
		client, relay geo.Location
		tier          geo.Tier
		reason        string
	}{
		{"same asn", berlinClient, munichSameAS, geo.TierSameNetwork, "same network AS64500"},
		{"same country", berlinClient, hamburg, geo.TierSameCountry, "same country DE"},
		{"same continent", berlinClient, paris, geo.TierSameContinent, "same continent EU"},
		{"same continent without coordinates", berlinClient, warsawNoGeo, geo.TierSameContinent, "same continent EU"},
		{"distance", berlinClient, newYorkRelay, geo.TierDistance, "6,385 km"},
		{"other continent", berlinClient, tokyoNoGeo, geo.TierOtherContinent, "other continent AS"},
		{"relay unknown", berlinClient, nowhere, geo.TierUnknown, "location unknown"},
		{"client unknown", nowhere, hamburg, geo.TierUnknown, "location unknown"},
		{
			"distance when continents unknown",
			geo.Location{Lat: 0, Lon: 0, HasCoords: true},
			geo.Location{Lat: 0, Lon: 1, HasCoords: true},
			geo.TierDistance, "111 km",
		},
		{
			"same asn across continents is not same network",
			geo.Location{ASN: 16509, Country: "US", Continent: "NA", Lat: 39, Lon: -77, HasCoords: true},
			geo.Location{ASN: 16509, Country: "DE", Continent: "EU", Lat: 50.1, Lon: 8.7, HasCoords: true},
			geo.TierDistance, "6,522 km",
		},
		{
			"same asn where continents unknown",
			geo.Location{ASN: 64500},
			geo.Location{ASN: 64500, Country: "DE", Continent: "EU"},
			geo.TierSameNetwork, "same network AS64500",
		},
		{
			"same region",
			geo.Location{Region: "campus", Country: "DE", Continent: "EU"},
			geo.Location{Region: "campus", Country: "DE", Continent: "EU"},
			geo.TierSameRegion, "same region campus",
		},
		{
			"same region with nothing else known",
			geo.Location{Region: "fra1"},
			geo.Location{Region: "fra1"},
			geo.TierSameRegion, "same region fra1",
		},
		{
			"region names do not bridge countries",
			geo.Location{Region: "europe", Country: "DE", Continent: "EU"},
			geo.Location{Region: "europe", Country: "FR", Continent: "EU"},
			geo.TierSameContinent, "same continent EU",
		},
		{
			"network beats region",
			geo.Location{ASN: 64500, Region: "a"},
			geo.Location{ASN: 64500, Region: "b"},
			geo.TierSameNetwork, "same network AS64500",
		},
		{"zero asn is not a network", geo.Location{Country: "DE", Continent: "EU"}, geo.Location{Country: "DE", Continent: "EU"}, geo.TierSameCountry, "same country DE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := geo.Rank(tc.client, tc.relay)
			if n.Tier != tc.tier || n.Reason() != tc.reason {
				t.Errorf("Rank = %v %q, want %v %q", n.Tier, n.Reason(), tc.tier, tc.reason)
			}
		})
	}
}

func TestRankOrdersRelays(t *testing.T) {
	relays := map[string]geo.Location{
		"tokyo":   tokyoNoGeo,
		"nowhere": nowhere,
		"newyork": newYorkRelay,
		"warsaw":  warsawNoGeo,
		"paris":   paris,
		"hamburg": hamburg,
		"munich":  munichSameAS,
		// Same country as the client and nearer than Hamburg, so it must
		// come first within the tier.
		"potsdam": {Country: "DE", Continent: "EU", Lat: 52.39, Lon: 13.06, HasCoords: true},
		// Same country, no coordinates: after those with a distance.
		"dresden-nogeo": {Country: "DE", Continent: "EU"},
	}
	type ranked struct {
		name string
		n    geo.Nearness
	}
	var rs []ranked
	for name, loc := range relays {
		rs = append(rs, ranked{name, geo.Rank(berlinClient, loc)})
	}
	slices.SortFunc(rs, func(a, b ranked) int { return a.n.Compare(b.n) })
	var got []string
	for _, r := range rs {
		got = append(got, r.name)
	}
	want := []string{"munich", "potsdam", "hamburg", "dresden-nogeo", "paris", "warsaw", "newyork", "tokyo", "nowhere"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestNearnessCompare(t *testing.T) {
	near := geo.Nearness{Tier: geo.TierSameCountry, Km: 10, HasKm: true}
	far := geo.Nearness{Tier: geo.TierSameCountry, Km: 500, HasKm: true}
	noKm := geo.Nearness{Tier: geo.TierSameCountry}
	worseTier := geo.Nearness{Tier: geo.TierSameContinent, Km: 1, HasKm: true}
	for _, tc := range []struct {
		name string
		a, b geo.Nearness
		want int
	}{
		{"nearer first", near, far, -1},
		{"farther after", far, near, 1},
		{"equal", near, near, 0},
		{"distance before none", far, noKm, -1},
		{"none after distance", noKm, near, 1},
		{"both without", noKm, noKm, 0},
		{"tier beats distance", far, worseTier, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Errorf("Compare = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRankDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		geo.Rank(berlinClient, newYorkRelay)
		geo.Rank(geo.Location{Region: "a"}, geo.Location{Region: "a"})
	})
	if allocs != 0 {
		t.Errorf("Rank allocates %v times, want 0", allocs)
	}
}

func TestDistanceKm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   geo.Location
		want   float64
		wantOK bool
	}{
		{"berlin-new york", berlinClient, newYorkRelay, 6385, true},
		{"berlin-paris", berlinClient, paris, 878, true},
		{"same point", paris, paris, 0, true},
		{"antipodes", geo.Location{Lat: 0, Lon: 0, HasCoords: true}, geo.Location{Lat: 0, Lon: 180, HasCoords: true}, 20015, true},
		{"poles", geo.Location{Lat: 90, HasCoords: true}, geo.Location{Lat: -90, HasCoords: true}, 20015, true},
		{"across the antimeridian", geo.Location{Lat: 0, Lon: 179.5, HasCoords: true}, geo.Location{Lat: 0, Lon: -179.5, HasCoords: true}, 111, true},
		{"one without coordinates", paris, warsawNoGeo, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := geo.DistanceKm(tc.a, tc.b)
			if ok != tc.wantOK || math.Abs(got-tc.want) > 1 {
				t.Errorf("DistanceKm = %.1f, %v; want %.0f±1, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestFormatKm(t *testing.T) {
	for _, tc := range []struct {
		km   float64
		want string
	}{
		{0, "<1 km"},
		{0.49, "<1 km"},
		{0.5, "1 km"},
		{12.4, "12 km"},
		{999.5, "1,000 km"},
		{2345, "2,345 km"},
		{20015.1, "20,015 km"},
		{1234567, "1,234,567 km"},
		{math.NaN(), "<1 km"},
	} {
		if got := geo.FormatKm(tc.km); got != tc.want {
			t.Errorf("FormatKm(%v) = %q, want %q", tc.km, got, tc.want)
		}
	}
}

func TestTierJSON(t *testing.T) {
	b, err := json.Marshal(map[string]geo.Tier{"a": geo.TierSameNetwork, "b": geo.TierUnknown})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"a":"same_network","b":"unknown"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func BenchmarkRank(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		geo.Rank(berlinClient, newYorkRelay)
	}
}
