package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	d := DigestOf([]byte("hello"))
	got, err := ParseDigest(d.String())
	if err != nil || got != d {
		t.Fatalf("ParseDigest(%s) = %v, %v", d, got, err)
	}
	if d.Base64() != "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" {
		t.Errorf("Base64 = %s", d.Base64())
	}
	if d.ETag() != `"`+d.String()+`"` {
		t.Errorf("ETag = %s", d.ETag())
	}
	for _, bad := range []string{"", "abc", strings.ToUpper(d.String()), d.String()[:63] + "g", d.String() + "0"} {
		if _, err := ParseDigest(bad); !errors.Is(err, ErrBadDigest) {
			t.Errorf("ParseDigest(%q) = %v, want ErrBadDigest", bad, err)
		}
	}
}

func TestDigestText(t *testing.T) {
	d := DigestOf([]byte("x"))
	b, _ := d.MarshalText()
	var e Digest
	if err := e.UnmarshalText(b); err != nil || e != d {
		t.Fatalf("round trip: %v %v", e, err)
	}
	if err := e.UnmarshalText([]byte("zz")); err == nil {
		t.Fatal("UnmarshalText accepted junk")
	}
}
