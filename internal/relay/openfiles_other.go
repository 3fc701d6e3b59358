//go:build !unix

package relay

import "io/fs"

func linkCount(fi fs.FileInfo) (uint64, bool) { return 0, false }
