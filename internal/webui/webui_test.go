package webui

import (
	"strings"
	"testing"

	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
)

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		l    geo.Location
		want string
	}{
		{geo.Location{}, "unknown"},
		{geo.Location{Country: "DE", Continent: "EU"}, "DE (EU)"},
		{geo.Location{Region: "fra1", Country: "DE", Continent: "EU", ASN: 64500, ASOrg: "Example"}, "fra1, DE (EU), AS64500 Example"},
		{geo.Location{Continent: "OC"}, "OC"},
	} {
		if got := Place(tc.l); got != tc.want {
			t.Errorf("Place(%+v) = %q, want %q", tc.l, got, tc.want)
		}
	}
}

func TestMirrorListPageRenders(t *testing.T) {
	var b strings.Builder
	list := &httpapi.MirrorList{Catalog: "demo", Path: "a/b.tar.gz", Size: 3 << 20, Download: "/r/demo/a/b.tar.gz",
		Mirrors: []httpapi.Mirror{
			{Rank: 1, RelayID: "rone", URL: "http://one/demo/a/b.tar.gz", Reason: "same country DE", State: "ready", InRotation: true, Share: 0.75},
			{Rank: 0, RelayID: "rtwo", Reason: "location unknown", State: "down", Why: "out of rotation: probe failed"},
		}}
	if err := MirrorList(&b, list); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a/b.tar.gz", "3.0 MiB", `href="http://one/demo/a/b.tar.gz"`, "75%", "out of rotation: probe failed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
