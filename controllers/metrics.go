package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
)

// Label values of the cache gauges: phases outside the CRD's enums (none today) are
// reported as unknown, so the number of series stays bounded by the number of apps.
const phaseUnknown = "Unknown"

var (
	roomPhases      = []livev1.RoomPhase{livev1.RoomPhaseLive, livev1.RoomPhaseEnded}
	recordingPhases = []livev1.RecordingPhase{
		livev1.RecordingPending, livev1.RecordingRunning, livev1.RecordingSucceeded, livev1.RecordingFailed, livev1.RecordingStopped,
	}

	roomsDesc = prometheus.NewDesc("liveroom_rooms",
		"LiveRooms in the controller's cache by app (the LiveApp serving their namespace, \"namespace/name\"; empty when none does) and phase (Live, Ended; Unknown before Tencent reported the room).",
		[]string{"app", "phase"}, nil)
	recordingsDesc = prometheus.NewDesc("liveroom_recordings",
		"Recordings in LiveRooms' status by app, phase (Pending, Running, Succeeded, Failed, Stopped) and the phase of their room.",
		[]string{"app", "phase", "room_phase"}, nil)
)

// cacheCollectTimeout bounds one count: a scrape that waits longer has given up anyway.
const cacheCollectTimeout = 5 * time.Second

// CacheMetrics reports rooms and recordings by phase, counted from the manager's cache
// when Prometheus scrapes: no reconciler keeps counts that could drift from the objects.
// Only the elected leader reports them, so that the replicas' series add up.
type CacheMetrics struct {
	reader  client.Reader
	elected <-chan struct{}
	log     logr.Logger
}

// NewCacheMetrics returns the collector of the rooms-by-phase and recordings-by-phase
// gauges; reader is the manager's cache and elected its Elected channel.
func NewCacheMetrics(reader client.Reader, elected <-chan struct{}, log logr.Logger) *CacheMetrics {
	return &CacheMetrics{reader: reader, elected: elected, log: log}
}

// Describe implements prometheus.Collector.
func (m *CacheMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- roomsDesc
	ch <- recordingsDesc
}

// Collect implements prometheus.Collector. It reports nothing in a standby replica, and
// nothing (rather than failing the whole scrape) when the cache cannot be read.
func (m *CacheMetrics) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-m.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cacheCollectTimeout)
	defer cancel()
	c, err := m.count(ctx)
	if err != nil {
		m.log.Error(err, "Counting rooms for metrics")
		return
	}
	for k, n := range c.rooms {
		ch <- prometheus.MustNewConstMetric(roomsDesc, prometheus.GaugeValue, n, k.app, k.phase)
	}
	for k, n := range c.recordings {
		ch <- prometheus.MustNewConstMetric(recordingsDesc, prometheus.GaugeValue, n, k.app, k.phase, k.roomPhase)
	}
}

type roomKey struct{ app, phase string }

type recordingKey struct{ app, phase, roomPhase string }

// cacheCounts are the values of one scrape.
type cacheCounts struct {
	rooms      map[roomKey]float64
	recordings map[recordingKey]float64
}

// count reads the LiveApps and LiveRooms from the cache without copying them. Every app
// gets all its series, zero included, so that dashboards and alerts see them from the
// start.
func (m *CacheMetrics) count(ctx context.Context) (cacheCounts, error) {
	c := cacheCounts{rooms: map[roomKey]float64{}, recordings: map[recordingKey]float64{}}
	var appList livev1.LiveAppList
	if err := m.reader.List(ctx, &appList, client.UnsafeDisableDeepCopy); err != nil {
		return c, err
	}
	serving, _ := apps.Serving(appList.Items)
	appOf := make(map[string]string, len(serving))
	for key := range serving {
		app := key.String()
		appOf[key.Namespace] = app
		for _, rp := range roomPhases {
			c.rooms[roomKey{app, string(rp)}] = 0
			for _, p := range recordingPhases {
				c.recordings[recordingKey{app, string(p), string(rp)}] = 0
			}
		}
	}
	var rooms livev1.LiveRoomList
	if err := m.reader.List(ctx, &rooms, client.UnsafeDisableDeepCopy); err != nil {
		return c, err
	}
	for i := range rooms.Items {
		room := &rooms.Items[i]
		app, roomPhase := appOf[room.Namespace], roomPhaseLabel(room.Status.Phase)
		c.rooms[roomKey{app, roomPhase}]++
		for _, rec := range room.Status.Recordings {
			c.recordings[recordingKey{app, recordingPhaseLabel(rec.Phase), roomPhase}]++
		}
	}
	return c, nil
}

func roomPhaseLabel(p livev1.RoomPhase) string {
	switch p {
	case livev1.RoomPhaseLive, livev1.RoomPhaseEnded:
		return string(p)
	}
	return phaseUnknown
}

func recordingPhaseLabel(p livev1.RecordingPhase) string {
	switch p {
	case livev1.RecordingPending, livev1.RecordingRunning, livev1.RecordingSucceeded, livev1.RecordingFailed, livev1.RecordingStopped:
		return string(p)
	}
	return phaseUnknown
}
