package httpapi

import (
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/placement"
)

// Paths of the directory's API.
const (
	PathEnroll    = "/api/v1/relays"
	PathCatalogs  = "/api/v1/catalogs"
	PathStatus    = "/api/v1/status"
	PathBlobs     = "/api/v1/blobs/"      // + hex digest
	PathRedirect  = "/r/"                 // + catalog/path
	PathCatalog   = "/c/"                 // + catalog/...
	RelayHealth   = "/.odi/health"        // on relays
	RelayBlobs    = "/.odi/blobs/"        // on relays, + hex digest
	RelayInternal = "/.odi/"              // prefix of every relay endpoint that is not a catalog
	AvoidParam    = "odi-avoid"           // query parameter a relay adds when it sends a client back
	HeaderVersion = "Odi-Catalog-Version" // on answers that depend on a catalog version
)

// RelayPath returns the path of a relay's endpoint for call (heartbeat,
// inventory) under the directory's API.
func RelayPath(id, call string) string { return "/api/v1/relays/" + id + "/" + call }

// ChangesPath returns the path of a catalog's change log.
func ChangesPath(name string) string { return PathCatalog + name + "/changes" }

// EnrollRequest is what a relay sends to join a directory.
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicURL string `json:"public_url"`
	PublicKey []byte `json:"public_key"` // ed25519, 32 bytes
	// Quota is the disk space, in bytes, the operator gives to artifacts.
	Quota int64 `json:"quota"`
	// Bandwidth is the operator's cap in bytes per second; 0 means none.
	Bandwidth int64 `json:"bandwidth,omitempty"`
	// Catalogs the relay wants to carry; with Labels empty too, every
	// catalog.
	Catalogs []string `json:"catalogs,omitempty"`
	// Labels ("key=value") select further catalogs by their labels.
	Labels   []string `json:"labels,omitempty"`
	Software string   `json:"software,omitempty"`
	RelaySettings
}

// EnrollResponse tells a relay who it is and how to behave.
type EnrollResponse struct {
	RelayID      string `json:"relay_id"`
	DirectoryKey []byte `json:"directory_key"` // ed25519, signs commands to the relay
	// HeartbeatSeconds is how often the directory expects to hear from it.
	HeartbeatSeconds float64 `json:"heartbeat_seconds"`
}

// Assignment is a catalog a relay should carry and the version to reach.
type Assignment struct {
	Catalog string `json:"catalog"`
	Version uint64 `json:"version"`
	// Peers are other relays in rotation carrying the catalog, which the
	// relay may fetch blobs from (GET <url>/.odi/blobs/<sha256>) before
	// falling back to the directory. Their bytes are verified the same way.
	Peers []Peer `json:"peers,omitempty"`
	// Holds is the relay's share: the shards (by path hash, see
	// catalog.PathHash) it should hold, assigned or to keep until their new
	// holders are complete. A relay keeps no path outside it.
	Holds placement.Ranges `json:"holds"`
	// Hot lists popular paths outside Holds the relay should hold as well.
	Hot []string `json:"hot,omitempty"`
}

// Peer is another relay.
type Peer struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// Relay states, as the directory sees them.
const (
	StateEnrolled = "enrolled" // known, has not reported yet
	StateSyncing  = "syncing"  // fetching its assignment
	StateReady    = "ready"    // serving what it reported
	StateDown     = "down"     // missed heartbeats or failed probes
)

// RelayState is what a relay says of itself in every call: its state and
// the catalog versions it has applied, as of Seq. Heartbeats and inventory
// reports travel concurrently; the directory keeps the state with the
// highest Seq, so an older report arriving late changes nothing.
type RelayState struct {
	// Seq increases with every report a relay builds, across restarts.
	Seq   int64  `json:"seq"`
	State string `json:"state"` // syncing or ready
	// Versions maps each catalog to the version the relay serves.
	Versions map[string]uint64 `json:"versions"`
	// Draining says the relay's operator asked for no new clients.
	Draining    bool  `json:"draining,omitempty"`
	BytesServed int64 `json:"bytes_served"`
	DiskUsed    int64 `json:"disk_used"`
	// Complete lists, per catalog, the shards of its share the relay holds
	// entirely at its version: what placement may count on.
	Complete map[string]placement.Ranges `json:"complete,omitempty"`
}

// HeartbeatRequest is a relay's periodic report.
type HeartbeatRequest struct {
	RelayState
	// Session echoes the directory's inventory session the relay last
	// reported to; a mismatch asks for a full inventory.
	Session string `json:"session"`
	// Problems the relay wants its operator to see on the directory.
	Problems []string `json:"problems,omitempty"`
	// Rate is what the relay sent in bytes per second over the last few
	// seconds, and Bandwidth its cap (0: none); the directory steers
	// traffic away from a relay as Rate nears Bandwidth.
	Rate      int64 `json:"rate"`
	Bandwidth int64 `json:"bandwidth,omitempty"`
}

