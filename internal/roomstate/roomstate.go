// Package roomstate applies Tencent room events to a LiveRoom in memory: what each
// callback changes, in which order events win, and the labels derived from the spec. It
// does no I/O, so every rule here is tested without an API server.
package roomstate

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// Outcome says what applying an event did to a room.
type Outcome string

const (
	// Unchanged means the event was a duplicate or older than what the room shows.
	Unchanged Outcome = "unchanged"
	// Created means a room new to the operator.
	Created Outcome = "created"
	// Updated means the room changed and is still live.
	Updated Outcome = "updated"
	// Ended means the room was destroyed.
	Ended Outcome = "ended"
	// Revived means a room that had ended was created again with the same RoomId.
	Revived Outcome = "revived"
)

// Mutation changes a room in memory and reports what it did. New rooms arrive with only
// their identity set; a mutation must leave a room it does not change untouched.
type Mutation func(room *livev1.LiveRoom) Outcome

// MaxFuture is how far ahead of this process's clock a Tencent event or creation time may
// be. Tencent's clock is within the accepted RequestTime skew of ours, so a time further
// ahead is bogus; taken at face value it would freeze the room, since every real event
// after it would look older.
const MaxFuture = 2 * time.Minute

// notFuture returns t (Unix milliseconds), or now when t is more than MaxFuture ahead.
func notFuture(t int64, now time.Time) int64 {
	if t > now.Add(MaxFuture).UnixMilli() {
		return now.UnixMilli()
	}
	return t
}

// EventMillis is the time of a callback in Unix milliseconds: EventTime when Tencent sent
// it, the room's CreateTime for a create without one, otherwise now; never more than
// MaxFuture ahead of now.
func EventMillis(cb *tencent.Callback, now time.Time) int64 {
	if cb.EventTime > 0 {
		return notFuture(int64(cb.EventTime), now)
	}
	if cb.Command == tencent.CommandCreateRoom && cb.RoomInfo != nil && cb.RoomInfo.CreateTime > 0 {
		return notFuture(createMillisOf(cb.RoomInfo), now)
	}
	return now.UnixMilli()
}

// createMillisOf is a RoomInfo's CreateTime (seconds) in milliseconds, 0 when absent or
// too large to be a time.
func createMillisOf(ri *tencent.RoomInfo) int64 {
	if ri.CreateTime <= 0 || ri.CreateTime > math.MaxInt64/1000 {
		return 0
	}
	return int64(ri.CreateTime) * 1000
}

// ForCallback returns the mutation a room callback makes. Member-state callbacks are
// coalesced by the caller and use Members instead.
func ForCallback(cb *tencent.Callback, now time.Time) Mutation {
	t := EventMillis(cb, now)
	return func(room *livev1.LiveRoom) Outcome {
		switch cb.Command {
		case tencent.CommandCreateRoom:
			return create(room, cb.RoomInfo, t, now)
		case tencent.CommandDestroyRoom:
			return destroy(room, cb, t)
		case tencent.CommandUpdateRoomInfo:
			return ongoing(room, t, func() bool { return settings(room, cb.RoomInfo, t) })
		case tencent.CommandSeatInfoChanged:
			return ongoing(room, t, func() bool { return seats(room, cb.SeatList, t) })
		case tencent.CommandChangeOwner:
			return ongoing(room, t, func() bool { return owner(room, string(cb.CurrentOwnerAccount), t) })
		case tencent.CommandModifyAdmin:
			return ongoing(room, t, func() bool { return admins(room, cb.AdminAccounts, cb.AdminOp, t) })
		case tencent.CommandSetMetadata:
			return ongoing(room, t, func() bool { return metadata(room, cb.Metadata, nil, t) })
		case tencent.CommandDelMetadata:
			return ongoing(room, t, func() bool { return metadata(room, nil, cb.Keys, t) })
		}
		return Unchanged
	}
}

