package resync

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsPerApp: one app's successful resync does not hide another's failure, and an
// app's series go with it.
func TestMetricsPerApp(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	ok, failing := m.For("live/ok"), m.For("staging/failing")
	end := time.Unix(1700000000, 0)
	ok.observe(Result{Listed: 3}, nil, false, true, end)
	failing.observe(Result{}, errors.New("listing failed"), true, false, end)

	g.Expect(testutil.ToFloat64(ok.LastSuccess)).To(BeEquivalentTo(1700000000))
	g.Expect(testutil.ToFloat64(failing.LastSuccess)).To(BeEquivalentTo(0))
	g.Expect(testutil.ToFloat64(failing.Runs.WithLabelValues(resultError))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(ok.Runs.WithLabelValues(resultError))).To(BeEquivalentTo(0))
	g.Expect(testutil.ToFloat64(ok.RoomsListed)).To(BeEquivalentTo(3))

	series := func() int {
		n, err := testutil.GatherAndCount(reg, "liveroom_resync_runs_total", "liveroom_resync_last_success_timestamp_seconds")
		g.Expect(err).NotTo(HaveOccurred())
		return n
	}
	g.Expect(series()).To(Equal(6), "two results and a timestamp per app")
	m.Forget("staging/failing")
	g.Expect(series()).To(Equal(3))
}
