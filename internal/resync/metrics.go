package resync

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	resultSuccess = "success"
	resultError   = "error"
)

// Metrics are the resync's Prometheus collectors. No label carries a room ID.
type Metrics struct {
	// Runs counts resyncs by result: success, or error when the listing or any room failed.
	Runs *prometheus.CounterVec
	// RoomsListed is the number of rooms the last complete listing returned.
	RoomsListed prometheus.Gauge
	// RoomsCreated counts LiveRooms created (or revived) by the resync.
	RoomsCreated prometheus.Counter
	// RoomsEnded counts LiveRooms ended because Tencent no longer has them.
	RoomsEnded prometheus.Counter
	// Errors counts failed listings and rooms that could not be read or written.
	Errors prometheus.Counter
	// Duration is the time of one resync.
	Duration prometheus.Histogram
	// LastSuccess is the Unix time of the end of the last resync without any error.
	LastSuccess prometheus.Gauge
}

// NewMetrics creates the collectors and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_resync_runs_total",
			Help: "Resyncs with Tencent's room list, by result (success, error).",
		}, []string{"result"}),
		RoomsListed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_resync_rooms_listed",
			Help: "Rooms Tencent listed in the last resync whose listing completed.",
		}),
		RoomsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_resync_rooms_created_total",
			Help: "LiveRooms the resync created because no callback had (revived rooms included).",
		}),
		RoomsEnded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_resync_rooms_ended_total",
			Help: "Live LiveRooms the resync ended because Tencent no longer has them.",
		}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_resync_errors_total",
			Help: "Failed listings plus rooms the resync could not read from Tencent or write.",
		}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liveroom_resync_duration_seconds",
			Help: "Time of one resync; get_room_list allows 10 pages of 20 rooms a second.",
			// 500 pages (10,000 rooms) take at least 50 s at the documented list rate.
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_resync_last_success_timestamp_seconds",
			Help: "Unix time at which the last resync without any error ended.",
		}),
	}
	// Both results exist from the start, so rate() and absence alerts work at once.
	m.Runs.WithLabelValues(resultSuccess)
	m.Runs.WithLabelValues(resultError)
	if reg != nil {
		reg.MustRegister(m.Runs, m.RoomsListed, m.RoomsCreated, m.RoomsEnded, m.Errors, m.Duration, m.LastSuccess)
	}
	return m
}

// observe records one resync: err is what RunOnce returned, runFailed whether the run
// itself (not only some rooms) failed.
func (m *Metrics) observe(res Result, err error, runFailed, listComplete bool, end time.Time) {
	errs := res.Errors
	if runFailed {
		errs++
	}
	m.Errors.Add(float64(errs))
	m.RoomsCreated.Add(float64(res.Created))
	m.RoomsEnded.Add(float64(res.Ended))
	m.Duration.Observe(res.Duration.Seconds())
	if listComplete {
		m.RoomsListed.Set(float64(res.Listed))
	}
	if err != nil {
		m.Runs.WithLabelValues(resultError).Inc()
		return
	}
	m.Runs.WithLabelValues(resultSuccess).Inc()
	m.LastSuccess.Set(float64(end.UnixNano()) / 1e9)
}
