package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "1234": 1234, "500MB": 500e6, "10GiB": 10 << 30, "1.5TB": 1.5e12,
		"64 KiB": 64 << 10, "1kB": 1000, "7B": 7,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-5GB", "10XB", "GiB", "1e400", "NaN"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if s := Size(10 << 30).String(); s != "10GiB" {
		t.Errorf("String = %s", s)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100Mbit": 12_500_000, "1Gbit": 125_000_000, "12.5MB": 12_500_000, "1MiB/s": 1 << 20, "0": 0,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-1Mbit", "Mbit"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func load(t *testing.T, s Settings, args ...string) error {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := Load("odi test", fs, s, args)
	return err
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "odi.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlagsOverrideFile(t *testing.T) {
	srcA, srcB := t.TempDir(), t.TempDir()
	path := writeFile(t, `
listen = "127.0.0.1:9000"
data = "/var/lib/odi"
enroll_tokens = ["file-token-123"]
heartbeat = "5s"
[[catalog]]
name = "fromfile"
path = "`+srcA+`"
`)
	d := DefaultDirectory()
	if err := load(t, &d, "--config", path, "--listen=127.0.0.1:9100", "--catalog", "flag1="+srcB, "--catalog", "flag2="+srcA); err != nil {
		t.Fatal(err)
	}
	want := DefaultDirectory()
	want.Listen = "127.0.0.1:9100"
	want.Data = "/var/lib/odi"
	want.EnrollTokens = []string{"file-token-123"}
	want.Heartbeat = 5 * time.Second
	want.Catalogs = []CatalogSource{{Name: "flag1", Path: srcB}, {Name: "flag2", Path: srcA}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestRelayFileAndFlags(t *testing.T) {
	path := writeFile(t, `
data = "/srv/relay"
directory = "http://dir.example:8080"
enroll_token = "secret-token"
public_url = "http://relay.example"
quota = "500MB"
bandwidth = "100Mbit"
catalogs = ["opam", "freebsd-14"]
`)
	r := DefaultRelay()
	if err := load(t, &r, "--config", path, "--quota", "2GiB"); err != nil {
		t.Fatal(err)
	}
	if r.Quota != 2<<30 || r.Bandwidth != 12_500_000 || !cmp.Equal(r.Catalogs, []string{"opam", "freebsd-14"}) {
		t.Errorf("got quota %d bandwidth %d catalogs %v", r.Quota, r.Bandwidth, r.Catalogs)
	}
}

func TestBadConfigListsEveryProblem(t *testing.T) {
	path := writeFile(t, `
listen = "nonsense"
quota = "lots"
colour = "blue"
[log]
level = "loud"
`)
	r := DefaultRelay()
	err := load(t, &r, "--config", path, "--bogus", "--directory", "ftp://x", "--sync-concurrency", "0")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load = %v, want *Error", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"unknown flag --bogus",
		`unknown key "colour"`,
		"lots",
		`listen: "nonsense" is not host:port`,
		"directory: \"ftp://x\" must start with http:// or https://",
		"data: a folder is required",
		"enroll-token: required",
		"sync-concurrency: 0",
		`log-level: "loud"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if len(ce.Problems) < 9 {
		t.Errorf("got %d problems, want at least 9:\n%s", len(ce.Problems), msg)
	}
}

func TestBadFlagValuesAreAllReported(t *testing.T) {
	r := DefaultRelay()
	err := load(t, &r, "--quota", "many", "--bandwidth", "fast", "--scrub-interval", "soon", "--data")
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	for _, want := range []string{"--quota", "--bandwidth", "--scrub-interval", "flag --data needs a value"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestConfigFileSyntaxErrorNamesLine(t *testing.T) {
	path := writeFile(t, "listen = \"a\"\ndata = \n")
	d := DefaultDirectory()
	err := load(t, &d, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Load = %v, want a message naming line 2", err)
	}
}

func TestMissingConfigFile(t *testing.T) {
	d := DefaultDirectory()
	err := load(t, &d, "--config", "/nonexistent/odi.toml", "--data", "/x")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load = %v", err)
	}
}

func TestDirectoryCatalogProblems(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	d := DefaultDirectory()
	err := load(t, &d, "--data", "/x", "--catalog", "Bad Name=/tmp", "--catalog", "ok=/does/not/exist",
		"--catalog", "ok="+file, "--catalog", "noequals", "--enroll-token", "short")
	msg := err.Error()
	for _, want := range []string{"catalog name", "given twice", "no such file", "is not a folder", `"noequals" is not NAME=PATH`, "at least 8"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestHelp(t *testing.T) {
	d := DefaultDirectory()
	if err := load(t, &d, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load(-h) = %v", err)
	}
}

func TestRelayNeedsPublicURLWhenListenHasNoHost(t *testing.T) {
	r := DefaultRelay()
	err := load(t, &r, "--data", "/x", "--directory", "http://d", "--enroll-token", "tok", "--listen", ":8081")
	if err == nil || !strings.Contains(err.Error(), "public-url: required") {
		t.Fatalf("Load = %v", err)
	}
	r = DefaultRelay()
	if err := load(t, &r, "--data", "/x", "--directory", "http://d", "--enroll-token", "tok", "--listen", "127.0.0.1:0"); err != nil {
		t.Fatalf("Load = %v", err)
	}
}

// Zero turns audits off; any other value must be a real interval.
func TestAuditIntervalZeroIsOffOtherwisePositive(t *testing.T) {
	d := DefaultDirectory()
	if err := load(t, &d, "--data", t.TempDir(), "--enroll-token", "long enough token", "--audit-interval", "0"); err != nil {
		t.Fatalf("--audit-interval 0: %v", err)
	}
	if d.AuditInterval != 0 {
		t.Errorf("AuditInterval = %s, want 0", d.AuditInterval)
	}
	for _, bad := range []string{"-5s", "1ns"} {
		d := DefaultDirectory()
		err := load(t, &d, "--data", t.TempDir(), "--enroll-token", "long enough token", "--audit-interval", bad)
		if err == nil || !strings.Contains(err.Error(), "audit-interval") {
			t.Errorf("--audit-interval %s: %v, want a problem naming audit-interval", bad, err)
		}
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 1536 << 30: "1.5 TiB"} {
		if got := Human(n); got != want {
			t.Errorf("Human(%d) = %q, want %q", n, got, want)
		}
	}
}
