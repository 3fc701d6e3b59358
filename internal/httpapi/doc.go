// Package httpapi is the wire between ODI's daemons and their clients: the
// JSON types of the directory's API, the typed client relays and the CLI use,
// and the one place where an error becomes an HTTP status and a short public
// message.
//
// The protocol itself is described endpoint by endpoint in doc/protocol.md.
package httpapi
