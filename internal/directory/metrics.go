package directory

import "github.com/prometheus/client_golang/prometheus"

// metrics are the directory's Prometheus metrics. Counters on the request
// path are resolved once here, so a request pays one atomic add.
type metrics struct {
	redirects        prometheus.Counter
	servedSelf       prometheus.Counter
	refused          *prometheus.CounterVec
	bytesServed      prometheus.Counter
	catalogVersion   *prometheus.GaugeVec
	relaysInRotation prometheus.Gauge
	auditFailures    prometheus.Counter
	notFound         prometheus.Counter
	badRequest       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "odi_directory_requests_total",
		Help: "Download requests by outcome: redirect (302 to a relay), self (served by the directory), not_found, bad_request.",
	}, []string{"outcome"})
	m := &metrics{
		redirects:  requests.WithLabelValues("redirect"),
		servedSelf: requests.WithLabelValues("self"),
		notFound:   requests.WithLabelValues("not_found"),
		badRequest: requests.WithLabelValues("bad_request"),
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
	if reg != nil {
		reg.MustRegister(requests, m.refused, m.bytesServed, m.catalogVersion, m.relaysInRotation, m.auditFailures)
	}
	return m
}
