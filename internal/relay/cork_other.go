//go:build !linux

package relay

import "net"

// setCork does nothing where TCP_CORK does not exist.
func setCork(c net.Conn, on bool) {}
