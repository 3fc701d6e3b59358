package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// odiBin is the binary built once for the process-mode scenarios.
var odiBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "odi-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	odiBin, err = Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// starter starts a network in one of the two modes.
type starter func(t *testing.T, opts Options) (Network, map[string][]byte)

// bothModes runs scenario in this process and as separate processes.
func bothModes(t *testing.T, scenario func(t *testing.T, start starter)) {
	t.Run("inprocess", func(t *testing.T) {
		t.Parallel()
		scenario(t, Start)
	})
	t.Run("binary", func(t *testing.T) {
		t.Parallel()
		scenario(t, func(t *testing.T, opts Options) (Network, map[string][]byte) {
			return StartProcs(t, odiBin, opts)
		})
	})
}

func waitReady(t *testing.T, n Network, minVersion uint64, up ...int) time.Duration {
	t.Helper()
	return WaitFor(t, 30*time.Second, "network ready", func() string { return Ready(t, n, minVersion, up...) })
}

func TestDownloadEveryArtifactThroughRelays(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 3, SampleSize: 500})
		took := waitReady(t, n, 1)
		t.Logf("3 relays ready on %d artifacts in %s", len(files), took)
		hosts := map[string]int{}
		example := map[string]string{}
		for p, want := range files {
			got, host, err := Download(n, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: got %d bytes that differ from the %d published", p, len(got), len(want))
			}
			hosts[host]++
			example[host] = p
		}
		relays := map[string]bool{}
		for i := 0; i < n.RelayCount(); i++ {
			relays[strings.TrimPrefix(n.RelayURL(i), "http://")] = true
		}
		for h, c := range hosts {
			if !relays[h] {
				t.Errorf("%d downloads were served by %s, not a relay (e.g. %s)", c, h, example[h])
			}
		}
		// Weighted-random choice among equal relays: each serves about its
		// part of the copies (placement gives relays shares of different
		// sizes). 60% of that is over six standard deviations below.
		held := map[string]int{}
		copies := 0
		for _, r := range Status(t, n).Relays {
			held[strings.TrimPrefix(r.PublicURL, "http://")] = r.Held
			copies += r.Held
		}
		if copies < len(files) {
			t.Fatalf("relays report %d copies of %d artifacts", copies, len(files))
		}
		for h := range relays {
			expect := float64(len(files)) * float64(held[h]) / float64(copies)
			if float64(hosts[h]) < 0.6*expect {
				t.Errorf("relay %s served %d of %d downloads, holding %d of %d copies; traffic does not spread: %v", h, hosts[h], len(files), held[h], copies, hosts)
			}
		}
	})
}

func TestKilledRelayLeavesRotationAndDownloadsContinue(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 3, SampleSize: 80})
		waitReady(t, n, 1)
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var downloads, retried atomic.Int64
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; !stop.Load() && i < 20000; i++ {
					p := paths[i%len(paths)]
					got, _, attempts, err := DownloadRetrying(n, p)
					if err == nil && !bytes.Equal(got, files[p]) {
						err = fmt.Errorf("%s: wrong bytes", p)
					}
					if err != nil {
						errs <- err
						return
					}
					downloads.Add(1)
					if attempts > 1 {
						retried.Add(1)
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		dead := n.RelayURL(1)
		killed := time.Now()
		n.KillRelay(1)
		out := WaitFor(t, 10*time.Second, "killed relay out of rotation", func() string {
			for _, r := range Status(t, n).Relays {
				if r.PublicURL == dead {
					if r.InRotation {
						return "still in rotation"
					}
					if r.Reason == "" {
						return "out of rotation without a reason"
					}
					return ""
				}
			}
			return "relay missing from status"
		})
		t.Logf("relay out of rotation %s after kill -9", out)
		// No redirect may point at it any more.
		for i := 0; i < 50; i++ {
			resp, err := http.DefaultTransport.RoundTrip(mustRequest(n.DirectoryURL() + "/r/demo/" + escape(paths[i%len(paths)])))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, dead+"/") {
				t.Fatalf("redirect to the dead relay %s after it left rotation", loc)
			}
		}
		time.Sleep(500 * time.Millisecond)
		n.StartRelay(1)
		back := WaitFor(t, 15*time.Second, "restarted relay back in rotation", func() string { return Ready(t, n, 1) })
		t.Logf("restarted relay back in rotation after %s", back)
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d downloads, %d needed a retry (cut by the kill); out of rotation %s after kill", downloads.Load(), retried.Load(), time.Since(killed).Round(time.Millisecond))
		if downloads.Load() < 100 {
			t.Errorf("only %d downloads ran during the scenario", downloads.Load())
		}
	})
}

