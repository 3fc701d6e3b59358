package tufrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/parallel"
)

// stateFile records per-bin expiry and target count, which the snapshot
// does not carry, so that Open and Renew need not read every bin. It is
// private to the repository (IsMetadataName rejects it) and only a cache:
// an entry whose version disagrees with the snapshot is ignored and the bin
// file read instead.
const stateFile = "state.json"

type stateJSON struct {
	Bins map[string]binState `json:"bins"`
}

func (r *Repository) writeState() error { return r.writeStateFile(true) }

// writeStateFile writes the state file, leaving the fsync to the caller
// unless durable is set.
func (r *Repository) writeStateFile(durable bool) error {
	return writeFile(r.dir, stateFile, encodeState(r.bins), durable)
}

// encodeState writes stateJSON as encoding/json would (and reads back),
// without reflection: it is rewritten at every commit with an entry per
// bin, thousands for a large catalog.
func encodeState(bins map[string]binState) []byte {
	b := make([]byte, 0, 16+80*len(bins))
	b = append(b, `{"bins":{`...)
	first := true
	for name, st := range bins {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, name)
		b = append(b, `:{"version":`...)
		b = strconv.AppendInt(b, st.Version, 10)
		b = append(b, `,"expires":"`...)
		b = st.Expires.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","count":`...)
		b = strconv.AppendInt(b, int64(st.Count), 10)
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

// loadBinStates fills r.bins for the current bins from the state file,
// reading (in parallel) the bins it does not describe correctly.
func (r *Repository) loadBinStates() error {
	var st stateJSON
	data, err := os.ReadFile(filepath.Join(r.dir, stateFile))
	if err == nil {
		// A damaged state file is not fatal: every bin is then read.
		_ = json.Unmarshal(data, &st)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tufrepo: read state: %w", err)
	}
	r.bins = map[string]binState{}
	var stale []string
	for _, name := range r.binNames() {
		mf, ok := r.snapshot.Signed.Meta[name+".json"]
		if !ok {
			return fmt.Errorf("%w: snapshot lacks %s", ErrCorruptRepository, name)
		}
		if b, ok := st.Bins[name]; ok && b.Version == mf.Version {
			r.bins[name] = b
			continue
		}
		stale = append(stale, name)
	}
	var mu sync.Mutex
	err = parallel.Do(len(stale), r.opts.Workers, func(i int) error {
		name := stale[i]
		m, err := r.readBin(name)
		if err != nil {
			return err
		}
		mu.Lock()
		r.bins[name] = binState{Version: m.Signed.Version, Expires: m.Signed.Expires, Count: len(m.Signed.Targets)}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		return r.writeState()
	}
	return nil
}

// readBin reads the current version of a bin as the snapshot lists it.
func (r *Repository) readBin(name string) (*metadata.Metadata[metadata.TargetsType], error) {
	mf, ok := r.snapshot.Signed.Meta[name+".json"]
	if !ok {
		return nil, fmt.Errorf("%w: snapshot lacks %s", ErrCorruptRepository, name)
	}
	m, err := readMeta[metadata.TargetsType](r.dir, metaFileName(name, mf.Version))
	if err != nil {
		return nil, err
	}
	if m.Signed.Version != mf.Version {
		return nil, fmt.Errorf("%w: %s has version %d, snapshot says %d", ErrCorruptRepository, name, m.Signed.Version, mf.Version)
	}
	return m, nil
}