// HeartbeatResponse tells a relay what to carry and how it is doing.
type HeartbeatResponse struct {
	Assignments []Assignment `json:"assignments"`
	// Session is the directory's inventory session; when it differs from
	// what the relay sent, the relay reports its full inventory.
	Session string `json:"session"`
	// InRotation says whether clients are being sent to the relay, and
	// Reason why not.
	InRotation bool   `json:"in_rotation"`
	Reason     string `json:"reason,omitempty"`
}

// InventoryReport tells the directory which blobs a relay holds, in full
// or as a change since its last report in the same session.
type InventoryReport struct {
	RelayState
	Session string           `json:"session"`
	Full    bool             `json:"full"`
	Add     []catalog.Digest `json:"add,omitempty"`
	Remove  []catalog.Digest `json:"remove,omitempty"`
}

// InventoryResponse acknowledges a report.
type InventoryResponse struct {
	Held int `json:"held"` // blobs the directory now believes the relay holds
}

// Change is one entry of a catalog's change log on the wire.
type Change struct {
	Path    string         `json:"path"`
	Deleted bool           `json:"deleted,omitempty"`
	Size    int64          `json:"size,omitempty"`
	SHA256  catalog.Digest `json:"sha256"`
	MTime   int64          `json:"mtime,omitempty"` // Unix seconds
	Version uint64         `json:"version"`
}

// ChangesPage is one page of a catalog's change log: everything that
// changed after Since up to and including Version.
type ChangesPage struct {
	Catalog string   `json:"catalog"`
	Since   uint64   `json:"since"`
	Version uint64   `json:"version"`
	Changes []Change `json:"changes"`
	// Next, when not empty, is the cursor of the following page.
	Next string `json:"next,omitempty"`
}

// CatalogInfo describes a published catalog.
type CatalogInfo struct {
	Name      string    `json:"name"`
	Version   uint64    `json:"version"`
	Artifacts int       `json:"artifacts"`
	Bytes     int64     `json:"bytes"`
	Updated   time.Time `json:"updated"`
}

// RelayInfo is the directory's view of one relay, for status pages.
type RelayInfo struct {
	ID         string            `json:"id"`
	PublicURL  string            `json:"public_url"`
	State      string            `json:"state"`
	InRotation bool              `json:"in_rotation"`
	Reason     string            `json:"reason,omitempty"`
	Quota      int64             `json:"quota"`
	Bandwidth  int64             `json:"bandwidth,omitempty"`
	Held       int               `json:"held"`
	Versions   map[string]uint64 `json:"versions"`
	LastSeen   time.Time         `json:"last_seen"`
	Problems   []string          `json:"problems,omitempty"`
	// DiskUsed is what the relay reported holding, in bytes.
	DiskUsed int64 `json:"disk_used"`
	// Share is how many bytes of catalogs placement gave the relay.
	Share int64 `json:"share"`
	RelayRouting
}

// DirectoryStatus is the directory's status page in JSON.
type DirectoryStatus struct {
	Catalogs  []CatalogInfo   `json:"catalogs"`
	Relays    []RelayInfo     `json:"relays"`
	Placement PlacementStatus `json:"placement"`
}

// PlacementStatus summarizes the current placement.
type PlacementStatus struct {
	Replicas int `json:"replicas"`
	// MovedBytes is what the last change of placement asked relays to copy.
	MovedBytes int64 `json:"moved_bytes"`
	// ShortBytes counts bytes placed fewer than Replicas times (summed over
	// the missing copies) because relays lack the room.
	ShortBytes int64 `json:"short_bytes"`
}

// RelayHealthInfo is what a relay's health endpoint answers.
type RelayHealthInfo struct {
	RelayID string `json:"relay_id"`
	State   string `json:"state"`
}

// Event is one line of a relay's event stream (GET /api/v1/relays/{id}/events,
// newline-delimited JSON). The stream doubles as the relay's presence: the
// directory takes a relay out of rotation the moment it closes.
type Event struct {
	Type    string `json:"type"` // hello, catalog, ping
	Catalog string `json:"catalog,omitempty"`
	Version uint64 `json:"version,omitempty"`
}

// Event types.
const (
	EventHello   = "hello"   // first event; the relay should heartbeat now
	EventCatalog = "catalog" // a catalog has a new version
	EventPing    = "ping"    // keeps the connection open through middleboxes
	// EventAssignment: the relay's share changed; heartbeat to learn it.
	EventAssignment = "assignment"
)

