// Package webui renders ODI's pages for people: html/template files
// embedded in the binary, each with a JSON twin served by the API. It
// knows the wire types and nothing of the daemons.
package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
)

//go:embed *.html
var files embed.FS

// pages are parsed once; templates are safe for concurrent use.
var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"place":   Place,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"bytes":   config.Human,
}).ParseFS(files, "*.html"))

// MirrorList writes the mirror list page for list.
func MirrorList(w io.Writer, list *httpapi.MirrorList) error {
	// Render into a buffer first, so a template error cannot leave half a
	// page behind a 200.
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "mirrorlist.html", list); err != nil {
		return fmt.Errorf("webui: mirror list: %w", err)
	}
	_, err := b.WriteTo(w)
	return err
}

// Place describes a location in a few words: "fra1, DE (EU), AS64500".
func Place(l geo.Location) string {
	var parts []string
	if l.Region != "" {
		parts = append(parts, l.Region)
	}
	switch {
	case l.Country != "" && l.Continent != "":
		parts = append(parts, l.Country+" ("+l.Continent+")")
	case l.Country != "":
		parts = append(parts, l.Country)
	case l.Continent != "":
		parts = append(parts, l.Continent)
	}
	if l.ASN != 0 {
		as := fmt.Sprintf("AS%d", l.ASN)
		if l.ASOrg != "" {
			as += " " + l.ASOrg
		}
		parts = append(parts, as)
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}
