//go:build unix

package fsync

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// CreateTemp creates a new file in dir, named prefix and a random number,
// with permissions perm (less the umask) from the start (the descriptor
// returned can write whatever perm says), for writing a file that is
// renamed into place once complete. Compared with os.CreateTemp it saves a chmod when the final
// permissions are not 0600, and the calls that register a descriptor with
// the network poller, which refuses regular files anyway: a directory
// writes hundreds of such files per catalog update.
func CreateTemp(dir, prefix string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		path := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, uint32(perm.Perm()))
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

// Create creates or truncates the file at path with permissions perm
// (less the umask), with a blocking descriptor as CreateTemp's. It is for
// files written under a name nothing refers to yet (a new version of a
// signed bin), which need no temporary name and rename.
func Create(path string, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, uint32(perm.Perm()))
		switch err {
		case nil:
			return os.NewFile(uintptr(fd), path), nil
		case syscall.EINTR:
			continue
		default:
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
}