// Members adds a batch of member-state changes: delta is the net change of the online
// count, t the newest event time in the batch. Deltas are added as they are, never
// clamped, so that batches from several callback-server replicas add up to the same
// count in any order. A non-empty mark records the write for its replica (see
// livev1.CountWrite); marks older than MaxCountWriteAge are dropped.
//
// A write retried after a lost answer must not count twice: with a mark, a room that
// already holds this replica's mark of the same or a later write is left unchanged.
func Members(delta, t int64, mark livev1.CountWrite) Mutation {
	return func(room *livev1.LiveRoom) Outcome {
		if mark.Replica != "" && hasMark(room, mark) {
			return Unchanged
		}
		return ongoing(room, t, func() bool {
			if room.Status.Phase == livev1.RoomPhaseEnded {
				return false // nobody is online in an ended room
			}
			a := &room.Status.Audience
			a.Online += delta
			a.Peak = max(a.Peak, a.Online)
			if mark.Replica != "" {
				a.Writers = withMark(a.Writers, mark)
			}
			return true
		})
	}
}

// hasMark reports whether room holds mark's replica's mark of mark's write or a later one.
func hasMark(room *livev1.LiveRoom, mark livev1.CountWrite) bool {
	for _, m := range room.Status.Audience.Writers {
		if m.Replica == mark.Replica && m.Sequence >= mark.Sequence {
			return true
		}
	}
	return false
}

// MaxCountWriteAge is how long a replica's count-write mark is kept: far longer than a
// replica takes to read back a write whose answer it lost.
const MaxCountWriteAge = 10 * time.Minute

// withMark replaces the mark of mark's replica and drops marks older than
// MaxCountWriteAge, keeping the list sorted by replica.
func withMark(marks []livev1.CountWrite, mark livev1.CountWrite) []livev1.CountWrite {
	out := []livev1.CountWrite{mark}
	for _, m := range marks {
		if m.Replica != mark.Replica && mark.Time.Sub(m.Time.Time) < MaxCountWriteAge {
			out = append(out, m)
		}
	}
	if len(out) > MaxCountWriters {
		// The newest marks matter: drop the oldest, never mark's own.
		slices.SortFunc(out[1:], func(a, b livev1.CountWrite) int { return b.Time.Compare(a.Time.Time) })
		out = out[:MaxCountWriters]
	}
	slices.SortFunc(out, func(a, b livev1.CountWrite) int { return strings.Compare(a.Replica, b.Replica) })
	return out
}

// MaxCountWriters bounds the marks a room keeps (the CRD's maxItems).
const MaxCountWriters = 32

// FromRoomInfo is the mutation of a room found through Tencent's REST API rather than
// a callback: it fills the settings and marks the room live, like a create.
func FromRoomInfo(ri *tencent.RoomInfo, now time.Time) Mutation {
	t := now.UnixMilli()
	if ms := createMillisOf(ri); ms > 0 {
		t = notFuture(ms, now)
	}
	return func(room *livev1.LiveRoom) Outcome { return create(room, ri, t, now) }
}

// EndNotFound ends a live room that Tencent no longer lists.
func EndNotFound(now time.Time) Mutation {
	return func(room *livev1.LiveRoom) Outcome {
		if room.Status.Phase != livev1.RoomPhaseLive {
			return Unchanged
		}
		end(room, now.UnixMilli(), livev1.EndReasonNotFoundInTencent)
		return Ended
	}
}

func createMillis(room *livev1.LiveRoom) int64 {
	if room.Status.CreateTime == nil {
		return 0
	}
	return room.Status.CreateTime.UnixMilli()
}

func endMillis(room *livev1.LiveRoom) int64 {
	if room.Status.EndTime == nil {
		return 0
	}
	return room.Status.EndTime.UnixMilli()
}

// ongoing applies an event of a live room. An event from before the room was created
// belongs to an earlier room with the same RoomId; one from after the room ended is for
// a room that no longer exists. A room first heard of through such an event is live.
func ongoing(room *livev1.LiveRoom, t int64, apply func() bool) Outcome {
	if t < createMillis(room) || (room.Status.Phase == livev1.RoomPhaseEnded && t > endMillis(room)) {
		return Unchanged
	}
	created := room.Status.Phase == ""
	if created {
		room.Status.Phase = livev1.RoomPhaseLive
	}
	changed := apply()
	if !changed && !created {
		return Unchanged
	}
	touch(room, t)
	if created {
		return Created
	}
	return Updated
}

