package geo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// ErrBadDatabase reports a file that is not a usable MaxMind DB of the
// expected kind: not an MMDB at all, truncated, or of the wrong type.
var ErrBadDatabase = errors.New("unusable MaxMind database")

// DB answers lookups from a MaxMind-format City or Country database, an ASN
// database, or both. It is safe for concurrent use.
//
// Close may be called while lookups are in flight: that is how a reload on
// SIGHUP works (open the new DB, swap the pointer callers load, Close the
// old one). Close does not unmap the files at once, because a lookup that
// loaded the old readers a moment before may still be walking them;
// instead it drops the DB's references, and the garbage collector unmaps
// the files once the last such lookup has returned. Lookups that begin
// after Close return the zero Location.
//
// The files are memory-mapped, so update them by renaming a new file into
// place (as geoipupdate does), never by writing over the old one: its pages
// may still be in use until the collector releases them.
type DB struct {
	dbs    atomic.Pointer[readers] // nil once closed
	info   []DBInfo
	errors atomic.Uint64
	// bufs recycles decode targets: Decode takes them as an interface, so
	// a fresh one per lookup would escape to the heap.
	bufs sync.Pool
}

type lookupBuf struct {
	geo geoRecord
	asn asnRecord
}

// readers is immutable once built; DB swaps it out as a whole on Close.
type readers struct {
	geo, asn *maxminddb.Reader
	// geoV4, asnV4 mark IPv4-only databases, which answer IPv6 lookups
	// with a formatted error; checking first keeps misses allocation-free.
	geoV4, asnV4 bool
}

// DBInfo describes one opened database file, for status pages and logs.
type DBInfo struct {
	Path      string    `json:"path"`
	Type      string    `json:"type"` // metadata database_type, e.g. "GeoLite2-City"
	Built     time.Time `json:"built"`
	IPVersion int       `json:"ip_version"`
}

type dbKind int

const (
	kindGeo dbKind = iota // City or Country
	kindASN
)

func (k dbKind) String() string {
	if k == kindASN {
		return "ASN database"
	}
	return "City/Country database"
}

// Open opens a City or Country database at geoPath and an ASN database at
// asnPath. Either path may be empty, not both. Each file's metadata must
// declare the matching kind, so swapped flags are caught at start rather
// than showing up as every client being "location unknown".
func Open(geoPath, asnPath string) (*DB, error) {
	if geoPath == "" && asnPath == "" {
		return nil, errors.New("geo: open: no database path given")
	}
	rs := &readers{}
	db := &DB{}
	closeAll := func() {
		if rs.geo != nil {
			rs.geo.Close()
		}
		if rs.asn != nil {
			rs.asn.Close()
		}
	}
	if geoPath != "" {
		r, info, err := openReader(geoPath, kindGeo)
		if err != nil {
			return nil, err
		}
		rs.geo, rs.geoV4 = r, info.IPVersion == 4
		db.info = append(db.info, info)
	}
	if asnPath != "" {
		r, info, err := openReader(asnPath, kindASN)
		if err != nil {
			closeAll()
			return nil, err
		}
		rs.asn, rs.asnV4 = r, info.IPVersion == 4
		db.info = append(db.info, info)
	}
	db.dbs.Store(rs)
	return db, nil
}

func openReader(path string, want dbKind) (*maxminddb.Reader, DBInfo, error) {
	if err := sniff(path); err != nil {
		// The message names the path already; keep the OS's reason only.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, DBInfo{}, fmt.Errorf("geo: open %s %s: %w", want, path, err)
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		var invalid maxminddb.InvalidDatabaseError
		if errors.As(err, &invalid) {
			return nil, DBInfo{}, fmt.Errorf("geo: open %s %s: %w: not a MaxMind DB file, or truncated: %w",
				want, path, ErrBadDatabase, err)
		}
		return nil, DBInfo{}, fmt.Errorf("geo: open %s %s: %w", want, path, err)
	}
	md := r.Metadata
	info := DBInfo{Path: path, Type: md.DatabaseType, Built: md.BuildTime().UTC(), IPVersion: int(md.IPVersion)}
	got, ok := classify(md.DatabaseType)
	switch {
	case !ok:
		err = fmt.Errorf("%w: database type %q is neither a City/Country nor an ASN database", ErrBadDatabase, md.DatabaseType)
	case got != want:
		err = fmt.Errorf("%w: database type %q is an %s, not a %s", ErrBadDatabase, md.DatabaseType, got, want)
		if want == kindASN {
			err = fmt.Errorf("%w: database type %q is a %s, not an %s", ErrBadDatabase, md.DatabaseType, got, want)
		}
	case md.IPVersion != 4 && md.IPVersion != 6:
		err = fmt.Errorf("%w: ip_version %d, want 4 or 6", ErrBadDatabase, md.IPVersion)
	}
	if err != nil {
		r.Close()
		return nil, DBInfo{}, fmt.Errorf("geo: open %s %s: %w", want, path, err)
	}
	return r, info, nil
}

