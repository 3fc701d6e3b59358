package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/httpapi"
)

func catalogBytes(files map[string][]byte) int64 {
	var n int64
	for _, b := range files {
		n += int64(len(b))
	}
	return n
}

// Relays with small quotas each hold a share that fits, and together they
// still serve every artifact.
func TestSharesFitQuotas(t *testing.T) {
	n, files := Start(t, Options{Relays: 3, SampleSize: 120, Quota: 2 << 20})
	waitSettled(t, n)
	total := catalogBytes(files)
	st := Status(t, n)
	var held int64
	for _, r := range st.Relays {
		if r.DiskUsed > 2<<20 {
			t.Errorf("relay %s holds %d bytes, over its 2 MiB quota", r.ID, r.DiskUsed)
		}
		held += r.DiskUsed
	}
	t.Logf("catalog %d bytes; relays hold %d in all (%.2f copies); placement short by %d bytes", total, held, float64(held)/float64(total), st.Placement.ShortBytes)
	if held < total {
		t.Errorf("relays hold %d bytes in all, less than one copy of the %d-byte catalog", held, total)
	}
	for p := range files {
		_, host, err := Download(n, p)
		if err != nil {
			t.Fatal(err)
		}
		if "http://"+host == n.DirectoryURL() {
			t.Errorf("%s served by the directory: no relay holds it", p)
		}
	}
}

// A fourth relay joining three copies only its own share, and the others
// copy nothing; one of four leaving makes the others copy exactly the
// shards it held, once each. How big the newcomer's share is depends on
// how 16 shards hash (about half the catalog at R=2); the placement
// package measures the average over many shards (TestChurnFigures).
func TestJoinAndLeaveMoveLittle(t *testing.T) {
	n, files := Start(t, Options{Relays: 3, SampleSize: 200})
	waitReady(t, n, 1)
	total := catalogBytes(files)
	in := n.(*inproc)
	fetched := func(rs []*devnet.Relay) int64 {
		var n int64
		for _, r := range rs {
			n += r.Server.Status().BytesFetched
		}
		return n
	}
	waitSettled(t, n)
	oldBefore := fetched(in.net.Relays)
	if _, err := in.net.AddRelay(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	waitExact(t, n)
	st := Status(t, n)
	newcomer := in.net.Relays[3]
	var newcomerHeld int64
	for _, r := range st.Relays {
		if r.PublicURL == newcomer.URL {
			newcomerHeld = r.DiskUsed
		}
	}
	t.Logf("4th relay joining 3 (R=2) copied %.3f of the catalog", float64(newcomerHeld)/float64(total))
	if newcomerHeld == 0 || newcomerHeld >= total {
		t.Errorf("the newcomer holds %d of %d bytes, want a part of the catalog", newcomerHeld, total)
	}
	if moved := fetched(in.net.Relays[:3]) - oldBefore; moved != 0 {
		t.Errorf("a relay joining made the others copy %d bytes, want 0", moved)
	}
	if got := newcomer.Server.Status().BytesFetched; got != newcomerHeld {
		t.Errorf("the newcomer fetched %d bytes for a share of %d", got, newcomerHeld)
	}

	// One of the four leaves for good: its shards, and only those, move.
	gone := in.net.Relays[0]
	var goneID string
	var goneHeld int64
	for _, r := range st.Relays {
		if r.PublicURL == gone.URL {
			goneID, goneHeld = r.ID, r.DiskUsed
		}
	}
	before := fetched(in.net.Relays[1:])
	c := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).WithAdminToken(n.AdminToken())
	if _, err := c.DrainRelay(context.Background(), goneID, true, "decommissioned"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 30*time.Second, "the others hold the drained relay's share", func() string {
		for _, r := range Status(t, n).Relays {
			if r.ID == goneID && r.Share > 0 {
				return "the drained relay still has a share"
			}
			if r.ID != goneID && r.DiskUsed < r.Share {
				return r.ID + " has not fetched its new share"
			}
		}
		return ""
	})
	left := fetched(in.net.Relays[1:]) - before
	t.Logf("1 of 4 relays leaving (R=2) made the others copy %.3f of the catalog", float64(left)/float64(total))
	if left != goneHeld {
		t.Errorf("a relay holding %d bytes leaving made the others copy %d bytes, want the same", goneHeld, left)
	}
}

