package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/httpapi"
)

// A relay that does not answer at the URL it enrolled with (here: the key
// holder is not the server at that URL) never enters the rotation, gets
// nothing assigned, and its status says why.
func TestImposterFailsSelfTest(t *testing.T) {
	n, _ := Start(t, Options{Relays: 1, SampleSize: 10})
	waitReady(t, n, 1)
	// Someone else's server, at the URL the imposter claims.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not a relay", http.StatusNotFound)
	}))
	defer other.Close()
	pub, priv, _ := ed25519.GenerateKey(nil)
	id := auth.RelayID(pub)
	c := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).WithRelay(id, priv, time.Now)
	ctx := context.Background()
	tok := n.(*inproc).net.Token
	if _, err := c.Enroll(ctx, httpapi.EnrollRequest{Token: tok, PublicURL: other.URL, PublicKey: pub, Quota: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	var hb httpapi.HeartbeatResponse
	WaitFor(t, 10*time.Second, "self-test verdict", func() string {
		var err error
		if hb, err = c.Heartbeat(ctx, httpapi.HeartbeatRequest{RelayState: httpapi.RelayState{Seq: time.Now().UnixNano(), State: httpapi.StateReady}}); err != nil {
			return err.Error()
		}
		if !strings.Contains(hb.Reason, "self-test failed") {
			return "reason: " + hb.Reason
		}
		return ""
	})
	if hb.InRotation || len(hb.Assignments) != 0 {
		t.Fatalf("imposter in rotation %v with %d assignments", hb.InRotation, len(hb.Assignments))
	}
	for _, r := range Status(t, n).Relays {
		if r.ID == id && (r.InRotation || !strings.Contains(r.Reason, "self-test failed")) {
			t.Fatalf("status of the imposter: %+v", r)
		}
	}
}

func TestDrainFromEitherSide(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 2, Files: map[string][]byte{
			"big.iso":   bytes.Repeat([]byte("iso "), 4<<20), // 16 MiB
			"small.txt": []byte("small"),
		}})
		waitReady(t, n, 1)
		target := n.RelayURL(0)
		relayStatus := func() httpapi.RelayInfo {
			for _, r := range Status(t, n).Relays {
				if r.PublicURL == target {
					return r
				}
			}
			t.Fatal("relay missing")
			return httpapi.RelayInfo{}
		}
		// A transfer in flight from the relay when it is drained finishes.
		resp, err := http.Get(target + "/demo/big.iso")
		if err != nil {
			t.Fatal(err)
		}
		n.DrainRelay(0, true)
		WaitFor(t, 5*time.Second, "drained relay out of rotation", func() string {
			if r := relayStatus(); r.InRotation || !strings.Contains(r.Reason, "drained by the relay's operator") {
				return "status: " + r.Reason
			}
			return ""
		})
		var got bytes.Buffer
		if _, err := got.ReadFrom(resp.Body); err != nil || !bytes.Equal(got.Bytes(), files["big.iso"]) {
			t.Fatalf("transfer in flight during the drain: %v, %d bytes", err, got.Len())
		}
		resp.Body.Close()
		for i := 0; i < 20; i++ {
			if _, host, err := Download(n, "small.txt"); err != nil || "http://"+host == target {
				t.Fatalf("download %d while drained: %v, served by %s", i, err, host)
			}
		}
		n.DrainRelay(0, false)
		WaitFor(t, 5*time.Second, "undrained relay back", func() string {
			if r := relayStatus(); !r.InRotation {
				return r.Reason
			}
			return ""
		})

		// From the directory's side.
		c := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).WithAdminToken(n.AdminToken())
		id := relayStatus().ID
		if _, err := c.DrainRelay(context.Background(), id, true, "maintenance window"); err != nil {
			t.Fatal(err)
		}
		if r := relayStatus(); r.InRotation || !strings.Contains(r.Reason, "maintenance window") {
			t.Fatalf("after directory drain: %+v", r)
		}
		if _, err := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).WithAdminToken("wrong-token-wrong-token").DrainRelay(context.Background(), id, false, ""); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("undrain with a wrong token: %v", err)
		}
		if _, err := c.DrainRelay(context.Background(), id, false, ""); err != nil {
			t.Fatal(err)
		}
		waitReady(t, n, 1)
	})
}

func TestExpungeWithdrawsEverywhere(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		bad := []byte("vulnerable release bytes")
		n, _ := start(t, Options{Relays: 2, Files: map[string][]byte{
			"pkg/evil-1.0.tar.gz": bad,
			"mirror/evil-1.0.tgz": bad, // the same bytes under another name
			"pkg/good-1.0.tar.gz": []byte("good"),
		}})
		waitReady(t, n, 1)
		code, out := RunCommand(odiBin, "expunge", "--directory", n.DirectoryURL(), "--token", n.AdminToken(),
			"--reason", "CVE-2026-0001", "--wait", "15s", "demo", "pkg/evil-1.0.tar.gz")
		if code != 0 {
			t.Fatalf("odi expunge: %d\n%s", code, out)
		}
		if !strings.Contains(out, "2 of 2 relays confirmed") || !strings.Contains(out, "mirror/evil-1.0.tgz") {
			t.Errorf("odi expunge output:\n%s", out)
		}
		for _, p := range []string{"pkg/evil-1.0.tar.gz", "mirror/evil-1.0.tgz"} {
			resp, err := http.Get(n.DirectoryURL() + "/r/demo/" + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusGone {
				t.Errorf("%s after expunge = %d, want 410", p, resp.StatusCode)
			}
		}
		for i := 0; i < n.RelayCount(); i++ {
			if _, err := os.Stat(BlobPath(n.RelayData(i), bad)); !os.IsNotExist(err) {
				t.Errorf("relay %d still holds the expunged blob (%v)", i, err)
			}
		}
		// A rescan finds the file still in the folder and leaves it out.
		n.Rescan()
		time.Sleep(500 * time.Millisecond)
		if resp, _ := http.Get(n.DirectoryURL() + "/r/demo/pkg/evil-1.0.tar.gz"); resp.StatusCode != http.StatusGone {
			t.Errorf("after rescan the expunged file answers %d", resp.StatusCode)
		}
		// A fixed release under the same name is published normally.
		os.WriteFile(n.CatalogDir()+"/pkg/evil-1.0.tar.gz", []byte("fixed bytes"), 0o644)
		n.Rescan()
		WaitFor(t, 10*time.Second, "fixed file published", func() string {
			got, _, err := Download(n, "pkg/evil-1.0.tar.gz")
			if err != nil || string(got) != "fixed bytes" {
				return "not yet"
			}
			return ""
		})
		if got, _, err := Download(n, "pkg/good-1.0.tar.gz"); err != nil || string(got) != "good" {
			t.Fatalf("unrelated artifact: %v", err)
		}
	})
}

// A relay joining a network where another relay already holds the catalog
// fetches from that peer, verifying the bytes the same way.
func TestNewRelayFetchesFromPeers(t *testing.T) {
	n, files := Start(t, Options{Relays: 1, SampleSize: 40})
	waitReady(t, n, 1)
	in := n.(*inproc)
	if _, err := in.net.AddRelay(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n, 1)
	first := in.net.Relays[0].Server.Status()
	if first.BytesServed == 0 {
		t.Fatal("the second relay fetched nothing from the first")
	}
	var total int64
	for _, b := range files {
		total += int64(len(b))
	}
	t.Logf("the first relay served %d of the catalog's %d bytes to the newcomer", first.BytesServed, total)
	for p, want := range files {
		got, _, err := Download(n, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", p, err)
		}
	}
}
