package forward

import "github.com/prometheus/client_golang/prometheus"

// Request kinds and outcomes, the values of the kind and outcome labels.
const (
	KindBlocking = "blocking"
	KindAsync    = "async"

	OutcomeOK       = "ok"       // 2xx
	OutcomeError    = "error"    // network error, 5xx or 429
	OutcomeTimeout  = "timeout"  // Timeout passed
	OutcomeRejected = "rejected" // any other status
)

// Reasons a delivery was dropped, the values of the reason label.
const (
	DropOverflow = "overflow"
	DropGaveUp   = "gave_up"
	DropRejected = "rejected"
	DropShutdown = "shutdown"
)

// kind and outcome index the label children resolved in series.
type (
	kind    int
	outcome int
)

const (
	blocking kind = iota
	async
)

const (
	outcomeOK outcome = iota
	outcomeError
	outcomeTimeout
	outcomeRejected
)

var (
	kinds    = [...]string{blocking: KindBlocking, async: KindAsync}
	outcomes = [...]string{
		outcomeOK: OutcomeOK, outcomeError: OutcomeError, outcomeTimeout: OutcomeTimeout, outcomeRejected: OutcomeRejected,
	}
	reasons = [...]string{DropOverflow, DropGaveUp, DropRejected, DropShutdown}
)

// Metrics are the forwarder's collectors. Labels never carry URLs or room IDs.
type Metrics struct {
	Requests   *prometheus.CounterVec   // kind, outcome; one per HTTP attempt
	Duration   *prometheus.HistogramVec // kind
	QueueDepth prometheus.GaugeFunc     // deliveries held, pending retries included
	QueueBytes prometheus.GaugeFunc     // bytes of body and query those deliveries hold
	Dropped    *prometheus.CounterVec   // reason
}

func newMetrics(depth, bytes func() float64) *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_forward_requests_total",
			Help: "Callback requests sent to the app backend, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "liveroom_forward_duration_seconds",
			Help:    "Duration of callback requests to the app backend.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2, 5},
		}, []string{"kind"}),
		QueueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_forward_queue_depth",
			Help: "After-event callbacks waiting for delivery, pending retries included.",
		}, depth),
		QueueBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_forward_queue_bytes",
			Help: "Bytes of body and query string held by after-event callbacks waiting for delivery, pending retries included.",
		}, bytes),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_forward_dropped_total",
			Help: "After-event callbacks not delivered, by reason.",
		}, []string{"reason"}),
	}
}

// register registers all the collectors or, on error, none.
func (m *Metrics) register(r prometheus.Registerer) error {
	cs := []prometheus.Collector{m.Requests, m.Duration, m.QueueDepth, m.QueueBytes, m.Dropped}
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, done := range cs[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// series holds the label children resolved once, so the request path does no lookups.
type series struct {
	requests [len(kinds)][len(outcomes)]prometheus.Counter
	duration [len(kinds)]prometheus.Observer
	dropped  map[string]prometheus.Counter
}

func (m *Metrics) resolve() *series {
	s := &series{dropped: make(map[string]prometheus.Counter, len(reasons))}
	for k, kind := range kinds {
		s.duration[k] = m.Duration.WithLabelValues(kind)
		for o, outcome := range outcomes {
			s.requests[k][o] = m.Requests.WithLabelValues(kind, outcome)
		}
	}
	for _, r := range reasons {
		s.dropped[r] = m.Dropped.WithLabelValues(r)
	}
	return s
}