func mustRequest(u string) *http.Request {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func TestCorruptedBlobIsNeverServed(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 1, SampleSize: 20})
		waitReady(t, n, 1)
		var p string
		for q := range files {
			if p == "" || q < p {
				p = q
			}
		}
		want := files[p]
		blob := BlobPath(n.RelayData(0), want)
		if err := os.Chmod(blob, 0o644); err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(want)
		bad[len(bad)/2] ^= 0xff
		if err := os.WriteFile(blob, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		// Straight at the relay: it must not send the damaged bytes.
		resp, err := http.DefaultTransport.RoundTrip(mustRequest(n.RelayURL(0) + "/demo/" + escape(p)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if bytes.Equal(body, bad) {
				t.Fatal("relay served the corrupted blob")
			}
			if !bytes.Equal(body, want) {
				t.Fatal("relay served bytes that are neither the artifact nor the corruption")
			}
		} else if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), n.DirectoryURL()+"/r/demo/") {
			t.Fatalf("relay answered %d %s, want a redirect back to the directory", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Through the directory, always the right bytes.
		for i := 0; i < 20; i++ {
			got, _, err := Download(n, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("download %d gave wrong bytes", i)
			}
		}
		// The relay fetches a good copy again and serves it.
		WaitFor(t, 15*time.Second, "relay holds a good copy again", func() string {
			b, err := os.ReadFile(blob)
			if err != nil || !bytes.Equal(b, want) {
				return "blob not fetched again yet"
			}
			return Ready(t, n, 1)
		})
		got, host, err := Download(n, p)
		if err != nil || !bytes.Equal(got, want) || "http://"+host != n.RelayURL(0) {
			t.Fatalf("after repair: err %v, right bytes %v, served by %s", err, bytes.Equal(got, want), host)
		}
	})
}

func TestDirectoryRestartKeepsRelaysAndCatalogs(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 2, SampleSize: 30})
		waitReady(t, n, 1)
		before := Status(t, n)
		n.RestartDirectory()
		took := waitReady(t, n, 1)
		t.Logf("relays back in rotation %s after the directory restarted", took)
		after := Status(t, n)
		if len(after.Catalogs) != 1 || after.Catalogs[0].Version != before.Catalogs[0].Version || after.Catalogs[0].Artifacts != len(files) {
			t.Fatalf("catalogs after restart = %+v, before %+v", after.Catalogs, before.Catalogs)
		}
		if len(after.Relays) != len(before.Relays) {
			t.Fatalf("%d relays after restart, %d before", len(after.Relays), len(before.Relays))
		}
		for i := range after.Relays {
			if after.Relays[i].ID != before.Relays[i].ID {
				t.Errorf("relay %d is %s after restart, %s before", i, after.Relays[i].ID, before.Relays[i].ID)
			}
		}
		for p, want := range files {
			got, host, err := Download(n, p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s after restart: %v", p, err)
			}
			if "http://"+host == n.DirectoryURL() {
				t.Fatalf("%s served by the directory, not a relay, after restart", p)
			}
		}
	})
}

