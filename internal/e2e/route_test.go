package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opendistribution/odi/internal/geo/geotest"
	"github.com/opendistribution/odi/internal/httpapi"
)

// geoDBs writes the loopback world of geotest: 127.0.1.0/24 is Berlin
// (AS64500), 127.0.5.0/24 Munich (AS64500 too), 127.0.4.0/24 Paris,
// 127.0.2.0/24 New York, ::1 Amsterdam.
func geoDBs(t *testing.T) []string {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, geotest.LoopbackCities())
	geotest.WriteASN(t, asn, geotest.LoopbackASNs())
	return []string{"--geoip-db", city, "--asn-db", asn}
}

// redirectOf asks the directory for p as client c and returns where it
// sends the download.
func redirectOf(t *testing.T, c *http.Client, n Network, method, p string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.DirectoryURL()+"/r/demo/"+escape(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func mirrorListOf(t *testing.T, c *http.Client, n Network, p string) httpapi.MirrorList {
	t.Helper()
	req, _ := http.NewRequest("GET", n.DirectoryURL()+"/r/demo/"+escape(p)+"?mirrorlist", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list httpapi.MirrorList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("mirror list: %d: %v", resp.StatusCode, err)
	}
	return list
}

func anyPath(files map[string][]byte) string {
	for p := range files {
		return p
	}
	return ""
}

func TestDownloadsGoToTheNearestRelay(t *testing.T) {
	hosts := []string{"127.0.1.1", "127.0.4.1", "127.0.2.1"} // Berlin, Paris, New York
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{
			// Every relay holds everything: where a download goes is then
			// routing's choice alone.
			Relays: 3, SampleSize: 20, DirectoryArgs: append(geoDBs(t), "--replicas", "3"),
			RelayHost: func(i int) string { return hosts[i] },
		})
		waitReady(t, n, 1)
		for _, tc := range []struct {
			client string
			want   int
		}{
			{"127.0.5.9", 0}, // Munich: Berlin is the same network
			{"127.0.1.9", 0}, // Berlin
			{"127.0.4.9", 1}, // Paris
			{"127.0.2.9", 2}, // New York
		} {
			c := ClientFrom(tc.client)
			for p, want := range files {
				code, loc := redirectOf(t, c, n, "GET", p)
				if code != http.StatusFound || !strings.HasPrefix(loc, n.RelayURL(tc.want)+"/") {
					t.Fatalf("client %s, %s: %d to %s, want the relay at %s", tc.client, p, code, loc, n.RelayURL(tc.want))
				}
				got, host, err := DownloadWith(Follow(c), n, p)
				if err != nil || !bytes.Equal(got, want) || "http://"+host != n.RelayURL(tc.want) {
					t.Fatalf("client %s, %s: %v, served by %s", tc.client, p, err, host)
				}
			}
			// A HEAD is routed the same way.
			if code, loc := redirectOf(t, c, n, "HEAD", anyPath(files)); code != http.StatusFound || !strings.HasPrefix(loc, n.RelayURL(tc.want)+"/") {
				t.Errorf("client %s: HEAD went to %d %s", tc.client, code, loc)
			}
		}
		list := mirrorListOf(t, ClientFrom("127.0.5.9"), n, anyPath(files))
		var got []string
		for _, m := range list.Mirrors {
			got = append(got, fmt.Sprintf("%d %s %s", m.Rank, strings.TrimPrefix(m.URL, "http://")[:9], m.Reason))
		}
		want := []string{"1 127.0.1.1 same network AS64500", "2 127.0.4.1 same continent EU", "3 127.0.2.1 6,489 km"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("mirror list for a Munich client:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if list.Client.Location.Country != "DE" || list.Client.Location.ASN != 64500 {
			t.Errorf("mirror list client = %+v", list.Client)
		}
	})
}

func ipv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("IPv6 loopback (::1) is not available here, so IPv6 routing cannot be tested end to end: %v", err)
	}
	ln.Close()
}

func TestIPv6ClientsGoOnlyToRelaysReachableOverIPv6(t *testing.T) {
	ipv6Loopback(t)
	hosts := []string{"127.0.0.1", "::1"}
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{
			Relays: 2, SampleSize: 10, DirectoryListen: "[::]:0", DirectoryArgs: geoDBs(t),
			RelayHost: func(i int) string { return hosts[i] },
		})
		waitReady(t, n, 1)
		for _, tc := range []struct {
			client string
			want   int
		}{
			{"::1", 1},
			{"127.0.0.1", 0},
		} {
			c := ClientFrom(tc.client)
			for p, want := range files {
				for range 5 {
					code, loc := redirectOf(t, c, n, "GET", p)
					if code != http.StatusFound || !strings.HasPrefix(loc, n.RelayURL(tc.want)+"/") {
						t.Fatalf("client %s: %d to %s, want only the relay at %s", tc.client, code, loc, n.RelayURL(tc.want))
					}
				}
				got, _, err := DownloadWith(Follow(c), n, p)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("client %s, %s: %v", tc.client, p, err)
				}
			}
		}
		list := mirrorListOf(t, ClientFrom("::1"), n, anyPath(files))
		if len(list.Mirrors) != 2 || list.Mirrors[0].Rank != 1 || list.Mirrors[1].Rank != 0 || list.Mirrors[1].Why != "not reachable over IPv6" {
			t.Errorf("mirror list for an IPv6 client: %+v", list.Mirrors)
		}
	})
}

func TestHTTPSRequestIsNeverSentToAPlainHTTPRelay(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{
			Relays: 1, SampleSize: 5, DirectoryArgs: []string{"--trusted-proxy", "127.0.0.1"},
		})
		waitReady(t, n, 1)
		p := anyPath(files)
		proxy := ClientFrom("127.0.0.1")
		// Through the trusted proxy, an https request: the only relay speaks
		// plain HTTP, so the directory serves the bytes itself.
		code, loc := redirectOf(t, proxy, n, "GET", p, "X-Forwarded-Proto", "https", "X-Forwarded-For", "198.51.100.7")
		if code != http.StatusOK || loc != "" {
			t.Errorf("https request: %d %s, want the directory to serve it", code, loc)
		}
		// The same over plain HTTP goes to the relay.
		if code, loc := redirectOf(t, proxy, n, "GET", p, "X-Forwarded-For", "198.51.100.7"); code != http.StatusFound || !strings.HasPrefix(loc, n.RelayURL(0)) {
			t.Errorf("http request: %d %s, want the relay", code, loc)
		}
		// Anyone else claiming https through the header is not believed.
		if code, loc := redirectOf(t, ClientFrom("127.0.0.2"), n, "GET", p, "X-Forwarded-Proto", "https"); code != http.StatusFound || !strings.HasPrefix(loc, n.RelayURL(0)) {
			t.Errorf("spoofed X-Forwarded-Proto from an untrusted peer: %d %s", code, loc)
		}
	})
}

func TestMirrorListPage(t *testing.T) {
	n, files := Start(t, Options{Relays: 2, SampleSize: 5})
	waitReady(t, n, 1)
	p := anyPath(files)
	resp, err := http.Get(n.DirectoryURL() + "/r/demo/" + escape(p) + "?mirrorlist")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("mirror list page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for i := 0; i < n.RelayCount(); i++ {
		if !bytes.Contains(body, []byte(n.RelayURL(i)+"/demo/")) {
			t.Errorf("page does not link relay %s", n.RelayURL(i))
		}
	}
}
