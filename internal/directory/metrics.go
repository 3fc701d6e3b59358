package directory

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// requestKind tells downloads from requests that only look: a HEAD, or a
// mirror list, is not a download and must not be counted as one.
type requestKind uint8

const (
	kindDownload   requestKind = iota // GET /r/...
	kindHead                          // HEAD /r/...
	kindMirrorList                    // GET|HEAD /r/...?mirrorlist
	numKinds
)

var kindNames = [numKinds]string{"download", "head", "mirrorlist"}

// outcome is how a request under /r/ was answered.
type outcome uint8

const (
	outcomeRedirect    outcome = iota // 302 to a relay
	outcomeSelf                       // bytes from the directory
	outcomeListed                     // a mirror list
	outcomeNotFound                   // no such catalog or path
	outcomeBadRequest                 // malformed path
	outcomeUnavailable                // catalog not published yet
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"redirect", "self", "listed", "not_found", "bad_request", "unavailable"}

// metrics are the directory's Prometheus metrics. Counters on the request
// path are resolved once here, so a request pays one atomic add.
type metrics struct {
	requests         [numKinds][numOutcomes]prometheus.Counter
	downloads        *prometheus.CounterVec
	downloadsByCat   sync.Map // catalog name → prometheus.Counter
	refused          *prometheus.CounterVec
	bytesServed      prometheus.Counter
	catalogVersion   *prometheus.GaugeVec
	relaysInRotation prometheus.Gauge
	auditFailures    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "odi_directory_requests_total",
		Help: "Requests under /r/ by kind (download: GET, head: HEAD, mirrorlist) and outcome (redirect, self, listed, not_found, bad_request, unavailable).",
	}, []string{"kind", "outcome"})
	m := &metrics{
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odi_directory_downloads_total",
			Help: "Downloads (GET answered with a redirect or the bytes) by catalog. HEAD requests and mirror lists are not downloads.",
		}, []string{"catalog"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odi_directory_relay_calls_refused_total",
			Help: "Calls from relays refused, by reason.",
		}, []string{"reason"}),
		bytesServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "odi_directory_bytes_served_total",
			Help: "Artifact bytes the directory served itself.",
		}),
		catalogVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "odi_directory_catalog_version",
			Help: "Current version of each catalog.",
		}, []string{"catalog"}),
		relaysInRotation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "odi_directory_relays_in_rotation",
			Help: "Relays clients are being sent to.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "odi_directory_audit_failures_total",
			Help: "Audits of relays that found wrong bytes, a wrong answer or a slow one.",
		}),
	}
	for k := range numKinds {
		for o := range numOutcomes {
			m.requests[k][o] = requests.WithLabelValues(kindNames[k], outcomeNames[o])
		}
	}
	if reg != nil {
		reg.MustRegister(requests, m.downloads, m.refused, m.bytesServed, m.catalogVersion, m.relaysInRotation, m.auditFailures)
	}
	return m
}

// request counts one request under /r/.
func (m *metrics) request(k requestKind, o outcome) { m.requests[k][o].Inc() }

// download counts one download of an artifact of catalog name. It is the
// one place every download passes, where per-artifact statistics belong.
func (m *metrics) download(name string) {
	c, ok := m.downloadsByCat.Load(name)
	if !ok {
		c, _ = m.downloadsByCat.LoadOrStore(name, m.downloads.WithLabelValues(name))
	}
	c.(prometheus.Counter).Inc()
}
