// Package resync reconciles the LiveRooms of one namespace with the rooms Tencent lists:
// the leader pages through get_room_list, creates the rooms whose create callback never
// arrived and ends the callback- or resync-discovered rooms Tencent no longer has.
// Declared rooms (no origin annotation) are desired state and are never ended here.
package resync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// The resync reads rooms from the cache, creates missing ones and applies its fields.
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms/status,verbs=get;patch

const (
	// DefaultInterval is the time between two resyncs when Interval is not set.
	DefaultInterval = 5 * time.Minute
	// DefaultWorkers is the number of rooms handled concurrently when Workers is not set.
	DefaultWorkers = 8
	// CreateGrace is how long before a listing started a room must have been created for
	// its absence from the listing to end it: Tencent's CreateTime has second precision
	// and its clock is not ours, and a room created while the listing ran may be missing
	// from pages already served.
	CreateGrace = 2 * time.Second
	// maxReportedErrors bounds the room errors RunOnce returns in full; the rest are
	// only counted, so an API-server outage does not make a megabyte-long error.
	maxReportedErrors = 10
)

// Lister reads rooms from Tencent; *tencent.Client satisfies it.
type Lister interface {
	ListAllRooms(ctx context.Context, fn func(page []tencent.RoomInfo) error) error
	GetRoomInfo(ctx context.Context, roomID string) (*tencent.RoomInfo, error)
}

var _ Lister = (*tencent.Client)(nil)

// Resyncer is a manager runnable, run by the leader only, that resyncs every Interval.
type Resyncer struct {
	// Store writes rooms; origin "resync" for the rooms it creates.
	Store *roomstore.Store
	// Reader lists LiveRooms; the manager's cache, with the roomstore.IndexRoomID index.
	Reader  client.Reader
	Tencent Lister
	// Namespace holds the LiveRooms, the same as the Store's.
	Namespace string
	// Interval is the time between the starts of two resyncs; default DefaultInterval.
	Interval time.Duration
	// Metrics are the app's series (Metrics.For); if nil, they are collected without
	// being registered.
	Metrics *AppMetrics
	Log     logr.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Workers bounds the rooms read from Tencent and written concurrently; default
	// DefaultWorkers.
	Workers int

	metricsOnce sync.Once
}

// Result counts what one resync did. Listed counts distinct RoomIds; each listed room is
// counted once, in Created, Updated, Unchanged, Skipped or Errors. Ended counts rooms
// ended because Tencent no longer has them; Errors also counts rooms that could not be
// confirmed gone or ended.
type Result struct {
	Listed    int
	Created   int // revived rooms (a RoomId created again after it ended) count here too
	Updated   int
	Ended     int
	Unchanged int
	// Skipped rooms vanished from Tencent between the listing and get_room_info.
	Skipped int
	// Errors counts rooms that could not be read or written, in both passes.
	Errors   int
	Duration time.Duration
}

// NeedLeaderElection is true: only the leader resyncs.
func (r *Resyncer) NeedLeaderElection() bool { return true }

// Start resyncs at once, then every Interval, until ctx ends. A failed resync is logged
// and counted, never returned, so it does not stop the manager.
func (r *Resyncer) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	if w, ok := r.Reader.(interface{ WaitForCacheSync(context.Context) bool }); ok && !w.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		r.Log.Error(errors.New("cache did not sync"), "Resyncing anyway")
	}
	r.Log.Info("Starting resync", "namespace", r.Namespace, "interval", interval.String())
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		r.runLogged(ctx)
		select {
		case <-ctx.Done():
			r.Log.Info("Stopped resync")
			return nil
		case <-ticker.C:
		}
	}
}

// runLogged runs one resync and logs its result; a panic is logged and counted too.
func (r *Resyncer) runLogged(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			r.metrics().Runs.WithLabelValues(resultError).Inc()
			r.metrics().Errors.Inc()
			r.Log.Error(fmt.Errorf("panic: %v", p), "Resync failed")
		}
	}()
	res, err := r.RunOnce(ctx)
	kv := []any{"listed", res.Listed, "created", res.Created, "updated", res.Updated, "ended", res.Ended,
		"unchanged", res.Unchanged, "skipped", res.Skipped, "errors", res.Errors, "duration", res.Duration.String()}
	switch {
	case err != nil && ctx.Err() != nil:
		r.Log.Info("Resync interrupted", append(kv, "reason", err.Error())...)
	case err != nil:
		r.Log.Error(err, "Resync failed", kv...)
	default:
		r.Log.Info("Resync done", kv...)
	}
}

