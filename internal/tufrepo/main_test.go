package tufrepo_test

import (
	"flag"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Each execution of the client fuzz targets costs a few milliseconds
	// (a whole TUF refresh), so minimizing a new interesting input with
	// the default budget of 60s would eat a short -fuzztime entirely.
	// A second is enough to shrink what they find; an explicit flag wins.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.fuzzminimizetime" })
	if !explicit {
		flag.Set("test.fuzzminimizetime", "1s")
	}
	os.Exit(m.Run())
}
