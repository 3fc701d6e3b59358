// Package childproc runs odi daemons as child processes, for the benchmark
// suite and the end-to-end tests: build the binary, learn the address a
// daemon logs when it listens, stop it.
package childproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// Build compiles the odi binary into dir and returns its path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "odi")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/opendistribution/odi/cmd/odi")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build odi: %w", err)
	}
	return bin, nil
}

var listeningRE = regexp.MustCompile(`msg=listening .*\burl=(http://\S+)`)

// WatchLog reads a daemon's log from r until it ends, handing each line to
// line, and sends on the returned channel the URL of its first "msg=
// listening url=..." line. done is closed when r ends.
func WatchLog(r io.Reader, line func(string), done chan<- struct{}) <-chan string {
	found := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			line(l)
			if m := listeningRE.FindStringSubmatch(l); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, r)
	}()
	return found
}

// Stop asks cmd's process to stop (SIGTERM) and waits for it, killing it
// if it is not gone after grace, then waits for done (its log read to the
// end).
func Stop(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
	<-done
}
