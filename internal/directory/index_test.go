package directory

import (
	"fmt"
	"strings"
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

func TestLaggingRelayLeavesRotation(t *testing.T) {
	f := newFixture(t, map[string]string{"a.txt": "alpha"})
	f.publish()
	f.write("b.txt", "bravo")
	f.publish() // version 2
	s := f.srv
	rs := &relayState{row: relayRow{ID: "rlag"}, selfTested: true}
	s.ix.mu.Lock()
	s.ix.addRelayLocked(rs)
	c := s.ix.catalogs["demo"]
	c.relayVersion[rs.slot] = 1
	now := c.updated.Add(s.cfg.LagLimit / 2)
	if lag := s.lagLocked(rs, now); lag != "" {
		t.Errorf("relay one version behind for half the limit called lagging: %s", lag)
	}
	now = c.updated.Add(s.cfg.LagLimit + time.Second)
	if lag := s.lagLocked(rs, now); !strings.Contains(lag, "lagging: catalog demo is at version 2") {
		t.Errorf("lag past the limit = %q", lag)
	}
	// A relay that just passed its self-test is syncing, not lagging.
	rs.selfTestAt = now
	if lag := s.lagLocked(rs, now.Add(time.Minute)); lag != "" {
		t.Errorf("relay in its first sync called lagging: %s", lag)
	}
	c.relayVersion[rs.slot] = 2
	if lag := s.lagLocked(rs, now.Add(time.Hour)); lag != "" {
		t.Errorf("caught-up relay called lagging: %s", lag)
	}
	s.ix.mu.Unlock()
}
