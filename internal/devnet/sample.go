package devnet

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// samplePaths look like the archives ODI is for, including the characters
// real archives use in names.
var samplePaths = []string{
	"ocaml/ocaml-4.14.2.tar.gz",
	"ocaml/ocaml-5.2.0.tar.gz",
	"npm/@babel/core/-/core-7.24.0.tgz",
	"npm/@types/node/-/node-20.11.5.tgz",
	"debian/pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb",
	"freebsd/14.0-RELEASE/amd64/base.txz",
	"python/packages/requests-2.31.0-py3-none-any.whl",
	"maven/org/apache/commons/commons-lang3/3.14.0/commons-lang3-3.14.0.jar",
	"docs/Release Notes 1.0.txt",
	"misc/weird!name~1.zip",
	"misc/100% done.txt",
}

// WriteSample writes a sample catalog of n files (at least the named
// examples) under dir and returns their paths. Contents are deterministic,
// 1 KiB to 64 KiB each.
func WriteSample(dir string, n int) ([]string, error) {
	paths := append([]string(nil), samplePaths...)
	for i := 0; len(paths) < n; i++ {
		paths = append(paths, fmt.Sprintf("pkg/%02d/libexample-%d.%d.%d.tar.gz", i%16, i/100, i/10%10, i%10))
	}
	for i, p := range paths {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		b := make([]byte, 1024+rng.IntN(63*1024))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		abs := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(abs, b, 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}
