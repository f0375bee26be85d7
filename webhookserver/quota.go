package webhookserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	liveac "github.com/liveroom-io/liveroom-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// quotaWriter stores an app's room quota warning; clientQuota is the real one.
type quotaWriter interface {
	setRoomQuota(ctx context.Context, app types.NamespacedName, q livev1.RoomQuotaStatus) error
}

// clientQuota applies status.roomQuota, and nothing else, of a LiveApp under the callback
// server's field manager; the controller derives QuotaNearLimit from it.
type clientQuota struct{ client client.Client }

func (c clientQuota) setRoomQuota(ctx context.Context, app types.NamespacedName, q livev1.RoomQuotaStatus) error {
	ac := liveac.LiveApp(app.Name, app.Namespace).WithStatus(liveac.LiveAppStatus().WithRoomQuota(
		liveac.RoomQuotaStatus().WithRooms(q.Rooms).WithMaxRooms(q.MaxRooms).WithReportedAt(q.ReportedAt)))
	err := c.client.Status().Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership)
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		// The LiveApp is gone, or refuses the warning: no retry stores it.
		return fmt.Errorf("%w: LiveApp %s: %w", roomstore.ErrUnstorable, app, err)
	}
	return err
}

// recordQuota stores Tencent's warning that the app nears its room quota in the LiveApp's
// status.roomQuota, unless one as new is there, and records a Warning Event on it.
func (s *Server) recordQuota(ctx context.Context, app *servedApp, cb *tencent.Callback, now time.Time) (roomstate.Outcome, error) {
	if s.quota == nil {
		return "", fmt.Errorf("%w: this server cannot write LiveApps", roomstore.ErrUnstorable)
	}
	// reportedAt is stored to the second.
	at := metav1.NewTime(time.UnixMilli(roomstate.EventMillis(cb, now)).Truncate(time.Second))
	if last := app.obj.Status.RoomQuota; last != nil && !last.ReportedAt.Before(&at) {
		// A newer warning, or this one delivered again: nothing to write.
		s.metrics.QuotaWarnings.WithLabelValues(app.label).Inc()
		return roomstate.Unchanged, nil
	}
	q := livev1.RoomQuotaStatus{Rooms: int64(cb.CurRoomCount), MaxRooms: int64(cb.MaxRoomCount), ReportedAt: at}
	if err := s.quota.setRoomQuota(ctx, app.key, q); err != nil {
		return "", err
	}
	s.metrics.QuotaWarnings.WithLabelValues(app.label).Inc()
	if s.events != nil {
		s.events.Eventf(app.obj, nil, corev1.EventTypeWarning, "RoomQuotaNearLimit", "Warn",
			"Tencent warns that the app has %d rooms of its quota of %d", q.Rooms, q.MaxRooms)
	}
	return roomstate.Updated, nil
}
