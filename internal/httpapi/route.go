package httpapi

import (
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/geo"
)

// MirrorListParam is the query parameter that asks /r/<catalog>/<path> for
// the list of relays holding the artifact instead of a redirect.
const MirrorListParam = "mirrorlist"

// RelaySettings are the choices a relay's operator makes about which
// clients it serves; a relay sends them when it enrolls.
type RelaySettings struct {
	// Location overrides, field by field, what the directory's databases
	// say of the relay's public address.
	Location geo.Location `json:"location,omitzero"`
	// Weight is the relay's share of traffic relative to relays as near;
	// 0 lets the directory derive it from the bandwidth cap.
	Weight float64 `json:"weight,omitempty"`
	// A client must be in one of OnlyCountries or OnlyASNs when either is
	// set, and never in ExcludeCountries or ExcludeASNs.
	OnlyCountries    []string `json:"only_countries,omitempty"`
	ExcludeCountries []string `json:"exclude_countries,omitempty"`
	OnlyASNs         []uint32 `json:"only_asns,omitempty"`
	ExcludeASNs      []uint32 `json:"exclude_asns,omitempty"`
	// IPv4 and IPv6 say whether clients can reach the public URL over
	// each family; absent, the directory decides from the URL's host.
	IPv4 *bool `json:"ipv4,omitempty"`
	IPv6 *bool `json:"ipv6,omitempty"`
}

// RelayRouting is how the directory routes clients to a relay, for status
// pages: where it believes the relay is, what it can reach, and the weight
// it gives it now.
type RelayRouting struct {
	Location geo.Location  `json:"location,omitzero"`
	IPv4     bool          `json:"ipv4"`
	IPv6     bool          `json:"ipv6"`
	HTTPS    bool          `json:"https"`
	Settings RelaySettings `json:"settings,omitzero"`
	// Weight is the relay's nominal weight; Factor (0 to 1) scales it for
	// load (Rate against Bandwidth) and for the ramp after it (re)joined
	// the rotation.
	Weight float64 `json:"weight"`
	Factor float64 `json:"factor"`
	Rate   int64   `json:"rate"`
}

// MirrorList is the JSON answer to GET /r/<catalog>/<path>?mirrorlist with
// Accept: application/json: the relays holding the artifact, best first for
// the client that asked.
type MirrorList struct {
	Catalog string         `json:"catalog"`
	Path    string         `json:"path"`
	Version uint64         `json:"version"`
	Size    int64          `json:"size"`
	SHA256  catalog.Digest `json:"sha256"`
	Client  MirrorClient   `json:"client"`
	Mirrors []Mirror       `json:"mirrors"`
	// Download is the directory's URL for the artifact, which picks a
	// relay from this list (or serves the bytes itself when none can).
	Download string `json:"download"`
}

// MirrorClient is what the directory knows of the client a list is for.
type MirrorClient struct {
	Address  string       `json:"address"`
	HTTPS    bool         `json:"https"`
	Location geo.Location `json:"location,omitzero"`
}

// Mirror is one relay in a mirror list.
type Mirror struct {
	// Rank orders the relays a download may go to, 1 first; 0 for relays
	// it may not go to now (see Why).
	Rank    int    `json:"rank"`
	RelayID string `json:"relay_id"`
	// URL is the artifact on this relay.
	URL      string       `json:"url"`
	Location geo.Location `json:"location,omitzero"`
	// Tier is the nearness tier (same_network, same_region, same_country,
	// same_continent, distance, other_continent, unknown) and DistanceKm
	// the great-circle distance when both places are known.
	Tier       string   `json:"tier"`
	DistanceKm *float64 `json:"distance_km,omitempty"`
	// Reason says why the relay ranks where it does ("same country DE").
	Reason string `json:"reason"`
	// State is the relay's health (ready, syncing, down); InRotation
	// whether the directory sends clients to it at all.
	State      string `json:"state"`
	InRotation bool   `json:"in_rotation"`
	// Why says why this client's download may not go to the relay, when
	// Rank is 0: out of rotation, an IP family or scheme it lacks, an
	// operator's country or network restriction, over its bandwidth cap.
	Why string `json:"why,omitempty"`
	// Share is the chance that a download by this client goes to the
	// relay, from 0 to 1.
	Share float64 `json:"share"`
}