// RunOnce lists every room in Tencent, creates or completes the LiveRooms of the listed
// rooms and, when the listing completed, ends the callback- and resync-origin rooms that
// are live in the cluster, were created before the listing started, were not listed and
// that get_room_info confirms absent. Rooms are handled by Workers goroutines; the error
// of one room does not stop the others, and all are returned joined. A listing error
// (any page) ends nothing and is returned.
func (r *Resyncer) RunOnce(ctx context.Context) (Result, error) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	started := now()
	t := &tally{}
	listed := map[string]bool{}
	listComplete, runErr := r.run(ctx, started, now, listed, t)
	res := t.result()
	res.Listed = len(listed)
	end := now()
	res.Duration = end.Sub(started)
	err := t.err(runErr)
	r.metrics().observe(res, err, runErr != nil, listComplete, end)
	return res, err
}

// run is RunOnce's work; it reports whether the listing completed and the error, if
// any, that stopped the run (the errors of single rooms are in t).
func (r *Resyncer) run(ctx context.Context, started time.Time, now func() time.Time, listed map[string]bool, t *tally) (listComplete bool, err error) {
	p := newPool(r.workers(), t)
	listErr := r.Tencent.ListAllRooms(ctx, func(page []tencent.RoomInfo) error {
		for _, ri := range page {
			id := string(ri.RoomID)
			// Tencent's list is sorted by view count, so a room can move to a later page
			// while the listing runs and be served twice.
			if id == "" || listed[id] {
				continue
			}
			listed[id] = true
			if err := p.submit(ctx, func() (roomstate.Outcome, error) { return r.syncListed(ctx, ri, now) }); err != nil {
				return err
			}
		}
		return nil
	})
	p.wait()
	if listErr != nil {
		return false, fmt.Errorf("resync: listing Tencent rooms: %w", listErr)
	}

	var rooms livev1.LiveRoomList
	if err := r.Reader.List(ctx, &rooms, client.InNamespace(r.Namespace)); err != nil {
		return true, fmt.Errorf("resync: listing LiveRooms: %w", err)
	}
	cutoff := started.Add(-CreateGrace)
	p = newPool(r.workers(), t)
	defer p.wait()
	for i := range rooms.Items {
		room := &rooms.Items[i]
		if !endable(room, listed, cutoff) {
			continue
		}
		if err := p.submit(ctx, func() (roomstate.Outcome, error) { return r.endUnlisted(ctx, room, now) }); err != nil {
			return true, fmt.Errorf("resync: ending unlisted rooms: %w", err)
		}
	}
	return true, nil
}

// endable reports whether room may be ended for being absent from a complete listing.
func endable(room *livev1.LiveRoom, listed map[string]bool, cutoff time.Time) bool {
	if o := room.Origin(); o != livev1.OriginCallback && o != livev1.OriginResync {
		return false // declared rooms are desired state
	}
	if room.Status.Phase != livev1.RoomPhaseLive || listed[room.Spec.RoomID] || room.DeletionTimestamp != nil {
		return false
	}
	created := room.CreationTimestamp.Time
	if room.Status.CreateTime != nil {
		created = room.Status.CreateTime.Time
	}
	return created.Before(cutoff)
}

// syncListed creates the LiveRoom of a listed room, completed with get_room_info, or
// lets an existing one take what it lacks from the listing.
func (r *Resyncer) syncListed(ctx context.Context, listed tencent.RoomInfo, now func() time.Time) (roomstate.Outcome, error) {
	id := string(listed.RoomID)
	existing, err := r.Store.Find(ctx, id)
	if err != nil {
		return "", fmt.Errorf("room %q: %w", id, err)
	}
	info := &listed
	if existing == nil {
		// The listing lacks the seat settings, the type and more.
		info, err = r.Tencent.GetRoomInfo(ctx, id)
		if tencent.IsCode(err, tencent.CodeRoomNotFound) {
			r.Log.V(1).Info("Listed room vanished before get_room_info", "roomId", id)
			return skipped, nil
		}
		if err != nil {
			return "", fmt.Errorf("room %q: %w", id, err)
		}
		if info.CreateTime == 0 {
			info.CreateTime = listed.CreateTime
		}
	} else if info.CreateTime == 0 && existing.Status.CreateTime != nil {
		// Without a CreateTime the mutation would date the room's creation now.
		info.CreateTime = tencent.FlexInt(existing.Status.CreateTime.Unix())
	}
	out, err := r.Store.Mutate(ctx, id, livev1.OriginResync, roomstate.FromRoomInfo(info, now()))
	if err != nil {
		return "", fmt.Errorf("room %q: %w", id, err)
	}
	return out.Outcome, nil
}

