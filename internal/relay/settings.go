package relay

import (
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
)

// withRoutingSettings adds to an enrollment the operator's choices about
// which clients the directory sends here.
func (s *Server) withRoutingSettings(req httpapi.EnrollRequest) httpapi.EnrollRequest {
	req.RelaySettings = httpapi.RelaySettings{
		Location:         s.cfg.Location.Location(),
		Weight:           s.cfg.Weight,
		OnlyCountries:    s.cfg.OnlyCountries,
		ExcludeCountries: s.cfg.ExcludeCountries,
		OnlyASNs:         s.cfg.OnlyASNs,
		ExcludeASNs:      s.cfg.ExcludeASNs,
		IPv4:             config.ReachBool(s.cfg.IPv4),
		IPv6:             config.ReachBool(s.cfg.IPv6),
	}
	return req
}