// Relay endpoints the directory calls.
const (
	RelayCommands  = "/.odi/commands"  // POST, signed by the directory
	RelayChallenge = "/.odi/challenge" // GET ?nonce=, the enrollment self-test
)

// Command types.
const (
	CommandExpunge = "expunge" // delete the blobs in Digests and the paths using them in Catalog
	CommandDrain   = "drain"   // the directory stopped sending clients; Reason says why
	CommandUndrain = "undrain"
	CommandSync    = "sync" // heartbeat and sync now
)

// Command is a signed call from a directory to one of its relays. The
// relay verifies the directory's signature (the key it learned at
// enrollment) over method, path, body digest, its own id, the time and a
// nonce, exactly as the directory verifies relays (internal/auth).
type Command struct {
	Type    string           `json:"type"`
	ID      string           `json:"id,omitempty"`
	Catalog string           `json:"catalog,omitempty"`
	Digests []catalog.Digest `json:"digests,omitempty"`
	Reason  string           `json:"reason,omitempty"`
}

// CommandResult is a relay's answer to a Command.
type CommandResult struct {
	// Detail says what the relay did ("deleted 1 blob", "not held").
	Detail string `json:"detail"`
}

// ChallengeAnswer proves that the server at a relay's public URL holds the
// relay's key: Signature is ed25519 over ChallengeMessage(nonce, url).
type ChallengeAnswer struct {
	RelayID   string `json:"relay_id"`
	Signature []byte `json:"signature"`
}

// ChallengeMessage is what a relay signs to answer a self-test challenge.
func ChallengeMessage(nonce, publicURL string) []byte {
	return []byte("odi-challenge-v1\n" + nonce + "\n" + publicURL)
}

// RelayStatus is a relay's view of itself, on its admin listener.
type RelayStatus struct {
	RelayID            string            `json:"relay_id"`
	PublicURL          string            `json:"public_url"`
	Directory          string            `json:"directory"`
	State              string            `json:"state"`
	Drained            bool              `json:"drained"`
	DrainedByDirectory bool              `json:"drained_by_directory"`
	Versions           map[string]uint64 `json:"versions"`
	Blobs              int               `json:"blobs"`
	DiskUsed           int64             `json:"disk_used"`
	Quota              int64             `json:"quota"`
	BytesServed        int64             `json:"bytes_served"`
	// BytesFetched counts verified bytes downloaded since the relay started.
	BytesFetched int64    `json:"bytes_fetched"`
	Problems     []string `json:"problems,omitempty"`
}

// Admin API paths (bearer token).
const (
	PathAdmin    = "/api/v1/admin/"
	PathExpunge  = "/api/v1/admin/expunge"
	PathExpunges = "/api/v1/admin/expunges"
)

// AdminRelayPath returns the admin path acting on relay id (drain, undrain).
func AdminRelayPath(id, action string) string { return PathAdmin + "relays/" + id + "/" + action }

// ExpungeRequest withdraws an artifact.
type ExpungeRequest struct {
	Catalog string `json:"catalog"`
	Path    string `json:"path"`
	Reason  string `json:"reason"`
}

// Expunge is a withdrawn artifact and which relays confirmed deleting it.
type Expunge struct {
	ID      int64          `json:"id"`
	Catalog string         `json:"catalog"`
	Paths   []string       `json:"paths"` // every path of the catalog with the withdrawn bytes
	SHA256  catalog.Digest `json:"sha256"`
	Reason  string         `json:"reason"`
	Created time.Time      `json:"created"`
	Version uint64         `json:"version"` // the catalog version without it
	Relays  []ExpungeAck   `json:"relays"`
}

// ExpungeAck is one relay's confirmation of an expunge.
type ExpungeAck struct {
	RelayID   string    `json:"relay_id"`
	Confirmed bool      `json:"confirmed"`
	Detail    string    `json:"detail,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// DrainRequest drains a relay from the directory's side.
type DrainRequest struct {
	Reason string `json:"reason"`
}

// RescanRequest asks the directory to publish a catalog's folder again:
// only Paths when given (added, changed or deleted files; O(len(Paths))),
// else the whole folder.
type RescanRequest struct {
	Paths []string `json:"paths,omitempty"`
}

// RescanResult reports the version a rescan made (the same version when
// nothing changed).
type RescanResult struct {
	Catalog string `json:"catalog"`
	Version uint64 `json:"version"`
	Added   int    `json:"added"`
	Changed int    `json:"changed"`
	Removed int    `json:"removed"`
}

// RescanPath returns the admin path that rescans catalog name.
func RescanPath(name string) string { return PathAdmin + "catalogs/" + name + "/rescan" }