// endUnlisted ends a room the listing did not return, once get_room_info confirms that
// Tencent does not have it: the list is sorted by view count, so a room whose count
// changed during the listing can be skipped, and rooms hidden from the list
// (IsPublicVisible false) may be left out of it. It returns Ended, or "" when it left
// the room as it was.
func (r *Resyncer) endUnlisted(ctx context.Context, room *livev1.LiveRoom, now func() time.Time) (roomstate.Outcome, error) {
	id := room.Spec.RoomID
	_, err := r.Tencent.GetRoomInfo(ctx, id)
	switch {
	case err == nil:
		r.Log.Info("Room missing from Tencent's listing still exists; left live", "roomId", id)
		return "", nil
	case !tencent.IsCode(err, tencent.CodeRoomNotFound):
		return "", fmt.Errorf("room %q: confirming it is gone: %w", id, err)
	}
	out, err := r.Store.Mutate(ctx, id, room.Origin(), roomstate.EndNotFound(now()))
	if err != nil {
		return "", fmt.Errorf("room %q: ending it: %w", id, err)
	}
	if out.Outcome != roomstate.Ended {
		return "", nil // ended meanwhile, by a destroy callback
	}
	r.Log.Info("Ended a room Tencent no longer has", "roomId", id, "liveRoom", client.ObjectKeyFromObject(room))
	return roomstate.Ended, nil
}

func (r *Resyncer) workers() int {
	if r.Workers > 0 {
		return r.Workers
	}
	return DefaultWorkers
}

func (r *Resyncer) metrics() *AppMetrics {
	r.metricsOnce.Do(func() {
		if r.Metrics == nil {
			r.Metrics = NewMetrics(nil).For(r.Namespace)
		}
	})
	return r.Metrics
}

// skipped is the tally's outcome for a listed room that vanished.
const skipped roomstate.Outcome = "skipped"

// tally collects the outcomes and errors of concurrent room work.
type tally struct {
	mu   sync.Mutex
	res  Result
	errs []error
}

func (t *tally) count(o roomstate.Outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch o {
	case roomstate.Created, roomstate.Revived:
		t.res.Created++
	case roomstate.Updated:
		t.res.Updated++
	case roomstate.Ended:
		t.res.Ended++
	case roomstate.Unchanged:
		t.res.Unchanged++
	case skipped:
		t.res.Skipped++
	}
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.Errors++
	t.errs = append(t.errs, err)
}

func (t *tally) result() Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.res
}

// err joins first (the run's own error, may be nil) with the room errors, the first
// maxReportedErrors of them in full.
func (t *tally) err(first error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	errs := []error{first}
	if n := len(t.errs); n > maxReportedErrors {
		errs = append(errs, t.errs[:maxReportedErrors]...)
		errs = append(errs, fmt.Errorf("and %d more room errors", n-maxReportedErrors))
	} else {
		errs = append(errs, t.errs...)
	}
	return errors.Join(errs...)
}

// pool runs submitted work on a fixed number of goroutines and records its failures.
type pool struct {
	work  chan func()
	wg    sync.WaitGroup
	tally *tally
}

func newPool(n int, t *tally) *pool {
	p := &pool{work: make(chan func()), tally: t}
	for range n {
		p.wg.Go(func() {
			for f := range p.work {
				f()
			}
		})
	}
	return p
}

// submit hands f to a free worker, waiting for one; it fails only when ctx ends first.
// f's outcome is counted; an error or a panic of f is recorded as a room error.
func (p *pool) submit(ctx context.Context, f func() (roomstate.Outcome, error)) error {
	select {
	case p.work <- func() { p.run(f) }:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pool) run(f func() (roomstate.Outcome, error)) {
	defer func() {
		if v := recover(); v != nil {
			p.tally.fail(fmt.Errorf("panic: %v", v))
		}
	}()
	outcome, err := f()
	if err != nil {
		p.tally.fail(err)
		return
	}
	p.tally.count(outcome)
}

// wait lets the submitted work finish and stops the workers.
func (p *pool) wait() {
	close(p.work)
	p.wg.Wait()
}
