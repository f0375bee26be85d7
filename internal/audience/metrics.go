package audience

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the count lane's collectors.
type Metrics struct {
	// Deltas counts member-count changes acknowledged into the aggregate.
	Deltas prometheus.Counter
	// Writes counts count writes stored; Failures those that failed and are retried.
	Writes, Failures prometheus.Counter
	// Lost counts rooms whose deltas were still unwritten when the process stopped.
	Lost prometheus.Counter
	// Staleness is how long a room's oldest delta waited until it was stored.
	Staleness prometheus.Histogram

	reg  prometheus.Registerer
	lane *Lane
}

// NewMetrics creates the collectors and registers them on reg when it is not nil; the
// backlog gauges are registered once a lane uses the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deltas: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_count_lane_deltas_total",
			Help: "Member enter/leave callbacks acknowledged into the in-memory audience counts.",
		}),
		Writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_count_lane_writes_total",
			Help: "Audience count writes stored in LiveRooms.",
		}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_count_lane_write_failures_total",
			Help: "Audience count writes that failed and are made again.",
		}),
		Lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_count_lane_lost_rooms_total",
			Help: "Rooms whose audience deltas were still unwritten when the process stopped.",
		}),
		Staleness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_count_lane_write_delay_seconds",
			Help:    "Time from a room's oldest unwritten audience delta to the write that stored it.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300},
		}),
		reg: reg,
	}
	if reg != nil {
		reg.MustRegister(m.Deltas, m.Writes, m.Failures, m.Lost, m.Staleness)
	}
	return m
}

// observe registers the backlog gauges of l.
func (m *Metrics) observe(l *Lane) {
	if m.reg == nil || m.lane != nil {
		return
	}
	m.lane = l
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_count_lane_backlog_rooms",
			Help: "Rooms whose acknowledged audience deltas are not written yet.",
		}, func() float64 { n, _ := l.Backlog(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_count_lane_oldest_unwritten_seconds",
			Help: "Age of the oldest acknowledged audience delta not written yet (0 when none).",
		}, func() float64 { _, d := l.Backlog(); return d.Seconds() }),
	)
}
