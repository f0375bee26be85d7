package webhookserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// lastReceived is when each app's last authenticated callback arrived. Tencent calls after
// every room event, so a time that stops moving while the app's rooms are live says that
// Tencent no longer reaches the operator (callback URL changed, Ingress or DNS broken,
// token mismatch), which no counter shows: a counter that does not move has no rate.
var lastReceived = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "liveroom_callback_last_received_timestamp_seconds",
	Help: "Unix time of the app's last callback that passed the SdkAppid and Sign checks.",
}, []string{"app"})

func init() { crmetrics.Registry.MustRegister(lastReceived) }

// markReceived records that a callback of app ("namespace/name" of its LiveApp) passed
// authentication at now.
func markReceived(app string, now time.Time) {
	lastReceived.WithLabelValues(app).Set(float64(now.UnixNano()) / 1e9)
}
