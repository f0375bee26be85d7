// Package lanes keeps each kind of API-server traffic on a path of its own, so that no
// amount of one can queue another behind it: room lifecycle callbacks (persisted before
// they are acknowledged), audience counts (soft state, written under a budget) and the
// reconcilers each get their own client, with their own rate limit, and their writes are
// counted by lane.
package lanes

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The lanes.
const (
	Lifecycle  = "lifecycle"
	Counts     = "counts"
	Controller = "controller"
	// Events is what else the callback server writes: Events.
	Events = "events"
)

func init() { metrics.Registry.MustRegister(Writes) }

// Writes counts the write requests (anything but GET, HEAD and OPTIONS: watches and lists
// are GETs) each lane sends to the API server, retries included.
var Writes = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "liveroom_api_writes_total",
	Help: "Write requests sent to the Kubernetes API server, by lane (lifecycle, counts, controller, events).",
}, []string{"lane"})

// RestConfig is a copy of base for lane: its own client-side rate limit (qps, burst) and
// a transport that counts its writes. Clients built from it share nothing with others.
func RestConfig(base *rest.Config, lane string, qps float32, burst int) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = qps, burst
	cfg.RateLimiter = nil // built from QPS and Burst for this config alone
	counter := Writes.WithLabelValues(lane)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			switch req.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				counter.Inc()
			}
			return rt.RoundTrip(req)
		})
	})
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	cfg.UserAgent += " lane/" + lane
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
