package tufrepo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
)

func ExampleBinBits() {
	for _, n := range []int{1_000, 100_000, 1_000_000, 10_000_000} {
		fmt.Printf("%d artifacts: %d bins\n", n, 1<<tufrepo.BinBits(n))
	}
	// Output:
	// 1000 artifacts: 16 bins
	// 100000 artifacts: 2048 bins
	// 1000000 artifacts: 16384 bins
	// 10000000 artifacts: 65536 bins
}

func ExampleHashedTargetName() {
	d := catalog.DigestOf([]byte("hello\n"))
	name := tufrepo.HashedTargetName("releases/14.0/base.txz", d)
	fmt.Println(name)
	p, _, ok := tufrepo.ParseHashedTargetName(name)
	fmt.Println(p, ok)
	// Output:
	// releases/14.0/5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.base.txz
	// releases/14.0/base.txz true
}

// Example_directory shows how a home directory drives a catalog's
// repository: Apply on every catalog version, Renew on a timer, Prune now
// and then. In production the Repository holds only the online keys.
func Example_directory() {
	dir, _ := os.MkdirTemp("", "tuf")
	defer os.RemoveAll(dir)
	keys, _ := tufrepo.GenerateKeySet(3, 2, 1, 1) // demo: every key on the directory
	repo, err := tufrepo.Init(dir, keys.InitOptions(0), tufrepo.Options{Signers: keys.All()}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	// A new catalog version changed one artifact.
	content := []byte("ocaml 5.2.0 sources")
	commit, err := repo.Apply([]catalog.Change{{
		Path: "ocaml-5.2.0.tar.gz", Size: int64(len(content)), Digest: catalog.DigestOf(content), Version: 2,
	}}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(commit.Written[len(commit.Written)-1])
	// On a timer (every few minutes):
	if _, err := repo.Renew(time.Now()); err != nil {
		log.Print(err) // e.g. tell the operator; the previous state stays served
	}
	// Now and then:
	_, _ = repo.Prune(time.Now(), time.Hour)
	// Output: timestamp.json
}

// Example_relay shows how a relay verifies an artifact it downloads.
func Example_relay() {
	root, _ := os.ReadFile("/etc/odi/catalogs/opam.root.json") // pinned at enrollment
	client, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: "http://directory.example/c/opam/tuf/",
		TrustedRoot: root,
		CacheDir:    "/var/lib/odi/tuf/opam",
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := client.Refresh(ctx); err != nil { // on every catalog notice
		log.Print(err)
	}
	info, err := client.Target(ctx, "ocaml-5.2.0.tar.gz")
	if errors.Is(err, tufrepo.ErrNotFound) {
		return // not in the signed catalog: never serve it
	} else if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Get("http://directory.example/r/opam/ocaml-5.2.0.tar.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	// Stream into a temporary file through SHA-256, reading at most one
	// byte more than signed, then check before renaming into place.
	h := newHasher()
	n, _ := io.Copy(h, io.LimitReader(resp.Body, info.Length+1))
	if err := info.Check(n, h.digest()); err != nil {
		log.Print(err) // *tufrepo.MismatchError: discard, try another source
	}
}
