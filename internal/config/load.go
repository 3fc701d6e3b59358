package config

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problems collects what is wrong with a configuration.
type Problems []string

// Addf records a problem.
func (p *Problems) Addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Err returns nil when there is no problem, else an *Error listing them.
func (p Problems) Err(what string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{What: what, Problems: p}
}

// Error lists every problem found in a configuration.
type Error struct {
	What     string // "odi relay"
	Problems []string
}

func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "%s: invalid configuration: %s", e.What, e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "%s: invalid configuration, %d problems:", e.What, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

// Flag is one flag given on the command line, not yet applied.
type Flag struct{ Name, Value string }

// ParseFlags reads args against the flags defined in fs without setting
// them, so a config file can be loaded first and the flags applied over it.
// It returns the flags, the positional arguments and every problem (unknown
// flags, missing values). -h and --help are reported as flag.ErrHelp.
func ParseFlags(fs *flag.FlagSet, args []string) ([]Flag, []string, Problems, error) {
	var flags []Flag
	var rest []string
	var probs Problems
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		if name == "h" || name == "help" {
			return nil, nil, nil, flag.ErrHelp
		}
		f := fs.Lookup(name)
		if f == nil {
			probs.Addf("unknown flag --%s", name)
			continue
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 >= len(args) {
				probs.Addf("flag --%s needs a value", name)
				continue
			}
			i++
			value = args[i]
		}
		flags = append(flags, Flag{name, value})
	}
	return flags, rest, probs, nil
}

// Lookup returns the last value given for flag name.
func Lookup(flags []Flag, name string) (string, bool) {
	v, ok := "", false
	for _, f := range flags {
		if f.Name == name {
			v, ok = f.Value, true
		}
	}
	return v, ok
}

// ApplyFlags sets the flags on fs, recording each value that does not parse.
func ApplyFlags(fs *flag.FlagSet, flags []Flag) Problems {
	var probs Problems
	for _, f := range flags {
		if err := fs.Set(f.Name, f.Value); err != nil {
			// fs.Set wraps the Value's error; show only the Value's own words.
			msg := err.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "invalid") {
				msg = msg[i+2:]
			}
			probs.Addf("--%s: %s", f.Name, msg)
		}
	}
	return probs
}

// LoadFile decodes the TOML file at path into v, a pointer to a struct
// with toml tags. Each key is decoded on its own so that one bad value does
// not hide the problems after it; keys v has no place for are problems too.
func LoadFile(path string, v any) Problems {
	var probs Problems
	var top map[string]toml.Primitive
	md, err := toml.DecodeFile(path, &top)
	if err != nil {
		var pe toml.ParseError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			probs.Addf("config file %s does not exist", path)
		case errors.As(err, &pe):
			probs.Addf("config file %s: line %d: %s", path, pe.Position.Line, pe.Message)
		default:
			probs.Addf("config file %s: %v", path, err)
		}
		return probs
	}
	reported := map[string]bool{}
	decodeStruct(md, top, reflect.ValueOf(v).Elem(), "", func(key, format string, args ...any) {
		reported[key] = true
		probs.Addf("config file %s: "+format, append([]any{path}, args...)...)
	})
	// Keys inside arrays of tables ([[catalog]]) are decoded with their
	// array; whatever the struct had no place for shows up here.
	var unknown []string
	for _, k := range md.Undecoded() {
		if !reported[k.String()] && !reported[k[:1].String()] {
			unknown = append(unknown, k.String())
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		probs.Addf("config file %s: unknown key %q", path, k)
	}
	return probs
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func decodeStruct(md toml.MetaData, prims map[string]toml.Primitive, rv reflect.Value, prefix string, fail func(key, format string, args ...any)) {
	fields := map[string]int{}
	for i := 0; i < rv.NumField(); i++ {
		if tag, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("toml"), ","); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	keys := make([]string, 0, len(prims))
	for k := range prims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			fail(prefix+k, "unknown key %q", prefix+k)
			continue
		}
		f := rv.Field(i)
		if f.Kind() == reflect.Struct && !f.Addr().Type().Implements(textUnmarshaler) {
			var sub map[string]toml.Primitive
			if err := md.PrimitiveDecode(prims[k], &sub); err != nil {
				fail(prefix+k, "%s: must be a table", prefix+k)
				continue
			}
			decodeStruct(md, sub, f, prefix+k+".", fail)
			continue
		}
		if err := md.PrimitiveDecode(prims[k], f.Addr().Interface()); err != nil {
			fail(prefix+k, "%s: %s", prefix+k, tomlMessage(err))
		}
	}
}

// tomlMessage keeps what a decoding error says about the value, without the
// decoder's own framing.
func tomlMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "toml: ")
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+3:]
	}
	return msg
}

// listFlag is a repeatable flag whose first use on the command line
// replaces what the config file gave, so flags win over the file.
type listFlag struct {
	list    *[]string
	touched bool
}

func (l *listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.touched {
		*l.list, l.touched = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.list = append(*l.list, s)
		}
	}
	return nil
}

// Settings is a daemon's configuration: it binds its flags and checks
// itself.
type Settings interface {
	Flags(fs *flag.FlagSet)
	Validate() Problems
}

// Load fills s from the config file named by --config, then from the flags
// in args, then validates it. It returns the positional arguments, or an
// *Error listing every problem, or flag.ErrHelp after printing usage to fs's
// output.
func Load(what string, fs *flag.FlagSet, s Settings, args []string) ([]string, error) {
	s.Flags(fs)
	flags, rest, probs, err := ParseFlags(fs, args)
	if err != nil {
		fs.Usage()
		return nil, err
	}
	if path, ok := Lookup(flags, "config"); ok {
		probs = append(probs, LoadFile(path, s)...)
	}
	probs = append(probs, ApplyFlags(fs, flags)...)
	// Validate what did parse too, so one round shows everything.
	probs = append(probs, s.Validate()...)
	return rest, dedupe(probs).Err(what)
}

func dedupe(p Problems) Problems {
	seen := map[string]bool{}
	var out Problems
	for _, s := range p {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