// sniff recognises the files most often given by mistake before the MMDB
// parser reports them as merely invalid.
func sniff(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var head [512]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	b := head[:n]
	switch {
	case n == 0:
		return fmt.Errorf("%w: file is empty", ErrBadDatabase)
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return fmt.Errorf("%w: file is gzip-compressed (a GeoLite2 .tar.gz download?); extract the .mmdb file", ErrBadDatabase)
	case n > 262 && string(b[257:262]) == "ustar":
		return fmt.Errorf("%w: file is a tar archive; extract the .mmdb file", ErrBadDatabase)
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return fmt.Errorf("%w: file is a zip archive; extract the .mmdb file", ErrBadDatabase)
	}
	return nil
}

// classify maps a database_type to the kind of records it holds. Names
// follow MaxMind's (GeoIP2-City, GeoLite2-Country, GeoIP2-Enterprise,
// GeoLite2-ASN, GeoIP2-ISP) and the compatible DB-IP files (DBIP-City-Lite,
// DBIP-ASN-Lite); self-built files are accepted when their type says which
// layout they follow.
func classify(dbType string) (dbKind, bool) {
	t := strings.ToLower(dbType)
	switch {
	case strings.Contains(t, "asn"), strings.Contains(t, "isp"):
		return kindASN, true
	case strings.Contains(t, "city"), strings.Contains(t, "country"), strings.Contains(t, "enterprise"):
		return kindGeo, true
	}
	return 0, false
}

// Info describes the opened files, City/Country first.
func (db *DB) Info() []DBInfo { return append([]DBInfo(nil), db.info...) }

// Errors returns how many lookups hit a malformed record since Open. Such
// lookups answer with what could be read; the count is for a metric, since
// logging every one would flood the log at redirect rates.
func (db *DB) Errors() uint64 { return db.errors.Load() }

// Lookup returns what the databases know of addr. IPv4-mapped IPv6
// addresses are looked up as IPv4; zones are ignored. An address the
// databases do not cover, or a closed or nil DB, gives the zero Location.
func (db *DB) Lookup(addr netip.Addr) Location {
	if db == nil || !addr.IsValid() {
		return Location{}
	}
	rs := db.dbs.Load()
	if rs == nil {
		return Location{}
	}
	addr = addr.Unmap()
	buf, _ := db.bufs.Get().(*lookupBuf)
	if buf == nil {
		buf = new(lookupBuf)
	}
	defer db.bufs.Put(buf)
	var loc Location
	if rs.geo != nil && (addr.Is4() || !rs.geoV4) {
		rec := &buf.geo
		*rec = geoRecord{}
		if err := rs.geo.Lookup(addr).Decode(rec); err != nil {
			db.errors.Add(1)
		}
		loc.Country = rec.country
		if loc.Country == "" {
			// Satellite and anycast providers often have no country of
			// use, only of registration; that is a better guess than none.
			loc.Country = rec.registered
		}
		loc.Continent = rec.continent
		if loc.Continent == "" {
			loc.Continent = ContinentOf(loc.Country)
		}
		if rec.hasLat && rec.hasLon {
			loc.Lat, loc.Lon, loc.HasCoords = rec.lat, rec.lon, true
		}
	}
	if rs.asn != nil && (addr.Is4() || !rs.asnV4) {
		rec := &buf.asn
		*rec = asnRecord{}
		if err := rs.asn.Lookup(addr).Decode(rec); err != nil {
			db.errors.Add(1)
		}
		if rec.asn <= 1<<32-1 {
			loc.ASN = uint32(rec.asn)
			loc.ASOrg = rec.org
		}
	}
	return loc
}

// Close marks the DB closed; see the type's comment for why it is safe
// during lookups and what it leaves to the garbage collector. It always
// returns nil and may be called more than once.
func (db *DB) Close() error {
	db.dbs.Store(nil)
	return nil
}