func TestCatalogUpdateReachesRelays(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 2, Files: map[string][]byte{
			"keep/a.txt":     []byte("unchanged a"),
			"keep/b.txt":     []byte("unchanged b"),
			"change.txt":     []byte("version one"),
			"gone/drop.txt":  []byte("to be deleted"),
			"with space.txt": []byte("spaced"),
		}})
		waitReady(t, n, 1)
		type stamp struct {
			ino   uint64
			mtime time.Time
		}
		stampOf := func(path string) stamp {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			return stamp{inode(fi), fi.ModTime()}
		}
		unchanged := map[string]stamp{}
		for i := 0; i < n.RelayCount(); i++ {
			for _, p := range []string{"keep/a.txt", "keep/b.txt", "with space.txt"} {
				bp := BlobPath(n.RelayData(i), files[p])
				unchanged[bp] = stampOf(bp)
			}
		}
		oldChange := files["change.txt"]
		newChange := []byte("version two, longer")
		write := func(p string, b []byte) {
			if err := os.WriteFile(filepath.Join(n.CatalogDir(), filepath.FromSlash(p)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("change.txt", newChange)
		write("added.txt", []byte("new file"))
		os.Remove(filepath.Join(n.CatalogDir(), "gone", "drop.txt"))
		n.Rescan()

		// From the moment the directory has the new version, no download
		// of change.txt may give the old bytes, whoever serves it.
		WaitFor(t, 10*time.Second, "directory at version 2", func() string {
			if st := Status(t, n); st.Catalogs[0].Version < 2 {
				return "still version 1"
			}
			return ""
		})
		deadline := time.Now().Add(20 * time.Second)
		checks := 0
		for time.Now().Before(deadline) {
			got, _, err := Download(n, "change.txt")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, oldChange) {
				t.Fatal("old bytes of change.txt served after the directory published version 2")
			}
			if !bytes.Equal(got, newChange) {
				t.Fatalf("change.txt = %q", got)
			}
			checks++
			if checks > 20 && Ready(t, n, 2) == "" {
				break
			}
		}
		waitReady(t, n, 2)
		got, host, err := Download(n, "change.txt")
		if err != nil || !bytes.Equal(got, newChange) || "http://"+host == n.DirectoryURL() {
			t.Fatalf("change.txt after update: %v, served by %s", err, host)
		}
		if got, _, err := Download(n, "added.txt"); err != nil || string(got) != "new file" {
			t.Fatalf("added.txt: %q %v", got, err)
		}
		if _, _, err := Download(n, "gone/drop.txt"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("deleted path: %v, want 404", err)
		}
		for bp, before := range unchanged {
			if now := stampOf(bp); now != before {
				t.Errorf("unchanged blob %s was written again (%v → %v)", bp, before, now)
			}
		}
		for i := 0; i < n.RelayCount(); i++ {
			if _, err := os.Stat(BlobPath(n.RelayData(i), oldChange)); !os.IsNotExist(err) {
				t.Errorf("relay %d still holds the old blob of change.txt: %v", i, err)
			}
		}
	})
}

func TestMalformedPathsRefused(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, _ := start(t, Options{Relays: 1, Files: map[string][]byte{"a/b.txt": []byte("x")}})
		waitReady(t, n, 1)
		for _, base := range []string{n.DirectoryURL() + "/r", n.RelayURL(0)} {
			for name, p := range map[string]string{
				"dotdot":         "/demo/a/../a/b.txt",
				"encoded dotdot": "/demo/a/%2e%2e/a/b.txt",
				"encoded slash":  "/demo/a%2Fb.txt",
				"nul":            "/demo/a/b%00.txt",
				"backslash":      "/demo/a%5Cb.txt",
				"absolute":       "/demo//etc/passwd",
			} {
				req := mustRequest(base)
				req.URL.Opaque = req.URL.Path + p
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: GET %s%s = %d, want 400", name, base, p, resp.StatusCode)
				}
			}
		}
	})
}