// waitExact waits until every relay holds exactly its share: what it gave
// away is deleted.
func waitExact(t *testing.T, n Network) {
	t.Helper()
	waitSettled(t, n)
	WaitFor(t, 30*time.Second, "every relay holds exactly its share", func() string {
		for _, r := range Status(t, n).Relays {
			if r.DiskUsed != r.Share {
				return fmt.Sprintf("%s holds %d bytes for a share of %d", r.ID, r.DiskUsed, r.Share)
			}
		}
		return ""
	})
}

// waitSettled waits until placement is stable and every relay is ready.
func waitSettled(t *testing.T, n Network) {
	t.Helper()
	WaitFor(t, 30*time.Second, "placement settled", func() string {
		if why := Ready(t, n, 1); why != "" {
			return why
		}
		for _, r := range Status(t, n).Relays {
			if r.DiskUsed < r.Share {
				return r.ID + " has not fetched its share yet"
			}
			if r.DiskUsed > r.Share+r.Share/2+1 && r.Share > 0 {
				return r.ID + " still keeps shards it gave away"
			}
		}
		return ""
	})
}

// While a share moves to a new relay, the old holder keeps serving it
// until the new one holds it complete: no artifact is ever without a relay.
func TestRebalanceKeepsACopy(t *testing.T) {
	n, files := Start(t, Options{Relays: 1, SampleSize: 150, Replicas: 1})
	waitReady(t, n, 1)
	in := n.(*inproc)
	done, stop := make(chan struct{}), make(chan struct{})
	errs := make(chan string, 1)
	go func() {
		defer close(done)
		for round := 0; round < 200; round++ {
			for p := range files {
				req, _ := http.NewRequest("HEAD", n.DirectoryURL()+"/r/demo/"+escape(p), nil)
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusFound {
					select {
					case errs <- p + " had no relay during the move (directory answered " + resp.Status + ")":
					default:
					}
					return
				}
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	if _, err := in.net.AddRelay(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, n)
	close(stop)
	<-done
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	for _, r := range Status(t, n).Relays {
		if r.DiskUsed == 0 {
			t.Errorf("relay %s holds nothing after the move", r.ID)
		}
		if !strings.HasPrefix(r.PublicURL, "http://") {
			t.Errorf("bad relay URL %s", r.PublicURL)
		}
	}
}

// An artifact downloaded a lot gets more holders than the others.
func TestHotArtifactGetsMoreReplicas(t *testing.T) {
	// Two relays, so each surely gets shards of the catalog's sixteen (with
	// three and one copy, one relay in about 200 plans gets none, is
	// assigned nothing, and the network never looks settled).
	n, files := Start(t, Options{Relays: 2, SampleSize: 60, Replicas: 1, HotThreshold: 5})
	waitSettled(t, n)
	var hot string
	for p := range files {
		hot = p
		break
	}
	holders := func() int {
		count := 0
		for i := 0; i < n.RelayCount(); i++ {
			if _, err := os.Stat(BlobPath(n.RelayData(i), files[hot])); err == nil {
				count++
			}
		}
		return count
	}
	if h := holders(); h != 1 {
		t.Fatalf("%d relays hold %s before it is popular, want 1 (R=1)", h, hot)
	}
	for i := 0; i < 60; i++ {
		if _, _, err := Download(n, hot); err != nil {
			t.Fatal(err)
		}
	}
	// The directory re-plans at least every minute; a catalog event makes
	// it sooner.
	in := n.(*inproc)
	in.net.Directory.Server.KickReplan()
	WaitFor(t, 20*time.Second, "hot artifact replicated", func() string {
		if h := holders(); h < 2 {
			return "held by one relay"
		}
		return ""
	})
	t.Logf("after 60 downloads %s is held by %d relays", hot, holders())
}
