package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opendistribution/odi/internal/childproc"
)

// CPUs says where the benchmark's processes run. Servers under test and
// their baselines each get the Server core to themselves, one at a time;
// the load generator and everything else (the odibench process, fake
// relays, an in-process directory) stay on Load. Pinning keeps the load
// generator from stealing the server's CPU unevenly between two runs.
type CPUs struct {
	Server string // a taskset list, e.g. "1"; empty: no pinning
	Load   string // e.g. "0"
	// LoadThreads is how many threads the load generator may use.
	LoadThreads int
}

// Pinned reports whether the benchmark pins processes to cores.
func (c CPUs) Pinned() bool { return c.Server != "" }

// command returns an exec.Cmd running name pinned to cpus (when pinning).
func command(ctx context.Context, cpus string, name string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "taskset", append([]string{"-c", cpus, name}, args...)...)
}

// BuildODI compiles the odi binary into dir.
func BuildODI(ctx context.Context, dir string) (string, error) {
	bin, err := childproc.Build(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return bin, nil
}

// proc is a child process under test.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	logs    *tail
	done    chan struct{}
}

// tail keeps the last lines a process wrote, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 40 {
		t.lines = t.lines[len(t.lines)-40:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// startProc starts cmd and returns once it has logged "msg=listening
// url=..." on standard error, with that URL.
func startProc(cmd *exec.Cmd) (*proc, string, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, logs: &tail{}, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("bench: start %s: %w", cmd.Args[0], err)
	}
	found := childproc.WatchLog(stderr, p.logs.add, p.done)
	select {
	case u := <-found:
		return p, u, nil
	case <-p.done:
		cmd.Wait()
		return nil, "", fmt.Errorf("bench: %v exited before listening:\n%s", cmd.Args, p.logs)
	case <-time.After(5 * time.Minute):
		p.stop()
		return nil, "", fmt.Errorf("bench: %v did not report its address:\n%s", cmd.Args, p.logs)
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s) and waits.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	childproc.Stop(p.cmd, p.done, 10*time.Second)
}

// cpuTime returns the user+system CPU time the process and its children
// (nginx's worker) have used so far, from /proc (Linux); zero elsewhere.
func (p *proc) cpuTime() time.Duration { return cpuTimeTree(p.cmd.Process.Pid, 0) }

func cpuTimeTree(pid, depth int) time.Duration {
	t := cpuTimeOf(pid)
	if depth > 3 {
		return t
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		var child int
		if _, err := fmt.Sscan(f, &child); err == nil {
			t += cpuTimeTree(child, depth+1)
		}
	}
	return t
}

func cpuTimeOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	// USER_HZ is 100 on every Linux the benchmark runs on.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ensureTools checks that the external programs the benchmark needs are
// installed, installing the Debian packages when running as root with
// apt-get, and says exactly what is missing otherwise.
func ensureTools(ctx context.Context, progs map[string]string) error {
	return ensureToolsOnce(ctx, progs, true)
}

func ensureToolsOnce(ctx context.Context, progs map[string]string, install bool) error {
	var missing []string
	pkgs := map[string]bool{}
	for prog, pkg := range progs {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, prog)
			pkgs[pkg] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var list []string
	for p := range pkgs {
		list = append(list, p)
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 && install {
		fmt.Fprintf(os.Stderr, "installing %s with apt-get\n", strings.Join(list, " "))
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, list...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err == nil {
			return ensureToolsOnce(ctx, progs, false)
		}
	}
	return fmt.Errorf("bench: %s not installed; install the Debian packages: apt-get install %s",
		strings.Join(missing, ", "), strings.Join(list, " "))
}

// profiler fetches CPU profiles from a server's admin listener while it is
// under load, when the benchmark is asked to keep them (-profile DIR).
type profiler struct {
	dir   string // "" when not profiling
	admin string // host:port of the server's admin listener
}

// adminArgs returns the flags giving the server an admin listener.
func (p *profiler) adminArgs() ([]string, error) {
	if p.dir == "" {
		return nil, nil
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	p.admin = addr
	return []string{"--admin", addr}, nil
}

// during profiles the server for d while fn runs, into dir/name.pprof.
func (p *profiler) during(ctx context.Context, name string, d time.Duration, fn func() error) error {
	if p.dir == "" || p.admin == "" {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds())-1)
		u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, secs)
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	err := fn()
	if perr := <-done; perr != nil {
		logf("profile %s: %v", name, perr)
	}
	return err
}
