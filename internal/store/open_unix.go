//go:build unix

package store

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
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

// createTemp creates a new file in dir for writing a blob into, named
// prefix and a random number, read-only from the start (the descriptor
// returned can still write): that saves a chmod before the file is
// renamed into place, and, like openRead, the poller's system calls.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		path := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o444)
		switch err {
		case nil:
			return os.NewFile(uintptr(fd), path), nil
		case syscall.EEXIST, syscall.EINTR:
			continue
		default:
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
	return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, prefix+"*"), Err: fs.ErrExist}
}
