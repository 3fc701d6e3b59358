package catalog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on artifact paths. They are generous for real archives (npm scoped
// packages, Maven coordinates, deep BSD release trees) and keep a hostile
// path from costing more than a few kilobytes anywhere.
const (
	MaxPathLen    = 4096
	MaxSegmentLen = 255
)

// ErrBadPath is matched (errors.Is) by every *PathError.
var ErrBadPath = errors.New("bad artifact path")

// PathError says why a path or catalog name was refused.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string { return "bad path " + quoteShort(e.Path) + ": " + e.Reason }

// Is makes errors.Is(err, ErrBadPath) true.
func (e *PathError) Is(target error) bool { return target == ErrBadPath }

func quoteShort(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

// ValidatePath reports whether p is an acceptable artifact path: relative,
// clean (no empty, "." or ".." segments), valid UTF-8, without NUL, other
// control characters or backslashes, within the length limits. Every path
// ODI stores, signs or serves has passed it.
func ValidatePath(p string) error {
	bad := func(reason string) error { return &PathError{Path: p, Reason: reason} }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad("longer than 4096 bytes")
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case p[0] == '/':
		return bad("absolute")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == 0:
			return bad("contains NUL")
		case c == '\\':
			return bad("contains a backslash")
		case c < 0x20 || c == 0x7f:
			return bad("contains a control character")
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == "." || seg == "..":
			return bad("contains a dot segment")
		case len(seg) > MaxSegmentLen:
			return bad("segment longer than 255 bytes")
		}
	}
	return nil
}

// ParseRequestPath turns the escaped path of a request (the part after the
// catalog name, without a leading slash) into an artifact path. Each segment
// is unescaped on its own, so an encoded slash ("%2F") cannot smuggle in a
// separator and an encoded dot-dot ("%2e%2e") is refused like a literal one.
func ParseRequestPath(escaped string) (string, error) {
	if escaped == "" {
		return "", &PathError{Path: escaped, Reason: "empty"}
	}
	if len(escaped) > 3*MaxPathLen {
		return "", &PathError{Path: escaped, Reason: "longer than 4096 bytes"}
	}
	if strings.IndexByte(escaped, '%') < 0 {
		// Nothing to unescape, as in most requests: no copy.
		if err := ValidatePath(escaped); err != nil {
			return "", err
		}
		return escaped, nil
	}
	var b strings.Builder
	b.Grow(len(escaped))
	first := true
	for seg := range strings.SplitSeq(escaped, "/") {
		if !first {
			b.WriteByte('/')
		}
		first = false
		if !strings.Contains(seg, "%") {
			b.WriteString(seg)
			continue
		}
		if strings.Contains(seg, "%2f") || strings.Contains(seg, "%2F") {
			return "", &PathError{Path: escaped, Reason: "contains an encoded slash"}
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			return "", &PathError{Path: escaped, Reason: "bad percent-encoding"}
		}
		b.WriteString(u)
	}
	p := b.String()
	if err := ValidatePath(p); err != nil {
		return "", err
	}
	return p, nil
}

// EscapePath escapes an artifact path for use in a URL, segment by segment.
// Characters real archives use in names ('@', '+', '!', '~', '=') stay as
// they are; spaces and '%' are percent-encoded.
func EscapePath(p string) string {
	if !needsEscape(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 16)
	first := true
	for seg := range strings.SplitSeq(p, "/") {
		if !first {
			b.WriteByte('/')
		}
		first = false
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
}

// needsEscape reports whether url.PathEscape would change any segment of p.
// Most artifact paths are plain, and this keeps the redirect path free of
// allocations for them.
func needsEscape(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '/':
		case c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == '=' || c == ':' || c == '@':
		default:
			return true
		}
	}
	return false
}

// PathHash places a path on the ring that shards a catalog: the first eight
// bytes of SHA-256(path), big-endian. Hashed-bin delegation in the signed
// metadata uses the same leading bits, so a shard is a run of whole bins.
func PathHash(p string) uint64 {
	h := sha256.Sum256([]byte(p))
	return binary.BigEndian.Uint64(h[:8])
}

// MaxNameLen bounds catalog names.
const MaxNameLen = 64

// ValidateName reports whether name is an acceptable catalog name: 1 to 64
// characters from [a-z0-9._-], starting with a letter or digit. Names appear
// in URLs and file names unescaped, so the alphabet is small on purpose.
func ValidateName(name string) error {
	bad := func(reason string) error { return &PathError{Path: name, Reason: "catalog name " + reason} }
	if name == "" {
		return bad("is empty")
	}
	if len(name) > MaxNameLen {
		return bad("is longer than 64 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if i == 0 && !alnum {
			return bad("must start with a lowercase letter or digit")
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return bad("may only contain a-z, 0-9, '-', '_' and '.'")
		}
	}
	return nil
}
