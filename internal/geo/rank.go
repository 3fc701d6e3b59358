package geo

import (
	"cmp"
	"math"
	"strconv"
)

// Tier is the coarse part of a Nearness: lower is nearer.
type Tier uint8

// The tiers, nearest first; see the package comment for why this order.
const (
	TierSameNetwork    Tier = iota // same autonomous system (not split by continents)
	TierSameRegion                 // same operator-named region
	TierSameCountry                // same country
	TierSameContinent              // same continent
	TierDistance                   // only the great-circle distance is known
	TierOtherContinent             // known to be on another continent, distance unknown
	TierUnknown                    // too little known of either side
)

var tierNames = [...]string{"same_network", "same_region", "same_country", "same_continent", "distance", "other_continent", "unknown"}

// String returns a stable snake_case name, for JSON and metric labels.
func (t Tier) String() string {
	if int(t) < len(tierNames) {
		return tierNames[t]
	}
	return "tier" + strconv.Itoa(int(t))
}

// MarshalText encodes the tier by name.
func (t Tier) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Nearness is how near a relay is to a client, as Rank measures it. Order
// relays with Compare (for slices.SortFunc); show Reason to people.
type Nearness struct {
	Tier Tier `json:"tier"`
	// Km is the great-circle distance, valid only when HasKm: both sides
	// had coordinates. Within a tier it breaks ties.
	Km    float64 `json:"km,omitempty"`
	HasKm bool    `json:"has_km,omitempty"`

	asn uint32 // the shared ASN, for TierSameNetwork
	key string // the shared region, country or continent, or the relay's continent
}

// Rank measures how near relay is to client. It does not allocate, so the
// directory can rank every candidate relay on each redirect.
func Rank(client, relay Location) Nearness {
	n := Nearness{Tier: TierUnknown}
	n.Km, n.HasKm = DistanceKm(client, relay)
	continentsDiffer := client.Continent != "" && relay.Continent != "" && client.Continent != relay.Continent
	countriesDiffer := client.Country != "" && relay.Country != "" && client.Country != relay.Country
	switch {
	case client.ASN != 0 && client.ASN == relay.ASN && !continentsDiffer:
		n.Tier, n.asn = TierSameNetwork, client.ASN
	case client.Region != "" && client.Region == relay.Region && !countriesDiffer && !continentsDiffer:
		n.Tier, n.key = TierSameRegion, client.Region
	case client.Country != "" && client.Country == relay.Country:
		n.Tier, n.key = TierSameCountry, client.Country
	case client.Continent != "" && client.Continent == relay.Continent:
		n.Tier, n.key = TierSameContinent, client.Continent
	case n.HasKm:
		n.Tier = TierDistance
	case continentsDiffer:
		n.Tier, n.key = TierOtherContinent, relay.Continent
	}
	return n
}

// Compare orders a before b when a is nearer: by tier, then by distance
// where known, a known distance before an unknown one. It returns -1, 0 or
// +1 like cmp.Compare.
func (a Nearness) Compare(b Nearness) int {
	if c := cmp.Compare(a.Tier, b.Tier); c != 0 {
		return c
	}
	switch {
	case a.HasKm && b.HasKm:
		return cmp.Compare(a.Km, b.Km)
	case a.HasKm:
		return -1
	case b.HasKm:
		return 1
	}
	return 0
}

// Reason says in a few words why the relay ranks where it does, for the
// mirror list: "same network AS64500", "same country DE", "2,345 km".
func (a Nearness) Reason() string {
	switch a.Tier {
	case TierSameNetwork:
		return "same network AS" + strconv.FormatUint(uint64(a.asn), 10)
	case TierSameRegion:
		return "same region " + a.key
	case TierSameCountry:
		return "same country " + a.key
	case TierSameContinent:
		return "same continent " + a.key
	case TierDistance:
		return FormatKm(a.Km)
	case TierOtherContinent:
		return "other continent " + a.key
	}
	return "location unknown"
}

// FormatKm renders a distance in whole kilometres with thousands
// separators, "2,345 km"; anything under one kilometre is "<1 km".
// GeoIP coordinates are rarely better than tens of kilometres, so more
// digits would only suggest a precision nobody has.
func FormatKm(km float64) string {
	if math.IsNaN(km) || km < 0.5 {
		return "<1 km"
	}
	if math.IsInf(km, 0) || km > 1e15 {
		return "far"
	}
	s := strconv.FormatInt(int64(math.Round(km)), 10)
	b := make([]byte, 0, len(s)+len(s)/3+3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(append(b, " km"...))
}
