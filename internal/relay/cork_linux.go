package relay

import (
	"net"
	"syscall"
)

// setCork sets TCP_CORK on c: while it is on, the kernel sends only full
// segments, so a response head goes out with the first bytes of its body
// and sendfile's pieces leave as large segments (nginx's tcp_nopush).
// Turning it off sends what is left at once.
func setCork(c net.Conn, on bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
