package apps

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

// Timings of a replica's Lease writes besides ReplicaRenewInterval.
const (
	// replicaRetryInterval is the wait after a failed write: a replica that cannot renew
	// its Lease soon looks dead, which holds up every app's token rotation.
	replicaRetryInterval = time.Second
	// replicaWriteTimeout bounds one write of the Lease.
	replicaWriteTimeout = 10 * time.Second
)

// ReplicaLease keeps the Lease of one callback-server replica in the operator's
// namespace: labelled ReplicaLabel, renewed every ReplicaRenewInterval, annotated with
// the token sets the replica has loaded (LoadedTokensAnnotation), written again at once
// when they change (Changed), and deleted when the replica stops. The controller
// switches Tencent to a new token only once every live replica's Lease shows it
// (AllLoaded). It is a manager runnable of every replica.
type ReplicaLease struct {
	// Client applies and deletes the Lease (server-side apply: it never reads it).
	Client client.Client
	// Namespace is the operator's; Name is the replica's (the pod's name).
	Namespace, Name string
	// FieldOwner is the field manager of the Lease's applies.
	FieldOwner string
	// Loaded returns the token sets the replica accepts: LiveApp UID -> TokensHash.
	Loaded func() map[string]string
	Log    logr.Logger
	// RenewInterval is how often the Lease is renewed; default ReplicaRenewInterval.
	RenewInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	once    sync.Once
	changed chan struct{}
}

func (r *ReplicaLease) init() {
	r.once.Do(func() { r.changed = make(chan struct{}, 1) })
}

// Changed asks for the Lease to be written at once: the loaded token sets changed.
func (r *ReplicaLease) Changed() {
	r.init()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is false: every replica keeps its own Lease.
func (r *ReplicaLease) NeedLeaderElection() bool { return false }

// Start writes the Lease until ctx ends, then deletes it.
func (r *ReplicaLease) Start(ctx context.Context) error {
	r.init()
	acquired := metav1.NewMicroTime(r.now())
	failing := false
	for {
		wait := r.renewInterval()
		if err := r.write(ctx, acquired); err != nil {
			if ctx.Err() != nil {
				break
			}
			if !failing {
				r.Log.Error(err, "Writing the replica Lease failed; retrying", "lease", r.Namespace+"/"+r.Name)
			}
			failing, wait = true, replicaRetryInterval
		} else if failing {
			r.Log.Info("Wrote the replica Lease again", "lease", r.Namespace+"/"+r.Name)
			failing = false
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-r.changed:
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	r.release()
	return nil
}

// write applies the Lease as it stands now.
func (r *ReplicaLease) write(ctx context.Context, acquired metav1.MicroTime) error {
	ctx, cancel := context.WithTimeout(ctx, replicaWriteTimeout)
	defer cancel()
	loaded := r.Loaded()
	if loaded == nil {
		loaded = map[string]string{}
	}
	lease := coordinationv1ac.Lease(r.Name, r.Namespace).
		WithLabels(map[string]string{ReplicaLabel: naming.LabelValue(r.Name)}).
		WithAnnotations(map[string]string{LoadedTokensAnnotation: EncodeLoadedTokens(loaded)}).
		WithSpec(coordinationv1ac.LeaseSpec().
			WithHolderIdentity(r.Name).
			WithLeaseDurationSeconds(int32(ReplicaLeaseDuration / time.Second)).
			WithAcquireTime(acquired).
			WithRenewTime(metav1.NewMicroTime(r.now())))
	return r.Client.Apply(ctx, lease, client.FieldOwner(r.FieldOwner), client.ForceOwnership)
}

// release deletes the Lease, so that the controller stops waiting for this replica at
// once rather than when the Lease expires.
func (r *ReplicaLease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), replicaWriteTimeout)
	defer cancel()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	if err := r.Client.Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
		r.Log.Error(err, "Deleting the replica Lease failed; it expires by itself", "lease", r.Namespace+"/"+r.Name)
	}
}

func (r *ReplicaLease) renewInterval() time.Duration {
	if r.RenewInterval > 0 {
		return r.RenewInterval
	}
	return ReplicaRenewInterval
}

func (r *ReplicaLease) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
