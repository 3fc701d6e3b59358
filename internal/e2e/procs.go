package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/childproc"
)

// Build compiles the odi binary into dir and returns its path.
func Build(dir string) (string, error) { return childproc.Build(context.Background(), dir) }

// proc is one odi process.
type proc struct {
	t    *testing.T
	bin  string
	args []string
	cmd  *exec.Cmd
	url  string
	addr string
	logs *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs the process and waits for it to report its address.
func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	found := childproc.WatchLog(stderr, func(l string) { fmt.Fprintln(p.logs, l) }, p.done)
	select {
	case u := <-found:
		p.url = u
		p.addr = u[len("http://"):]
	case <-p.done:
		p.cmd.Wait()
		p.t.Fatalf("%v exited before listening:\n%s", p.args, p.logs)
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("%v did not report its address:\n%s", p.args, p.logs)
	}
}

// kill stops the process with SIGKILL.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	<-p.done
	p.cmd = nil
}

// stop asks the process to stop (SIGTERM) and waits, killing it if it
// does not stop within five seconds.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	childproc.Stop(p.cmd, p.done, 5*time.Second)
	p.cmd = nil
}

// procs is a network of odi processes.
type procs struct {
	t      *testing.T
	dir    *proc
	relays []*proc
	admins []string // each relay's admin listener address
	data   []string
	cat    string
	admin  string // the directory's admin token
}

// StartProcs runs a network as separate odi processes built from bin.
func StartProcs(t *testing.T, bin string, opts Options) (Network, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	catDir, files := writeCatalog(t, root, opts)
	var tok [12]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	n := &procs{t: t, cat: catDir, admin: token + "-admin-token"}
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		for _, r := range n.relays {
			r.stop()
		}
		n.dir.stop()
		if t.Failed() {
			t.Logf("process logs:\n%s", logs)
		}
	})
	listen := opts.DirectoryListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	n.dir = &proc{t: t, bin: bin, logs: logs, args: append([]string{
		"directory", "--listen", listen, "--data", filepath.Join(root, "directory"),
		"--catalog", "demo=" + catDir, "--enroll-token", token, "--admin-token", n.admin,
		"--heartbeat", "1s", "--probe-interval", "1s",
	}, opts.DirectoryArgs...)}
	n.dir.start()
	// Restarts come back on the same address.
	n.dir.args[2] = n.dir.addr
	quota := opts.Quota
	if quota == 0 {
		quota = 1 << 30
	}
	for i := 0; i < opts.Relays; i++ {
		data := filepath.Join(root, fmt.Sprintf("relay%d", i+1))
		admin := freeAddr(t)
		r := &proc{t: t, bin: bin, logs: logs, args: append([]string{
			"relay", "--listen", opts.relayListen(i), "--data", data, "--directory", n.dir.url,
			"--enroll-token", token, "--quota", quota.String(), "--admin", admin,
		}, opts.relayArgs(i)...)}
		r.start()
		r.args[2] = r.addr
		n.admins = append(n.admins, admin)
		n.relays = append(n.relays, r)
		n.data = append(n.data, data)
	}
	return n, files
}

func (n *procs) DirectoryURL() string   { return n.dir.url }
func (n *procs) RelayCount() int        { return len(n.relays) }
func (n *procs) RelayURL(i int) string  { return n.relays[i].url }
func (n *procs) RelayData(i int) string { return n.data[i] }
func (n *procs) KillRelay(i int)        { n.relays[i].kill() }
func (n *procs) StartRelay(i int)       { n.relays[i].start() }
func (n *procs) CatalogDir() string     { return n.cat }
func (n *procs) AdminToken() string     { return n.admin }

func (n *procs) DrainRelay(i int, drain bool) {
	action := "undrain"
	if drain {
		action = "drain"
	}
	if code, out := RunCommand(n.dir.bin, "relay", action, "--admin", n.admins[i]); code != 0 {
		n.t.Fatalf("odi relay %s: %d %s", action, code, out)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (n *procs) RestartDirectory() {
	n.dir.kill()
	waitPortFree(n.dir.addr)
	n.dir.start()
}

func (n *procs) Rescan() {
	if err := n.dir.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		n.t.Fatal(err)
	}
}

// waitPortFree waits briefly until addr can be listened on again.
func waitPortFree(addr string) {
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RunCommand runs bin with args and returns its exit code and output.
func RunCommand(bin string, args ...string) (int, string) {
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return -1, err.Error()
	}
	return code, out.String()
}
