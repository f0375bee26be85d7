package webhookserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// unknownApp is the app label of callbacks for an SDKAppID no LiveApp serves.
const unknownApp = "unknown"

// Metrics are the callback server's Prometheus collectors. Labels never carry room IDs
// or paths, and the app label is the namespace/name of a serving LiveApp or "unknown",
// so their number stays bounded by the LiveApps whatever Tencent sends.
type Metrics struct {
	Requests   *prometheus.CounterVec // app, command, code
	Duration   *prometheus.HistogramVec
	Rejections *prometheus.CounterVec // app, reason
	Inflight   prometheus.Gauge
	Events     *prometheus.CounterVec // app, command, outcome
	Duplicates *prometheus.CounterVec // app
	// Tokens is the number of callback tokens in force per app; TokenReloadErrors counts
	// projections that were refused, keeping the tokens loaded before.
	Tokens            *prometheus.GaugeVec
	TokenReloadErrors *prometheus.CounterVec
	// QuotaWarnings counts Tencent's warnings that an app nears its room quota.
	QuotaWarnings *prometheus.CounterVec
	// LifecycleWait is the time room lifecycle callbacks wait for a write slot.
	LifecycleWait prometheus.Histogram
	// LastReceived is when each app's last authenticated callback arrived. Tencent calls
	// after every room event, so a time that stops moving while the app's rooms are live
	// says that Tencent no longer reaches the operator (callback URL changed, Ingress or
	// DNS broken, token mismatch), which no counter shows: a counter that does not move
	// has no rate.
	LastReceived *prometheus.GaugeVec

	// reg receives each app's fan-out metrics, labelled with the app.
	reg prometheus.Registerer
}

// NewMetrics creates the collectors and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_requests_total",
			Help: "Callback requests answered, by app, command and HTTP status code.",
		}, []string{"app", "command", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "liveroom_callback_request_duration_seconds",
			Help:    "Time from receiving a callback to answering it, by command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2, 5},
		}, []string{"command"}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_rejections_total",
			Help: "Callbacks refused before they were applied, by app and reason.",
		}, []string{"app", "reason"}),
		Inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_callback_inflight",
			Help: "Callback requests being processed.",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_events_total",
			Help: "Accepted callbacks by app, command and what they did (created, updated, ended, revived, unchanged, ignored, counted, forwarded).",
		}, []string{"app", "command", "outcome"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_duplicates_total",
			Help: "Deliveries identical to one already applied, acknowledged without applying them again, by app.",
		}, []string{"app"}),
		Tokens: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveroom_callback_tokens",
			Help: "Callback tokens in force for Sign checks, by app (0: none yet; callbacks are refused unless the app allows unsigned ones).",
		}, []string{"app"}),
		TokenReloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_callback_token_reload_errors_total",
			Help: "Token projections refused (no token, placeholder token), by app; the previous tokens stay in force.",
		}, []string{"app"}),
		QuotaWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_app_room_quota_warnings_total",
			Help: "Tencent's warnings that an app nears its room quota (Live.CallbackAfterCreateRoomReachingThreshold), by app.",
		}, []string{"app"}),
		LifecycleWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_lifecycle_lane_wait_seconds",
			Help:    "Time room lifecycle callbacks (create, destroy, update, owner, admins, seats, metadata) waited for a write slot.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5},
		}),
		LastReceived: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveroom_callback_last_received_timestamp_seconds",
			Help: "Unix time of the app's last callback that passed the SdkAppid and Sign checks.",
		}, []string{"app"}),
		reg: reg,
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.Rejections, m.Inflight, m.Events, m.Duplicates, m.Tokens,
			m.TokenReloadErrors, m.QuotaWarnings, m.LifecycleWait, m.LastReceived)
	}
	return m
}

// forget drops the series of an app that is no longer served, so that apps coming and
// going do not pile up series.
func (m *Metrics) forget(app string) {
	labels := prometheus.Labels{"app": app}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.Requests, m.Rejections, m.Events, m.Duplicates, m.Tokens, m.TokenReloadErrors, m.QuotaWarnings, m.LastReceived} {
		v.DeletePartialMatch(labels)
	}
}

// commandLabel bounds the command label to the commands the operator knows.
func commandLabel(c string) string {
	c = tencent.CanonicalCommand(c)
	if tencent.IsHandled(c) {
		return c
	}
	return "other"
}
