package config

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/geo"
)

// CatalogSource publishes the files under a folder as a catalog.
type CatalogSource struct {
	Name string `toml:"name"`
	Path string `toml:"path"`
	// Keys is the folder of the catalog's signing keys (odi catalog init
	// writes it). The directory uses the online keys found there; with
	// none given, it generates a whole key set in its data folder.
	Keys string `toml:"keys"`
	// Labels ("key=value", e.g. "ecosystem=ocaml") let relays choose the
	// catalog by kind rather than by name.
	Labels []string `toml:"labels"`
}

// Directory configures `odi directory`.
type Directory struct {
	// Listen is the address of the client and relay API.
	Listen string `toml:"listen"`
	// PublicURL is how clients and relays reach the directory; by default
	// http://<listen address>.
	PublicURL string `toml:"public_url"`
	// Admin, when set, is a second listener for /metrics and the status
	// pages, meant to be reachable by operators only.
	Admin string `toml:"admin"`
	// Data holds the state database and the blobs.
	Data string `toml:"data"`
	// EnrollTokens are the secrets relays present to enroll. With none,
	// enrollment is closed.
	EnrollTokens []string `toml:"enroll_tokens"`
	// AdminTokens authorize the admin API (expunge, drain); with none it
	// is closed.
	AdminTokens []string        `toml:"admin_tokens"`
	Catalogs    []CatalogSource `toml:"catalog"`
	// Heartbeat is how often relays report; a relay silent for three
	// intervals leaves the rotation.
	Heartbeat time.Duration `toml:"heartbeat"`
	// ProbeInterval is how often the directory checks each relay's health
	// itself; two failed probes in a row take a relay out of rotation.
	ProbeInterval time.Duration `toml:"probe_interval"`
	// AuditInterval is how often each relay's bytes are checked: a random
	// range of a random artifact it holds, fetched through its public URL.
	// Zero turns audits off: relays then enter the rotation on their
	// self-test alone. Only for a directory that holds no bytes to compare
	// with (a benchmark's bulk-loaded catalog).
	AuditInterval time.Duration `toml:"audit_interval"`
	// LagLimit is how long a relay may stay behind a catalog's current
	// version before it leaves the rotation.
	LagLimit time.Duration `toml:"lag_limit"`
	// Replicas is how many relays should hold each part of a catalog
	// (where their quotas allow).
	Replicas int `toml:"replicas"`
	// HotThreshold is the decayed download count (half-life HotHalfLife)
	// from which an artifact gets extra replicas.
	HotThreshold float64       `toml:"hot_threshold"`
	HotHalfLife  time.Duration `toml:"hot_half_life"`
	// GeoIPDB is a MaxMind-format City or Country database and ASNDB an
	// ASN database (GeoLite2, GeoIP2, DB-IP Lite); either may be empty.
	// They tell where clients and relays are; SIGHUP reopens them.
	GeoIPDB string `toml:"geoip_db"`
	ASNDB   string `toml:"asn_db"`
	// Ranges place client addresses where no database applies, or pin
	// what a database gets wrong.
	Ranges []Range `toml:"range"`
	// TrustedProxies are the addresses or prefixes of reverse proxies in
	// front of the directory: only from them are X-Forwarded-For and
	// X-Forwarded-Proto believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	Log            Log      `toml:"log"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// DefaultDirectory returns a Directory with every default filled in.
func DefaultDirectory() Directory {
	return Directory{
		Listen:        ":8080",
		Heartbeat:     2 * time.Second,
		ProbeInterval: 2 * time.Second,
		AuditInterval: 30 * time.Second,
		LagLimit:      10 * time.Minute,
		Replicas:      2,
		HotThreshold:  100,
		HotHalfLife:   time.Hour,
		Log:           Log{Level: "info", Format: "text"},
	}
}

// Flags binds d's settings to flags on fs.
func (d *Directory) Flags(fs *flag.FlagSet) {
	fs.String("config", "", "TOML config `file`; flags override it")
	fs.StringVar(&d.Listen, "listen", d.Listen, "client and relay API `address`")
	fs.StringVar(&d.PublicURL, "public-url", d.PublicURL, "`URL` clients and relays use (default http://<listen>)")
	fs.StringVar(&d.Admin, "admin", d.Admin, "`address` for /metrics and status pages (default: none)")
	fs.StringVar(&d.Data, "data", d.Data, "`folder` for state and blobs")
	fs.Var(&listFlag{list: &d.EnrollTokens}, "enroll-token", "`token` relays present to enroll (repeatable)")
	fs.Var(&listFlag{list: &d.AdminTokens}, "admin-token", "`token` that authorizes the admin API: expunge, drain (repeatable)")
	fs.Var(CatalogFlag(&d.Catalogs), "catalog", "publish files under PATH as catalog NAME (`NAME=PATH`, repeatable)")
	fs.DurationVar(&d.Heartbeat, "heartbeat", d.Heartbeat, "how often relays report")
	fs.DurationVar(&d.ProbeInterval, "probe-interval", d.ProbeInterval, "how often relays are probed")
	fs.DurationVar(&d.AuditInterval, "audit-interval", d.AuditInterval, "how often each relay's bytes are audited (0: never)")
	fs.DurationVar(&d.LagLimit, "lag-limit", d.LagLimit, "how long a relay may lag behind a catalog before leaving the rotation")
	fs.IntVar(&d.Replicas, "replicas", d.Replicas, "relays that should hold each part of a catalog")
	fs.Float64Var(&d.HotThreshold, "hot-threshold", d.HotThreshold, "decayed downloads from which an artifact gets extra replicas")
	fs.DurationVar(&d.HotHalfLife, "hot-half-life", d.HotHalfLife, "half-life of the download counts that find hot artifacts")
	fs.StringVar(&d.GeoIPDB, "geoip-db", d.GeoIPDB, "MaxMind-format City or Country database `file`")
	fs.StringVar(&d.ASNDB, "asn-db", d.ASNDB, "MaxMind-format ASN database `file`")
	fs.Var(&rangeFlag{list: &d.Ranges}, "range", "place client addresses (`CIDR,region=R,country=C,continent=C,lat=X,lon=Y,asn=N`; repeatable)")
	fs.Var(&listFlag{list: &d.TrustedProxies}, "trusted-proxy", "reverse proxy `address or CIDR` whose X-Forwarded-For is believed (repeatable)")
	d.Log.flags(fs)
}

func (l *Log) flags(fs *flag.FlagSet) {
	fs.StringVar(&l.Level, "log-level", l.Level, "debug, info, warn or error")
	fs.StringVar(&l.Format, "log-format", l.Format, "text or json")
}

// Validate reports every problem with d.
func (d *Directory) Validate() Problems {
	var p Problems
	checkListen(&p, "listen", d.Listen, true)
	if d.Admin != "" {
		checkListen(&p, "admin", d.Admin, true)
	}
	if d.PublicURL != "" {
		checkURL(&p, "public-url", d.PublicURL)
	}
	if d.Data == "" {
		p.Addf("data: a folder is required (--data DIR)")
	}
	for _, t := range d.EnrollTokens {
		if len(t) < 8 {
			p.Addf("enroll-token: tokens must be at least 8 characters")
			break
		}
	}
	for _, t := range d.AdminTokens {
		if len(t) < 16 {
			p.Addf("admin-token: tokens must be at least 16 characters")
			break
		}
	}
	seen := map[string]bool{}
	for _, c := range d.Catalogs {
		if err := catalog.ValidateName(c.Name); err != nil {
			p.Addf("catalog %q: %v", c.Name, err)
		}
		if seen[c.Name] {
			p.Addf("catalog %q: given twice", c.Name)
		}
		seen[c.Name] = true
		for _, l := range c.Labels {
			if k, v, ok := strings.Cut(l, "="); !ok || k == "" || v == "" {
				p.Addf("catalog %q: label %q is not key=value", c.Name, l)
			}
		}
		if c.Keys != "" {
			if fi, err := os.Stat(c.Keys); err != nil || !fi.IsDir() {
				p.Addf("catalog %q: keys: %s is not a folder", c.Name, c.Keys)
			}
		}
		if c.Path == "" {
			p.Addf("catalog %q: no path", c.Name)
		} else if fi, err := os.Stat(c.Path); err != nil {
			p.Addf("catalog %q: %v", c.Name, err)
		} else if !fi.IsDir() {
			p.Addf("catalog %q: %s is not a folder", c.Name, c.Path)
		}
	}
	checkPositive(&p, "heartbeat", d.Heartbeat)
	checkPositive(&p, "probe-interval", d.ProbeInterval)
	if d.AuditInterval != 0 {
		checkPositive(&p, "audit-interval", d.AuditInterval)
	}
	checkPositive(&p, "lag-limit", d.LagLimit)
	if d.Replicas < 1 || d.Replicas > 16 {
		p.Addf("replicas: %d is not between 1 and 16", d.Replicas)
	}
	if d.HotThreshold <= 0 {
		p.Addf("hot-threshold: must be positive")
	}
	checkPositive(&p, "hot-half-life", d.HotHalfLife)
	// Open the databases now, so a wrong path or a swapped City/ASN file
	// is refused at start (or on reload), not found at the first client.
	checkDB(&p, "geoip-db", d.GeoIPDB, "")
	checkDB(&p, "asn-db", "", d.ASNDB)
	checkRanges(&p, d.Ranges)
	if _, err := ParseProxies(d.TrustedProxies); err != nil {
		for _, e := range unjoin(err) {
			p.Addf("%v", e)
		}
	}
	d.Log.Check(&p)
	return p
}

func checkDB(p *Problems, field, geoPath, asnPath string) {
	if geoPath == "" && asnPath == "" {
		return
	}
	db, err := geo.Open(geoPath, asnPath)
	if err != nil {
		p.Addf("%s: %v", field, err)
		return
	}
	db.Close()
}

// Check adds l's problems to p.
func (l *Log) Check(p *Problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.Addf("log-level: %q is not one of debug, info, warn, error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		p.Addf("log-format: %q is not text or json", l.Format)
	}
}

// CatalogFlag returns a flag.Value reading NAME=PATH into list; its first
// use replaces what list held (from a config file), later uses append.
func CatalogFlag(list *[]CatalogSource) flag.Value { return &catalogFlag{list: list} }

// catalogFlag reads NAME=PATH; its first use replaces the file's catalogs.
type catalogFlag struct {
	list    *[]CatalogSource
	touched bool
}

func (c *catalogFlag) String() string {
	if c.list == nil {
		return ""
	}
	var s []string
	for _, x := range *c.list {
		s = append(s, x.Name+"="+x.Path)
	}
	return strings.Join(s, ",")
}

func (c *catalogFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("%q is not NAME=PATH", v)
	}
	if !c.touched {
		*c.list, c.touched = nil, true
	}
	*c.list = append(*c.list, CatalogSource{Name: name, Path: path})
	return nil
}

func checkListen(p *Problems, field, addr string, allowZero bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.Addf("%s: %q is not host:port", field, addr)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !allowZero) {
		p.Addf("%s: %q has no valid port", field, addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		p.Addf("%s: %q has no valid host", field, addr)
	}
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r == '-' || r == '.' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

func checkURL(p *Problems, field, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		p.Addf("%s: %q is not a URL", field, s)
	case u.Scheme != "http" && u.Scheme != "https":
		p.Addf("%s: %q must start with http:// or https://", field, s)
	case u.Host == "":
		p.Addf("%s: %q has no host", field, s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		p.Addf("%s: %q must not have a query, fragment or user", field, s)
	}
}

// checkPositive also catches a bare number in the file, which TOML reads
// as nanoseconds.
func checkPositive(p *Problems, field string, d time.Duration) {
	if d < time.Millisecond {
		p.Addf("%s: %s is too short (write a duration such as \"2s\")", field, d)
	}
}
