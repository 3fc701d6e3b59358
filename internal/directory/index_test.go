package directory

import (
	"fmt"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

func TestIndexHoldingsSurviveManyReports(t *testing.T) {
	ix := newIndex()
	ix.addCatalog("demo", 1)
	var puts []catalog.Artifact
	var ds []catalog.Digest
	for i := 0; i < 500; i++ {
		d := catalog.DigestOf([]byte(fmt.Sprint(i)))
		puts = append(puts, catalog.Artifact{Path: fmt.Sprintf("f%d", i), Size: 1, Digest: d, Version: 1})
		ds = append(ds, d)
	}
	ix.apply("demo", 1, time.Now(), puts, nil)
	r1 := &relayState{row: relayRow{ID: "r1"}, inRotation: true}
	r2 := &relayState{row: relayRow{ID: "r2"}, inRotation: true}
	ix.mu.Lock()
	ix.addRelayLocked(r1)
	ix.addRelayLocked(r2)
	ix.mu.Unlock()
	for _, r := range []*relayState{r1, r2} {
		ix.mu.Lock()
		ix.forgetHoldingsLocked(r.slot)
		ix.mu.Unlock()
		for i := 0; i < len(ds); i += 37 {
			ix.mu.Lock()
			ix.holdLocked(r.slot, ds[i:min(i+37, len(ds))], nil)
			ix.mu.Unlock()
		}
	}
	c := ix.catalog("demo")
	c.relayVersion[0], c.relayVersion[1] = 1, 1
	for _, a := range puts {
		e, _, _ := ix.lookup("demo", a.Path)
		if got := ix.route(c, &e, &client{}, "", nil); len(got) != 2 {
			t.Fatalf("%s: %d candidates, want 2", a.Path, len(got))
		}
	}
}