func create(room *livev1.LiveRoom, ri *tencent.RoomInfo, t int64, now time.Time) Outcome {
	created := time.UnixMilli(t)
	if ms := createMillisOf(ri); ms > 0 {
		created = time.UnixMilli(notFuture(ms, now))
	}
	outcome := Updated
	switch {
	case room.Status.Phase == "":
		outcome = Created
	case room.Status.Phase == livev1.RoomPhaseEnded && t > endMillis(room):
		// The same RoomId created again after it ended: a new life for the room.
		outcome = Revived
		room.Status = room.Status.OwnedBy(livev1.StatusOwnerController)
	case room.Status.Phase == livev1.RoomPhaseEnded:
		// A create delivered after its destroy never revives the room, but its settings
		// still complete what the destroy told.
		changed := settings(room, ri, t)
		changed = owner(room, string(ri.OwnerAccount), t) || changed
		if !changed {
			return Unchanged
		}
		touch(room, t)
		return Updated
	}
	changed := outcome != Updated
	if room.Status.Phase != livev1.RoomPhaseLive {
		room.Status.Phase = livev1.RoomPhaseLive
		changed = true
	}
	if room.Status.CreateTime == nil || !room.Status.CreateTime.Equal(&metav1.Time{Time: created}) {
		room.Status.CreateTime = &metav1.Time{Time: created}
		changed = true
	}
	changed = settings(room, ri, t) || changed
	changed = owner(room, string(ri.OwnerAccount), t) || changed
	if !changed {
		return Unchanged
	}
	touch(room, t)
	return outcome
}

func destroy(room *livev1.LiveRoom, cb *tencent.Callback, t int64) Outcome {
	if room.Status.Phase == livev1.RoomPhaseEnded || (room.Status.Phase != "" && t < createMillis(room)) {
		// Already ended, or the destroy of an earlier room with this RoomId: only the
		// settings it carries may complete the room.
		if cb.RoomInfo != nil && settings(room, cb.RoomInfo, t) {
			touch(room, t)
			return Updated
		}
		return Unchanged
	}
	reason := livev1.EndReasonDestroyByUser
	if cb.EventType == string(livev1.EndReasonDestroyBySystem) {
		reason = livev1.EndReasonDestroyBySystem
	}
	if cb.RoomInfo != nil {
		settings(room, cb.RoomInfo, t)
		if cb.RoomInfo.OwnerAccount != "" {
			owner(room, string(cb.RoomInfo.OwnerAccount), t)
		}
	}
	if s := cb.Statistic; s != nil {
		room.Status.Statistics = &livev1.RoomStatistics{
			TotalViewers:           int64(s.TotalViewers),
			TotalGiftsSent:         int64(s.TotalGiftsSent),
			TotalGiftCoins:         int64(s.TotalGiftCoins),
			TotalUniqueGiftSenders: int64(s.TotalUniqueGiftSenders),
			TotalLikesReceived:     int64(s.TotalLikesReceived),
		}
	}
	end(room, t, reason)
	return Ended
}

func end(room *livev1.LiveRoom, t int64, reason livev1.EndReason) {
	room.Status.Phase = livev1.RoomPhaseEnded
	room.Status.EndTime = &metav1.Time{Time: time.UnixMilli(t)}
	room.Status.EndReason = reason
	room.Status.Audience.Online = 0
	room.Status.Seats = nil
	room.Status.OccupiedSeats = 0
	touch(room, t)
}

// touch records t as the newest applied event time.
func touch(room *livev1.LiveRoom, t int64) {
	if last := room.Status.LastEventTime; last == nil || last.UnixMilli() < t {
		room.Status.LastEventTime = &metav1.MicroTime{Time: time.UnixMilli(t)}
	}
}

