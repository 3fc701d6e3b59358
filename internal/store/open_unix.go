//go:build unix

package store

import (
	"io/fs"
	"os"
	"syscall"
)

// openRead opens a blob file for reading. os.Open would also try to add
// the file to the network poller, which refuses regular files, and switch
// it to non-blocking mode and back: four wasted system calls per open,
// which show when a relay serves small files. os.NewFile on a blocking
// descriptor skips them.
func openRead(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
