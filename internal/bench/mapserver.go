package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ServeMap is the redirect benchmark's baseline: a bare net/http server
// answering 302 from a Go map of request path → Location, read from file
// (one "path<TAB>location" per line). It runs as its own process, pinned
// like the directory, and logs "msg=listening url=..." like odi does.
func ServeMap(ctx context.Context, listen, file string, stderr io.Writer) error {
	start := time.Now()
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	locations := make(map[string]string)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p, loc, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			f.Close()
			return fmt.Errorf("bench: %s: line without a tab", file)
		}
		locations[p] = loc
	}
	f.Close()
	if err := sc.Err(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc, ok := locations[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stderr, "level=INFO msg=listening url=http://%s entries=%d took=%s\n", ln.Addr(), len(locations), time.Since(start).Round(time.Millisecond))
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// ServeBytes is the serving benchmark's floor: a bare net/http server
// answering every GET with size bytes from memory, with the relay's
// headers but no file, no lookup and no check. It shows how much of the
// gap to nginx is net/http's own cost per request.
func ServeBytes(ctx context.Context, listen string, size int64, stderr io.Writer) error {
	body := make([]byte, size)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	length := strconv.FormatInt(size, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", length)
		h.Set("Etag", `"0000000000000000000000000000000000000000000000000000000000000000"`)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body)
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stderr, "level=INFO msg=listening url=http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