// settings applies the room settings ri carries. An event newer than the settings the
// room shows overwrites them; an older one only fills fields still empty, so a late
// create completes what a destroy told without undoing newer changes. Declared rooms keep
// their spec: it is what a person wants, not what Tencent says.
func settings(room *livev1.LiveRoom, ri *tencent.RoomInfo, t int64) bool {
	if ri == nil {
		return false
	}
	newer := t > room.Status.EventTimes.Settings
	if newer {
		room.Status.EventTimes.Settings = t
	}
	if room.Declared() {
		return newer
	}
	s := &room.Spec
	changed := newer
	set := func(ok bool) { changed = ok || changed }
	set(field(&s.RoomName, ri.RoomName, newer))
	set(field(&s.RoomType, nonEmpty(ri.RoomType), newer))
	set(field(&s.MaxMemberCount, int32Of(ri.MaxMemberCount), newer))
	set(field(&s.MessageDisabled, boolOf(ri.IsMessageDisabled), newer))
	set(field(&s.CustomInfo, ri.CustomInfo, newer))
	set(field(&s.Seats.Enabled, boolOf(ri.IsSeatEnabled), newer))
	set(field(&s.Seats.Mode, seatModeOf(ri.TakeSeatMode), newer))
	set(field(&s.Seats.Max, int32Of(ri.MaxSeatCount), newer))
	set(field(&s.CoverURL, ri.CoverURL, newer))
	set(field(&s.BackgroundURL, ri.BackgroundURL, newer))
	set(field(&s.Notice, ri.Notice, newer))
	if ri.ActivityStatus != nil {
		set(field(&s.ActivityStatus, new(int64(*ri.ActivityStatus)), newer))
	}
	if ri.IsPublicVisible != nil && (newer || s.PublicVisible == nil) {
		set(s.PublicVisible == nil || *s.PublicVisible != bool(*ri.IsPublicVisible))
		s.PublicVisible = new(bool(*ri.IsPublicVisible))
	}
	if ri.Category != nil && (newer || len(s.Categories) == 0) {
		cats := make([]int64, len(ri.Category))
		for i, c := range ri.Category {
			cats[i] = int64(c)
		}
		set(!slices.Equal(cats, s.Categories))
		s.Categories = cats
	}
	return changed
}

