// Package bench is ODI's benchmark suite, run by `make bench`. Every figure
// is measured next to a baseline started in the same run on the same
// machine, and reported as a ratio to it as well as raw, because the
// machines it runs on are shared and noisy.
//
// Results are written in the JSON layout continuous-benchmark dashboards
// read: {"name": ..., "results": [{"name": ..., "metrics": [{"name": ...,
// "value": ..., "units": ...}]}]}.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Metric is one measured figure.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Units string  `json:"units"`
}

// Result is one benchmark's figures.
type Result struct {
	Name    string   `json:"name"`
	Metrics []Metric `json:"metrics"`
}

// Report is a whole run.
type Report struct {
	Name    string   `json:"name"`
	Results []Result `json:"results"`
}

// Add appends a result.
func (r *Report) Add(name string, ms ...Metric) { r.Results = append(r.Results, Result{name, ms}) }

// WriteJSON writes the report to path, creating its folder.
func (r *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable prints a short table of every figure.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tmetric\tvalue\tunits")
	fmt.Fprintln(tw, "---------\t------\t-----\t-----")
	for _, res := range r.Results {
		for _, m := range res.Metrics {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Name, m.Name, format(m.Value), m.Units)
		}
	}
	tw.Flush()
}

func format(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".0")
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
