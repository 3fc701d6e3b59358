package store

import "io/fs"

// Stamp is what the file system says about a blob file: size, modification
// time and, where the platform has them, inode number and status-change
// time. Writing to a file changes its ctime, and no ordinary tool can set a
// ctime back, so a relay that records the Stamp of a blob it has just
// verified can tell with one fstat whether the bytes may have changed since,
// and verify them again before serving. Stamps are comparable with ==.
type Stamp struct {
	Size, ModTime, Inode, Ctime int64
}

// StampOf returns fi's Stamp.
func StampOf(fi fs.FileInfo) Stamp {
	s := Stamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	sysStamp(fi, &s)
	return s
}
