package config

import (
	"flag"
	"net"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// Relay configures `odi relay`.
type Relay struct {
	// Listen is the address clients and the directory reach the relay on.
	Listen string `toml:"listen"`
	// PublicURL is how clients reach the relay; by default http://<listen>
	// when listen names a host.
	PublicURL string `toml:"public_url"`
	Admin     string `toml:"admin"`
	// Data holds the relay's key, its state database and the blobs.
	Data        string `toml:"data"`
	Directory   string `toml:"directory"`
	EnrollToken string `toml:"enroll_token"`
	// Quota is the most disk the relay's blobs may use.
	Quota Size `toml:"quota"`
	// Bandwidth caps serving and syncing together; zero means no cap.
	Bandwidth Rate `toml:"bandwidth"`
	// Catalogs to carry; with Labels empty too, all of the directory's.
	Catalogs []string `toml:"catalogs"`
	// Labels ("key=value") choose further catalogs by their labels.
	Labels []string `toml:"labels"`
	// SyncConcurrency bounds parallel downloads of large blobs (1 MiB or
	// more) while syncing; four times as many small ones run at once.
	SyncConcurrency int `toml:"sync_concurrency"`
	// ScrubInterval is how long a full re-verification of held blobs may
	// take at most; the relay paces its background scrub to it.
	ScrubInterval time.Duration `toml:"scrub_interval"`
	// PullThrough makes the relay fetch (and verify) an artifact of a
	// catalog it carries but does not hold when a client asks for it,
	// instead of sending the client back to the directory. Pulled files are
	// a cache: the first evicted when space is needed.
	PullThrough bool `toml:"pull_through"`
	// PullThroughMax is the largest artifact pulled through; larger ones
	// are left to the directory.
	PullThroughMax Size `toml:"pull_through_max"`

	// Location overrides, field by field, what the directory's databases
	// say of the public URL's address.
	Location Place `toml:"location"`
	// Weight is the relay's share of traffic relative to relays as near;
	// zero means derived from Bandwidth (its Mbit/s, or 100 without a cap).
	Weight float64 `toml:"weight"`
	// OnlyCountries and OnlyASNs, when set, restrict the clients the relay
	// is offered to: a client must be in one of the countries or one of
	// the networks. ExcludeCountries and ExcludeASNs are never sent here.
	OnlyCountries    []string `toml:"only_countries"`
	ExcludeCountries []string `toml:"exclude_countries"`
	OnlyASNs         []uint32 `toml:"only_asns"`
	ExcludeASNs      []uint32 `toml:"exclude_asns"`
	// IPv4 and IPv6 say whether clients can reach the public URL over each
	// family: auto (the directory resolves the URL's host), yes or no.
	IPv4 string `toml:"ipv4"`
	IPv6 string `toml:"ipv6"`

	Log Log `toml:"log"`
}

// DefaultRelay returns a Relay with every default filled in.
func DefaultRelay() Relay {
	return Relay{
		Listen:          ":8081",
		Quota:           10 << 30,
		SyncConcurrency: 8,
		ScrubInterval:   7 * 24 * time.Hour,
		PullThroughMax:  1 << 30,
		IPv4:            ReachAuto,
		IPv6:            ReachAuto,
		Log:             Log{Level: "info", Format: "text"},
	}
}

// Flags binds r's settings to flags on fs.
func (r *Relay) Flags(fs *flag.FlagSet) {
	fs.String("config", "", "TOML config `file`; flags override it")
	fs.StringVar(&r.Listen, "listen", r.Listen, "`address` to serve on")
	fs.StringVar(&r.PublicURL, "public-url", r.PublicURL, "`URL` clients use to reach this relay (default http://<listen>)")
	fs.StringVar(&r.Admin, "admin", r.Admin, "`address` for /metrics and status pages (default: none)")
	fs.StringVar(&r.Data, "data", r.Data, "`folder` for the relay's key, state and blobs")
	fs.StringVar(&r.Directory, "directory", r.Directory, "`URL` of the directory to join")
	fs.StringVar(&r.EnrollToken, "enroll-token", r.EnrollToken, "`token` the directory requires to enroll")
	fs.Var(&r.Quota, "quota", "disk space for artifacts (`SIZE`: 500MB, 10GiB)")
	fs.Var(&r.Bandwidth, "bandwidth", "cap on serving plus syncing (`RATE`: 100Mbit, 12.5MB; default none)")
	fs.Var(&listFlag{list: &r.Catalogs}, "catalogs", "catalogs to carry (`NAME,...`; default all)")
	fs.Var(&listFlag{list: &r.Labels}, "labels", "carry catalogs with these labels too (`KEY=VALUE,...`)")
	fs.IntVar(&r.SyncConcurrency, "sync-concurrency", r.SyncConcurrency, "parallel downloads of large blobs while syncing (four times as many small ones)")
	fs.DurationVar(&r.ScrubInterval, "scrub-interval", r.ScrubInterval, "re-verify every held blob within this `duration`")
	fs.BoolVar(&r.PullThrough, "pull-through", r.PullThrough, "fetch artifacts clients ask for that the relay does not hold, instead of sending them back")
	fs.Var(&r.PullThroughMax, "pull-through-max", "largest artifact pulled through (`SIZE`)")
	fs.StringVar(&r.Location.Country, "country", r.Location.Country, "`country` the relay is in (ISO code: DE), overriding GeoIP")
	fs.StringVar(&r.Location.Continent, "continent", r.Location.Continent, "`continent` the relay is in (AF AN AS EU NA OC SA)")
	fs.StringVar(&r.Location.Region, "region", r.Location.Region, "`region` name matching the directory's ranges")
	fs.Var(floatFlag{&r.Location.Lat}, "lat", "latitude of the relay in `degrees`")
	fs.Var(floatFlag{&r.Location.Lon}, "lon", "longitude of the relay in `degrees`")
	fs.Var(asnFlag{&r.Location.ASN}, "asn", "AS `number` announcing the relay's address")
	fs.Float64Var(&r.Weight, "weight", r.Weight, "share of traffic among relays as near (default: from --bandwidth)")
	fs.Var(&listFlag{list: &r.OnlyCountries}, "only-countries", "serve only clients in these `countries` (DE,AT,...)")
	fs.Var(&listFlag{list: &r.ExcludeCountries}, "exclude-countries", "never serve clients in these `countries`")
	fs.Var(&asnListFlag{list: &r.OnlyASNs}, "only-asns", "serve only clients in these `networks` (AS numbers)")
	fs.Var(&asnListFlag{list: &r.ExcludeASNs}, "exclude-asns", "never serve clients in these `networks`")
	fs.StringVar(&r.IPv4, "ipv4", r.IPv4, "reachable over IPv4: `auto`, yes or no")
	fs.StringVar(&r.IPv6, "ipv6", r.IPv6, "reachable over IPv6: `auto`, yes or no")
	r.Log.flags(fs)
}

// Validate reports every problem with r.
func (r *Relay) Validate() Problems {
	var p Problems
	checkListen(&p, "listen", r.Listen, true)
	if r.Admin != "" {
		checkListen(&p, "admin", r.Admin, true)
	}
	if r.PublicURL != "" {
		checkURL(&p, "public-url", r.PublicURL)
	} else if host, _, err := net.SplitHostPort(r.Listen); err == nil && (host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified()) {
		p.Addf("public-url: required when listen (%q) names no host", r.Listen)
	}
	if r.Data == "" {
		p.Addf("data: a folder is required (--data DIR)")
	}
	if r.Directory == "" {
		p.Addf("directory: the URL of a directory to join is required (--directory URL)")
	} else {
		checkURL(&p, "directory", r.Directory)
	}
	if r.EnrollToken == "" {
		p.Addf("enroll-token: required to enroll (--enroll-token TOKEN)")
	}
	if r.Quota < 1<<20 {
		p.Addf("quota: %s is less than the 1MiB minimum", r.Quota)
	}
	if r.Bandwidth < 0 {
		p.Addf("bandwidth: must not be negative")
	}
	for _, c := range r.Catalogs {
		if err := catalog.ValidateName(c); err != nil {
			p.Addf("catalogs: %v", err)
		}
	}
	for _, l := range r.Labels {
		if k, v, ok := strings.Cut(l, "="); !ok || k == "" || v == "" {
			p.Addf("labels: %q is not key=value", l)
		}
	}
	if r.SyncConcurrency < 1 || r.SyncConcurrency > 256 {
		p.Addf("sync-concurrency: %d is not between 1 and 256", r.SyncConcurrency)
	}
	checkPositive(&p, "scrub-interval", r.ScrubInterval)
	if r.PullThroughMax < 0 {
		p.Addf("pull-through-max: must not be negative")
	}
	r.Location.check(&p, "location")
	if !(r.Weight >= 0) || r.Weight > 1e6 {
		p.Addf("weight: %v is not between 0 and 1000000", r.Weight)
	}
	checkCountries(&p, "only-countries", r.OnlyCountries)
	checkCountries(&p, "exclude-countries", r.ExcludeCountries)
	checkReach(&p, "ipv4", r.IPv4)
	checkReach(&p, "ipv6", r.IPv6)
	if r.IPv4 == ReachNo && r.IPv6 == ReachNo {
		p.Addf("ipv4, ipv6: a relay reachable over neither family can serve nobody")
	}
	r.Log.Check(&p)
	return p
}