// field sets *dst to *src when src was sent and either overwrite is set or *dst is empty.
func field[T comparable](dst *T, src *T, overwrite bool) bool {
	var zero T
	if src == nil || *dst == *src || (!overwrite && *dst != zero) {
		return false
	}
	*dst = *src
	return true
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func int32Of(v *tencent.FlexInt) *int32 {
	if v == nil {
		return nil
	}
	return new(int32(*v))
}

func boolOf(v *tencent.FlexBool) *bool {
	if v == nil {
		return nil
	}
	return new(bool(*v))
}

func seatModeOf(m tencent.TakeSeatMode) *livev1.SeatMode {
	if m == "" {
		return nil
	}
	return new(livev1.SeatMode(m))
}

func seats(room *livev1.LiveRoom, list []tencent.Seat, t int64) bool {
	// An ended room has no seats, whatever a late seat event from its life says.
	if t <= room.Status.EventTimes.Seats || room.Status.Phase == livev1.RoomPhaseEnded {
		return false
	}
	room.Status.EventTimes.Seats = t
	next := make([]livev1.SeatStatus, 0, len(list))
	var occupied int32
	for _, s := range list {
		next = append(next, livev1.SeatStatus{
			Index:         int32(s.Index),
			Member:        string(s.Account),
			Locked:        bool(s.IsTakenDisabled),
			VideoDisabled: bool(s.IsVideoDisabled),
			AudioDisabled: bool(s.IsAudioDisabled),
		})
		if s.Account != "" {
			occupied++
		}
	}
	slices.SortFunc(next, func(a, b livev1.SeatStatus) int { return int(a.Index - b.Index) })
	next = slices.CompactFunc(next, func(a, b livev1.SeatStatus) bool { return a.Index == b.Index })
	room.Status.Seats, room.Status.OccupiedSeats = next, occupied
	return true
}

func owner(room *livev1.LiveRoom, account string, t int64) bool {
	if account == "" || t <= room.Status.EventTimes.Owner {
		return false
	}
	room.Status.EventTimes.Owner = t
	room.Status.Owner = account
	if !room.Declared() {
		room.Spec.Owner = account
	}
	return true
}

// admins applies an add or delete. Each account's newest change wins, whatever order
// the callbacks arrive in: an add older than the account's last delete (or the reverse)
// changes nothing.
func admins(room *livev1.LiveRoom, accounts []tencent.FlexString, op string, t int64) bool {
	times := maps.Clone(room.Status.EventTimes.AdminAccounts)
	if times == nil {
		times = map[string]int64{}
	}
	set := slices.Clone(room.Status.Admins)
	changed := false
	for _, fa := range accounts {
		a := string(fa)
		if a == "" || times[a] >= t {
			continue
		}
		times[a], changed = t, true
		i := slices.Index(set, a)
		switch {
		case op == "delete" && i >= 0:
			set = slices.Delete(set, i, i+1)
		case op != "delete" && i < 0:
			set = append(set, a)
		}
	}
	if !changed {
		return false
	}
	slices.Sort(set)
	if len(set) == 0 {
		set = nil
	}
	room.Status.Admins = set
	room.Status.EventTimes.Admins = max(room.Status.EventTimes.Admins, t)
	room.Status.EventTimes.AdminAccounts = withoutOldTombstones(times, func(a string) bool { return slices.Contains(set, a) }, livev1.MaxAdminTombstones)
	return true
}

// MaxMetadataTombstones bounds the deleted metadata keys whose deletion time a room
// remembers: with the MaxMetadataKeys keys it may hold, the CRD's 64 entries of
// eventTimes.metadataKeys.
const MaxMetadataTombstones = 64 - tencent.MaxMetadataKeys

// metadata applies a set (entries) or a delete (keys). Each key's newest change wins,
// whatever order the callbacks arrive in, as for admins: a set older than the key's last
// delete (or the reverse) changes nothing.
func metadata(room *livev1.LiveRoom, set []tencent.MetadataEntry, deleted []string, t int64) bool {
	times := maps.Clone(room.Status.EventTimes.MetadataKeys)
	if times == nil {
		times = map[string]int64{}
	}
	values := maps.Clone(room.Status.Metadata)
	if values == nil {
		values = map[string]string{}
	}
	changed := false
	for _, e := range set {
		if times[e.Key] >= t {
			continue
		}
		times[e.Key], changed = t, true
		values[e.Key] = e.Value
	}
	for _, k := range deleted {
		if times[k] >= t {
			continue
		}
		times[k], changed = t, true
		delete(values, k)
	}
	if !changed {
		return false
	}
	if len(values) == 0 {
		values = nil
	}
	room.Status.Metadata = values
	room.Status.EventTimes.MetadataKeys = withoutOldTombstones(times, func(k string) bool { _, ok := values[k]; return ok }, MaxMetadataTombstones)
	return true
}

// withoutOldTombstones keeps the times of current entries and of the most recently
// removed ones, at most limit of those.
func withoutOldTombstones(times map[string]int64, current func(string) bool, limit int) map[string]int64 {
	var removed []string
	for k := range times {
		if !current(k) {
			removed = append(removed, k)
		}
	}
	if len(removed) <= limit {
		return times
	}
	slices.SortFunc(removed, func(x, y string) int { return cmp.Or(cmp.Compare(times[x], times[y]), cmp.Compare(x, y)) })
	for _, k := range removed[:len(removed)-limit] {
		delete(times, k)
	}
	return times
}

// Labels are the selection labels a room's spec implies: room type, owner and one label
// per category, with values made valid label values.
func Labels(spec *livev1.LiveRoomSpec) map[string]string {
	labels := map[string]string{}
	if spec.RoomType != "" {
		labels[livev1.RoomTypeLabel] = naming.LabelValue(spec.RoomType)
	}
	if spec.Owner != "" {
		labels[livev1.OwnerLabel] = naming.LabelValue(spec.Owner)
	}
	for _, c := range spec.Categories {
		labels[livev1.CategoryLabelPrefix+strconv.FormatInt(c, 10)] = "true"
	}
	return labels
}
