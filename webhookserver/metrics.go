package webhookserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// Metrics are the callback server's Prometheus collectors. Labels never carry room IDs
// or paths, so their number stays fixed whatever Tencent sends.
type Metrics struct {
	Requests   *prometheus.CounterVec
	Duration   *prometheus.HistogramVec
	Rejections *prometheus.CounterVec
	Inflight   prometheus.Gauge
	Events     *prometheus.CounterVec
	Duplicates prometheus.Counter
	// Tokens is the number of callback tokens in force; TokenReloadErrors counts reloads
	// of the token file that were refused, keeping the tokens loaded before.
	Tokens            prometheus.Gauge
	TokenReloadErrors prometheus.Counter
	// LifecycleWait is the time room lifecycle callbacks wait for a write slot.
	LifecycleWait prometheus.Histogram
}

// NewMetrics creates the collectors and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_requests_total",
			Help: "Callback requests answered, by command and HTTP status code.",
		}, []string{"command", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "liveroom_callback_request_duration_seconds",
			Help:    "Time from receiving a callback to answering it, by command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2, 5},
		}, []string{"command"}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_rejections_total",
			Help: "Callbacks refused before they were applied, by reason.",
		}, []string{"reason"}),
		Inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_callback_inflight",
			Help: "Callback requests being processed.",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_events_total",
			Help: "Accepted callbacks by command and what they did (created, updated, ended, revived, unchanged, ignored).",
		}, []string{"command", "outcome"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_callback_duplicates_total",
			Help: "Deliveries identical to one already applied, acknowledged without applying them again.",
		}),
		Tokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_callback_tokens",
			Help: "Callback tokens in force for Sign checks (0: unsigned callbacks accepted).",
		}),
		TokenReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_callback_token_reload_errors_total",
			Help: "Reloads of the callback token file refused (unreadable, no token, placeholder token); the previous tokens stay in force.",
		}),
		LifecycleWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_lifecycle_lane_wait_seconds",
			Help:    "Time room lifecycle callbacks (create, destroy, update, owner, admins, seats) waited for a write slot.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.Rejections, m.Inflight, m.Events, m.Duplicates, m.Tokens, m.TokenReloadErrors, m.LifecycleWait)
	}
	return m
}

// commandLabel bounds the command label to the commands the operator knows.
func commandLabel(c string) string {
	c = tencent.CanonicalCommand(c)
	if tencent.IsRoomCommand(c) {
		return c
	}
	return "other"
}
