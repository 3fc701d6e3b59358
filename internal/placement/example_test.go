package placement_test

import (
	"fmt"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/placement"
)

// The directory plans, then sends each relay its part as runs of shards.
func ExamplePlan() {
	opam := placement.Catalog{Name: "opam", Bits: 3, Sizes: []int64{40, 10, 30, 20, 50, 10, 20, 30}}
	relays := []placement.Relay{
		{ID: "uni-a", Capacity: 200},
		{ID: "isp-b", Capacity: 200},
		{ID: "hobby-c", Capacity: 60},
	}
	p, err := placement.Plan(placement.Input{Catalogs: []placement.Catalog{opam}, Relays: relays, R: 2})
	if err != nil {
		panic(err)
	}
	for _, r := range relays {
		a := p.For(r.ID)
		l := p.Load[r.ID]
		fmt.Printf("%-7s shards %v, %d of %d bytes\n", r.ID, a.Assigned["opam"].Runs, l.Assigned, l.Capacity)
	}
	fmt.Println("short:", len(p.Short))
	// Output:
	// uni-a   shards [{1 5} {6 8}], 160 of 200 bytes
	// isp-b   shards [{0 1} {2 8}], 200 of 200 bytes
	// hobby-c shards [{0 2} {5 6}], 60 of 60 bytes
	// short: 0
}

// A relay asks, for each request, whether the path is in its assignment.
func ExampleContains() {
	mine := placement.Ranges{Bits: 2, Runs: []placement.Range{{Start: 0, End: 2}}} // the first half
	for _, path := range []string{"packages/lwt/lwt.5.9.0/opam", "packages/dune/dune.3.17.0/opam"} {
		h := catalog.PathHash(path)
		fmt.Printf("%s: shard %d, mine %v\n", path, placement.ShardOf(h, 2), placement.Contains(mine, h))
	}
	// Output:
	// packages/lwt/lwt.5.9.0/opam: shard 1, mine true
	// packages/dune/dune.3.17.0/opam: shard 3, mine false
}

// The directory counts downloads as it redirects them and asks, when it
// plans, which artifacts are hot.
func ExampleCounter() {
	c := placement.NewCounter(time.Hour, 100_000)
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 600 {
		now := start.Add(time.Duration(i) * time.Second)
		c.Add("freebsd-14/ISO-IMAGES/14.3/FreeBSD-14.3-RELEASE-amd64-disc1.iso", now)
		if i%10 == 0 {
			c.Add("opam/packages/dune/dune.3.17.0/opam", now)
		}
	}
	// An hour later the counts have halved, give or take the ten minutes
	// they took.
	for _, kc := range c.Hot(20, 10, start.Add(time.Hour)) {
		fmt.Printf("%.0f %s\n", kc.Count, kc.Key)
	}
	// Output:
	// 318 freebsd-14/ISO-IMAGES/14.3/FreeBSD-14.3-RELEASE-amd64-disc1.iso
	// 32 opam/packages/dune/dune.3.17.0/opam
}
