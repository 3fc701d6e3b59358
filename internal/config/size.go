package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes, written as a plain number or with a unit:
// 500MB, 10GiB, 1.5TB. Decimal units (kB, MB, GB, TB, PB) are powers of
// 1000, binary units (KiB, MiB, GiB, TiB, PiB) powers of 1024.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
	{"B", 1},
}

// ParseSize parses a Size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q (want e.g. 500MB or 10GiB)", s)
	}
	v := f * mult
	if v < 0 {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(v), nil
}

// String formats s with the largest binary unit that divides it evenly.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Human formats n bytes for people: the largest binary unit it reaches,
// one decimal ("3.4 MiB"), or "512 B".
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Set implements flag.Value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// UnmarshalText reads a Size from a TOML string.
func (s *Size) UnmarshalText(b []byte) error { return s.Set(string(b)) }

// MarshalText writes a Size as text.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rate is a transfer rate in bytes per second, written as a size per second
// (12.5MB, 1GiB) or in bits (100Mbit, 1Gbit, 10Gbit). Zero means no limit.
type Rate int64

// ParseRate parses a Rate.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Kbit", 1e3 / 8}, {"kbit", 1e3 / 8}, {"Mbit", 1e6 / 8}, {"Gbit", 1e9 / 8}, {"Tbit", 1e12 / 8}} {
		if strings.HasSuffix(t, u.suffix) {
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), 64)
			if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*u.mult >= math.MaxInt64 {
				return 0, fmt.Errorf("invalid rate %q (want e.g. 100Mbit or 12.5MB)", s)
			}
			return Rate(f * u.mult), nil
		}
	}
	n, err := ParseSize(t)
	if err != nil {
		return 0, fmt.Errorf("invalid rate %q (want e.g. 100Mbit or 12.5MB)", s)
	}
	return Rate(n), nil
}

// String formats r in Mbit/s when that is exact, else bytes per second.
func (r Rate) String() string {
	if r != 0 && int64(r)*8%1_000_000 == 0 {
		return strconv.FormatInt(int64(r)*8/1_000_000, 10) + "Mbit"
	}
	return strconv.FormatInt(int64(r), 10) + "B/s"
}

// Set implements flag.Value.
func (r *Rate) Set(v string) error {
	n, err := ParseRate(v)
	if err != nil {
		return err
	}
	*r = n
	return nil
}

// UnmarshalText reads a Rate from a TOML string.
func (r *Rate) UnmarshalText(b []byte) error { return r.Set(string(b)) }

// MarshalText writes a Rate as text.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
