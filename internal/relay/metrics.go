package relay

import "github.com/prometheus/client_golang/prometheus"

type requestMetrics struct {
	served, bounced, bad prometheus.Counter
}

// metrics are the relay's Prometheus metrics.
type metrics struct {
	requests     requestMetrics
	bytesServed  prometheus.Counter
	fetched      prometheus.Counter
	fetchedBytes prometheus.Counter
	corrupt      prometheus.Counter
	scrubbed     prometheus.Counter
	// fetchedFromPeers counts blobs fetched from other relays.
	fetchedFromPeers prometheus.Counter
	pulled           prometheus.Counter
	evicted          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	req := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "odi_relay_requests_total",
		Help: "Client GET requests by outcome: served, bounced (sent back to the directory), bad_request.",
	}, []string{"outcome"})
	m := &metrics{
		requests: requestMetrics{
			served:  req.WithLabelValues("served"),
			bounced: req.WithLabelValues("bounced"),
			bad:     req.WithLabelValues("bad_request"),
		},
		bytesServed:      prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_bytes_served_total", Help: "Artifact bytes sent to clients and peers."}),
		fetched:          prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_blobs_fetched_total", Help: "Blobs downloaded and verified."}),
		fetchedBytes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_bytes_fetched_total", Help: "Bytes of blobs downloaded and verified."}),
		corrupt:          prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_corrupt_blobs_total", Help: "Downloads refused and held blobs dropped because their bytes did not match the digest."}),
		scrubbed:         prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_blobs_scrubbed_total", Help: "Held blobs re-verified by the background scrub."}),
		fetchedFromPeers: prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_blobs_fetched_from_peers_total", Help: "Blobs fetched from other relays instead of the directory."}),
		pulled:           prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_pulled_through_total", Help: "Artifacts fetched for a client's request (pull-through)."}),
		evicted:          prometheus.NewCounter(prometheus.CounterOpts{Name: "odi_relay_blobs_evicted_total", Help: "Unpinned blobs evicted to make room."}),
	}
	if reg != nil {
		reg.MustRegister(req, m.bytesServed, m.fetched, m.fetchedBytes, m.corrupt, m.scrubbed, m.fetchedFromPeers, m.pulled, m.evicted)
	}
	return m
}
