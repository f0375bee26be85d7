package resync

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	resultSuccess = "success"
	resultError   = "error"
)

// Metrics are the resync's Prometheus collectors, labelled with the app (the LiveApp,
// "namespace/name"): each app resyncs on its own, and one app's success must not hide
// another's failure. No label carries a room ID.
type Metrics struct {
	runs         *prometheus.CounterVec
	roomsListed  *prometheus.GaugeVec
	roomsCreated *prometheus.CounterVec
	roomsEnded   *prometheus.CounterVec
	errors       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	lastSuccess  *prometheus.GaugeVec
}

// AppMetrics are one app's series of Metrics.
type AppMetrics struct {
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
	Duration prometheus.Observer
	// LastSuccess is the Unix time of the end of the last resync without any error.
	LastSuccess prometheus.Gauge
}

const appLabel = "app"

// NewMetrics creates the collectors and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_resync_runs_total",
			Help: "Resyncs with Tencent's room list, by app and result (success, error).",
		}, []string{appLabel, "result"}),
		roomsListed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveroom_resync_rooms_listed",
			Help: "Rooms Tencent listed in the app's last resync whose listing completed.",
		}, []string{appLabel}),
		roomsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_resync_rooms_created_total",
			Help: "LiveRooms the resync created because no callback had (revived rooms included), by app.",
		}, []string{appLabel}),
		roomsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_resync_rooms_ended_total",
			Help: "Live LiveRooms the resync ended because Tencent no longer has them, by app.",
		}, []string{appLabel}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_resync_errors_total",
			Help: "Failed listings plus rooms the resync could not read from Tencent or write, by app.",
		}, []string{appLabel}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "liveroom_resync_duration_seconds",
			Help: "Time of one resync, by app; get_room_list allows 10 pages of 20 rooms a second.",
			// 500 pages (10,000 rooms) take at least 50 s at the documented list rate.
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{appLabel}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveroom_resync_last_success_timestamp_seconds",
			Help: "Unix time at which the app's last resync without any error ended.",
		}, []string{appLabel}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.roomsListed, m.roomsCreated, m.roomsEnded, m.errors, m.duration, m.lastSuccess)
	}
	return m
}

// For returns app's series, creating them: both results of Runs exist from the start, so
// rate() and absence alerts work at once.
func (m *Metrics) For(app string) *AppMetrics {
	a := &AppMetrics{
		Runs:         m.runs.MustCurryWith(prometheus.Labels{appLabel: app}),
		RoomsListed:  m.roomsListed.WithLabelValues(app),
		RoomsCreated: m.roomsCreated.WithLabelValues(app),
		RoomsEnded:   m.roomsEnded.WithLabelValues(app),
		Errors:       m.errors.WithLabelValues(app),
		Duration:     m.duration.WithLabelValues(app),
		LastSuccess:  m.lastSuccess.WithLabelValues(app),
	}
	a.Runs.WithLabelValues(resultSuccess)
	a.Runs.WithLabelValues(resultError)
	return a
}

// Forget deletes app's series, once the app is gone.
func (m *Metrics) Forget(app string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.runs, m.roomsListed, m.roomsCreated, m.roomsEnded, m.errors, m.duration, m.lastSuccess} {
		v.DeletePartialMatch(prometheus.Labels{appLabel: app})
	}
}

// observe records one resync: err is what RunOnce returned, runFailed whether the run
// itself (not only some rooms) failed.
func (m *AppMetrics) observe(res Result, err error, runFailed, listComplete bool, end time.Time) {
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
