package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

// seriesOf gathers reg and returns the value of each series of app, keyed by metric name
// and its other labels.
func seriesOf(g Gomega, reg prometheus.Gatherer, app string) map[string]float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			ofApp := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" {
					ofApp = l.GetValue() == app
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if ofApp {
				out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestCacheMetricsCountRoomsAndRecordingsByPhase: the gauges count the rooms and
// recordings of an app from the manager's (trimmed) cache, every series of the app
// present from the start, zero included; a standby replica reports none.
func TestCacheMetricsCountRoomsAndRecordingsByPhase(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Not a ctrl- namespace: its rooms belong to its LiveApp alone (see suiteApps).
	ns := "metrics-app"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	app := &livev1.LiveApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}, Spec: livev1.LiveAppSpec{SDKAppID: 1400009901}}
	g.Expect(k8s.Create(ctx, app)).To(Succeed())

	elected := make(chan struct{})
	close(elected)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCacheMetrics(mgrClient, elected, logr.Discard()))

	want := map[string]float64{}
	for _, rp := range []string{"Live", "Ended"} {
		want["liveroom_rooms{phase="+rp+"}"] = 0
		for _, p := range []string{"Pending", "Running", "Succeeded", "Failed", "Stopped"} {
			want["liveroom_recordings{phase="+p+",room_phase="+rp+"}"] = 0
		}
	}
	g.Eventually(func(g Gomega) map[string]float64 { return seriesOf(g, reg, ns+"/shop") }, wait).Should(Equal(want),
		"an app without rooms has all its series, at zero")

	g.Expect(k8s.Create(ctx, policy(ns, "record", map[string]string{"record": "yes"}))).To(Succeed())
	recorded := liveRoom(t, ns, "recorded", livev1.OriginCallback, map[string]string{"record": "yes"})
	liveRoom(t, ns, "quiet", livev1.OriginCallback, nil)
	endRoom(t, liveRoom(t, ns, "ended", livev1.OriginCallback, nil), time.Now())
	g.Eventually(func() error { _, err := getJob(ns, naming.JobName(recorded.Name, "record")); return err }, wait).Should(Succeed())
	job, err := getJob(ns, naming.JobName(recorded.Name, "record"))
	g.Expect(err).NotTo(HaveOccurred())
	job.Status.Active = 1
	job.Status.StartTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
	g.Expect(k8s.Status().Update(ctx, job)).To(Succeed())
	failJob(t, job)

	want["liveroom_rooms{phase=Live}"] = 2
	want["liveroom_rooms{phase=Ended}"] = 1
	want["liveroom_recordings{phase=Failed,room_phase=Live}"] = 1
	g.Eventually(func(g Gomega) map[string]float64 { return seriesOf(g, reg, ns+"/shop") }, wait).Should(Equal(want))

	standby := NewCacheMetrics(mgrClient, make(chan struct{}), logr.Discard())
	g.Expect(testutil.CollectAndCount(standby)).To(BeZero(), "only the leader reports")
}

// TestCacheMetricsLabels: rooms of a namespace no LiveApp serves have an empty app, and
// phases outside the enums are bounded to Unknown.
func TestCacheMetricsLabels(t *testing.T) {
	g := NewWithT(t)
	g.Expect(roomPhaseLabel("")).To(Equal(phaseUnknown))
	g.Expect(roomPhaseLabel(livev1.RoomPhaseLive)).To(Equal("Live"))
	g.Expect(recordingPhaseLabel("Exploded")).To(Equal(phaseUnknown))
	g.Expect(recordingPhaseLabel(livev1.RecordingStopped)).To(Equal("Stopped"))

	ns := newNamespace(t)
	liveRoom(t, ns, "orphan", livev1.OriginCallback, nil)
	elected := make(chan struct{})
	close(elected)
	m := NewCacheMetrics(mgrClient, elected, logr.Discard())
	g.Eventually(func(g Gomega) float64 {
		c, err := m.count(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		return c.rooms[roomKey{"", "Live"}]
	}, wait).Should(BeNumerically(">=", 1))
}
