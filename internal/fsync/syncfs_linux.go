package fsync

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system holding f (syncfs(2): data, metadata and
// the journal, then the device's cache; write-back errors are reported
// since Linux 5.8).
func syncFS(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}
