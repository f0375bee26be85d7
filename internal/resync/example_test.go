package resync_test

import (
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// The resync runs in the manager's leader. Its store writes under the callback server's
// field manager: both write the facts Tencent reports, so they never conflict. The
// manager's cache needs roomstore.IndexRoomID.
func ExampleResyncer() {
	var (
		mgr       manager.Manager // ctrl.NewManager(...), with roomstore.IndexRoomID
		tc        *tencent.Client // tencent.NewClient(...)
		namespace = "live"
		sdkAppID  = int64(1400000000)
		log       logr.Logger
	)
	if mgr == nil {
		return
	}
	err := mgr.Add(&resync.Resyncer{
		Store: roomstore.New(roomstore.Config{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), CacheTrimsRooms: true,
			Namespace: namespace, SDKAppID: sdkAppID,
			FieldOwner: webhookserver.FieldOwner, Recorder: mgr.GetEventRecorder("liveroom-resync"),
		}),
		Reader:    mgr.GetCache(),
		Tencent:   tc,
		Namespace: namespace,
		Interval:  5 * time.Minute,
		Metrics:   resync.NewMetrics(metrics.Registry).For(namespace + "/example"),
		Log:       log.WithName("resync"),
	})
	if err != nil {
		panic(err)
	}
}
