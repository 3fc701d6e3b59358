// Package catalog defines what ODI distributes: catalogs, artifacts, their
// digests and the rules their paths obey. It does no I/O.
//
// A catalog is the unit of mirroring and signing. It has a name (see
// ValidateName), a monotonically increasing version, and a set of artifacts.
// An artifact is a file inside the catalog, identified by a clean relative
// path (see ValidatePath), with a size, a SHA-256 digest and a modification
// time. Blobs are stored by digest, so one file published under two paths or
// in two catalogs is stored once.
//
// Every change to a catalog makes a new version. The artifact records carry
// the version that last set them, and deletions leave a tombstone carrying the
// version that removed the path; "what changed since version N" is therefore
// the artifacts and tombstones whose version is greater than N. That is the
// change log relays and peers catch up from.
package catalog