func TestBadFlagsAndConfigListEveryProblem(t *testing.T) {
	code, out := RunCommand(odiBin, "relay", "--quota", "lots", "--bogus", "--listen", "nonsense", "--directory", "ftp://x")
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{"unknown flag --bogus", "--quota", "listen", "directory", "data: a folder is required", "enroll-token"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") > 12 || strings.Contains(out, "goroutine") {
		t.Errorf("output is not one clear message:\n%s", out)
	}
	cfg := filepath.Join(t.TempDir(), "dir.toml")
	os.WriteFile(cfg, []byte("listen = 5\nheartbeat = \"soon\"\ncolour = \"blue\"\n"), 0o644)
	code, out = RunCommand(odiBin, "directory", "--config", cfg)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{"listen", "heartbeat", `unknown key "colour"`, "data: a folder is required"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	code, out = RunCommand(odiBin, "frobnicate")
	if code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %s", code, out)
	}
}

func TestRestartedRelayReusesWhatItHolds(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 1, SampleSize: 30})
		waitReady(t, n, 1)
		before := map[string]time.Time{}
		for _, b := range files {
			p := BlobPath(n.RelayData(0), b)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			before[p] = fi.ModTime()
		}
		n.KillRelay(0)
		// Until the directory notices the relay is gone, its status still
		// shows the old process ready: wait for that before the restart,
		// or the readiness check below passes on the stale view.
		WaitFor(t, 10*time.Second, "stopped relay out of rotation", func() string {
			if Status(t, n).Relays[0].InRotation {
				return "still in rotation"
			}
			return ""
		})
		n.StartRelay(0)
		waitReady(t, n, 1)
		for p, mt := range before {
			fi, err := os.Stat(p)
			if err != nil || !fi.ModTime().Equal(mt) {
				t.Fatalf("blob %s fetched again after restart (%v)", p, err)
			}
		}
		for p, want := range files {
			got, host, err := Download(n, p)
			if err != nil || !bytes.Equal(got, want) || "http://"+host != n.RelayURL(0) {
				t.Fatalf("%s after relay restart: %v, served by %s", p, err, host)
			}
		}
	})
}

func TestDevCommandServesAndStopsOnInterrupt(t *testing.T) {
	cmd := exec.Command(odiBin, "dev", "--addr", "127.0.0.1:0", "--relays", "2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	curl := make(chan string, 1)
	var banner lockedBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&banner, sc.Text())
			if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "curl" && f[1] == "-L" {
				curl <- f[3]
			}
		}
	}()
	var u string
	select {
	case u = <-curl:
	case <-time.After(10 * time.Second):
		t.Fatalf("no curl command printed within 10 s:\n%s\n%s", banner.String(), stderr.String())
	}
	t.Logf("odi dev printed its curl command %s after start", time.Since(start).Round(time.Millisecond))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 || resp.Request.URL.Path == "" || strings.HasPrefix(resp.Request.URL.String(), u) {
		t.Fatalf("curl command URL %s: %d, %d bytes, final URL %s (want served by a relay)", u, resp.StatusCode, len(body), resp.Request.URL)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("odi dev exited with %v after Ctrl-C:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("odi dev did not stop within 15 s of Ctrl-C")
	}
}

// A relay tells the directory it is ready as soon as it is, not at its
// next heartbeat: with heartbeats every 30 seconds, a catalog update is
// still reported done within seconds.
func TestRelayReportsReadyWithoutWaitingForItsHeartbeat(t *testing.T) {
	n, _ := Start(t, Options{Relays: 1, SampleSize: 20, DirectoryArgs: []string{"--heartbeat", "30s"}})
	WaitFor(t, 8*time.Second, "relay ready at version 1", func() string { return Ready(t, n, 1) })
	if err := os.WriteFile(filepath.Join(n.CatalogDir(), "added.txt"), []byte("new file"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Rescan()
	took := WaitFor(t, 8*time.Second, "relay ready at version 2", func() string { return Ready(t, n, 2) })
	t.Logf("relay reported version 2 ready %s after the rescan", took)
}
