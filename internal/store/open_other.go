//go:build !unix

package store

import "os"

func openRead(path string) (*os.File, error) { return os.Open(path) }

func createTemp(dir, prefix string) (*os.File, error) {
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
