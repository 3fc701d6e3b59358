//go:build darwin || freebsd || netbsd

package store

import (
	"io/fs"
	"syscall"
)

func sysStamp(fi fs.FileInfo, s *Stamp) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Inode = int64(st.Ino)
		s.Ctime = int64(st.Ctimespec.Sec)*1e9 + int64(st.Ctimespec.Nsec)
	}
}
