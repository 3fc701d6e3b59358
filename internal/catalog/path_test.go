package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestValidatePathAcceptsRealArchiveNames(t *testing.T) {
	for _, p := range []string{
		"ocaml-4.14.1.tar.gz",
		"@babel/core/-/core-7.24.0.tgz",
		"pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb",
		"releases/amd64/14.0-RELEASE/base.txz",
		"org/apache/maven/maven-core/3.9.6/maven-core-3.9.6.jar",
		"weird!name~1.zip",
		"with space/and 100% more.txt",
		"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p.bin",
		"ünïcödé/файл.txt",
		".hidden/.well-known",
	} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
}

func TestValidatePathRefusesTraversalAndJunk(t *testing.T) {
	for name, p := range map[string]string{
		"empty":            "",
		"absolute":         "/etc/passwd",
		"dotdot":           "a/../b",
		"leading dotdot":   "../secret",
		"dot":              "a/./b",
		"trailing slash":   "a/b/",
		"double slash":     "a//b",
		"nul":              "a\x00b",
		"backslash":        `a\..\b`,
		"control":          "a\nb",
		"del":              "a\x7fb",
		"bad utf8":         "a\xffb",
		"long segment":     strings.Repeat("x", 256),
		"long path":        strings.Repeat("abcdefg/", 600),
		"only dotdot":      "..",
		"trailing dot seg": "a/.",
	} {
		err := ValidatePath(p)
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("%s: ValidatePath(%q) = %v, want ErrBadPath", name, p, err)
		}
	}
}

func TestParseRequestPath(t *testing.T) {
	for _, tc := range []struct {
		escaped, want string
	}{
		{"a/b.tar.gz", "a/b.tar.gz"},
		{"with%20space.txt", "with space.txt"},
		{"%40scope/pkg", "@scope/pkg"},
		{"@scope/pkg+1.0~rc!.tgz", "@scope/pkg+1.0~rc!.tgz"},
		{"100%25.txt", "100%.txt"},
		{"a+b", "a+b"}, // '+' is not a space in a path
	} {
		got, err := ParseRequestPath(tc.escaped)
		if err != nil || got != tc.want {
			t.Errorf("ParseRequestPath(%q) = %q, %v; want %q", tc.escaped, got, err, tc.want)
		}
	}
}

func TestParseRequestPathRefusesEncodedTraversal(t *testing.T) {
	for name, escaped := range map[string]string{
		"encoded slash":          "a%2Fb",
		"encoded slash lower":    "a%2fb",
		"encoded dotdot":         "a/%2e%2e/b",
		"encoded dotdot upper":   "%2E%2E/etc/passwd",
		"mixed dotdot":           ".%2e/x",
		"encoded nul":            "a%00b",
		"encoded backslash":      "a%5c..%5cb",
		"literal dotdot":         "a/../b",
		"bad escape":             "a%zzb",
		"truncated escape":       "a%2",
		"empty":                  "",
		"absolute after catalog": "/etc/passwd",
	} {
		if _, err := ParseRequestPath(escaped); !errors.Is(err, ErrBadPath) {
			t.Errorf("%s: ParseRequestPath(%q) = %v, want ErrBadPath", name, escaped, err)
		}
	}
}

func TestEscapePathRoundTrips(t *testing.T) {
	for _, p := range []string{
		"plain/file.tar.gz",
		"with space/x y.txt",
		"@scope/pkg+1.0~rc!.tgz",
		"100%.txt",
		"q?uery#frag.txt",
		"semi;colon,comma.txt",
		"ünïcödé/файл.txt",
	} {
		esc := EscapePath(p)
		got, err := ParseRequestPath(esc)
		if err != nil || got != p {
			t.Errorf("ParseRequestPath(EscapePath(%q)=%q) = %q, %v", p, esc, got, err)
		}
		if strings.ContainsAny(esc, " ?#%") && !strings.Contains(esc, "%") {
			t.Errorf("EscapePath(%q) = %q left a reserved character", p, esc)
		}
	}
	if got := EscapePath("@scope/a+b"); got != "@scope/a+b" {
		t.Errorf("EscapePath changed a plain path: %q", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, n := range []string{"opam", "freebsd-14", "a", "x.y_z-1", "0day"} {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "Opam", "-x", ".hidden", "a/b", "a b", "a%b", strings.Repeat("a", 65), "..", "_x"} {
		if err := ValidateName(n); !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidateName(%q) = %v, want error", n, err)
		}
	}
}

func FuzzParseRequestPath(f *testing.F) {
	for _, s := range []string{"a/b", "%2e%2e/x", "a%2fb", "with%20space", "@x/y+z", "a//b", "%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		p, err := ParseRequestPath(escaped)
		if err != nil {
			return
		}
		if err := ValidatePath(p); err != nil {
			t.Fatalf("ParseRequestPath(%q) = %q, which ValidatePath refuses: %v", escaped, p, err)
		}
		for seg := range strings.SplitSeq(p, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("ParseRequestPath(%q) = %q has segment %q", escaped, p, seg)
			}
		}
		if back, err := ParseRequestPath(EscapePath(p)); err != nil || back != p {
			t.Fatalf("EscapePath(%q) does not round-trip: %q, %v", p, back, err)
		}
	})
}
