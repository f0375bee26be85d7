package roomstate

import (
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

var now = time.Unix(1703590000, 0)

func newRoom() *livev1.LiveRoom {
	return &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Annotations: map[string]string{livev1.OriginAnnotation: livev1.OriginCallback}},
		Spec:       livev1.LiveRoomSpec{RoomID: "r", SDKAppID: 1400000000},
	}
}

func decode(t *testing.T, body, cmd string) *tencent.Callback {
	t.Helper()
	cb, err := tencent.Decode([]byte(body), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

const (
	createCB  = `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","RoomName":"first","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":1703589922,"Category":[1,2]}}`
	destroyCB = `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","EventType":"DestroyBySystem","EventTime":1703589990000,"Statistic":{"TotalViewers":9}}`
)

func update(name string, ms int64) string {
	return `{"CallbackCommand":"Live.CallbackAfterUpdateRoomInfo","RoomInfo":{"RoomId":"r","RoomName":"` + name + `"},"EventTime":` + itoa(ms) + `}`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCreateFillsSpecAndStatus(t *testing.T) {
	room := newRoom()
	if got := ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room); got != Created {
		t.Fatalf("outcome %s", got)
	}
	s := room.Spec
	if s.RoomName != "first" || s.Owner != "user3" || s.MaxMemberCount != 300 || s.Seats.Mode != livev1.SeatModeApplyToTake || s.Seats.Max != 16 || len(s.Categories) != 2 {
		t.Errorf("spec %+v", s)
	}
	if room.Status.Phase != livev1.RoomPhaseLive || room.Status.CreateTime.Unix() != 1703589922 || room.Status.Owner != "user3" {
		t.Errorf("status %+v", room.Status)
	}
	// A duplicate changes nothing.
	if got := ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room); got != Unchanged {
		t.Errorf("duplicate create: %s", got)
	}
	labels := Labels(&room.Spec)
	if labels[livev1.OwnerLabel] != "user3" || labels[livev1.RoomTypeLabel] != "Live" || labels[livev1.CategoryLabelPrefix+"2"] != "true" {
		t.Errorf("labels %v", labels)
	}
}

func TestOutOfOrderUpdates(t *testing.T) {
	room := newRoom()
	ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room)
	newer, older := update("newer", 1703589950000), update("older", 1703589940000)
	if got := ForCallback(decode(t, newer, tencent.CommandUpdateRoomInfo), now)(room); got != Updated {
		t.Fatalf("newer: %s", got)
	}
	if got := ForCallback(decode(t, older, tencent.CommandUpdateRoomInfo), now)(room); got != Unchanged {
		t.Errorf("older update applied: %s", got)
	}
	if room.Spec.RoomName != "newer" || room.Status.LastEventTime.UnixMilli() != 1703589950000 {
		t.Errorf("room name %q, last event %v", room.Spec.RoomName, room.Status.LastEventTime)
	}
	// A create delivered after an update keeps the newer settings.
	late := newRoom()
	ForCallback(decode(t, newer, tencent.CommandUpdateRoomInfo), now)(late)
	ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(late)
	if late.Spec.RoomName != "newer" || late.Spec.Owner != "user3" || late.Status.CreateTime == nil {
		t.Errorf("late create: %+v %+v", late.Spec, late.Status)
	}
}

func TestDestroyBeforeCreateStaysEnded(t *testing.T) {
	room := newRoom()
	if got := ForCallback(decode(t, destroyCB, tencent.CommandDestroyRoom), now)(room); got != Ended {
		t.Fatalf("destroy: %s", got)
	}
	ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room)
	if room.Status.Phase != livev1.RoomPhaseEnded || room.Status.EndReason != livev1.EndReasonDestroyBySystem || room.Status.Statistics.TotalViewers != 9 {
		t.Errorf("late create revived the room: %+v", room.Status)
	}
	if room.Spec.Owner != "user3" {
		t.Errorf("late create did not complete the spec: %+v", room.Spec)
	}
	// The same RoomId created again later is a new room.
	again := `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","Owner_Account":"user4","CreateTime":1703600000}}`
	if got := ForCallback(decode(t, again, tencent.CommandCreateRoom), now)(room); got != Revived {
		t.Fatalf("re-create: %s", got)
	}
	if room.Status.Phase != livev1.RoomPhaseLive || room.Status.EndTime != nil || room.Spec.Owner != "user4" {
		t.Errorf("re-created room: %+v", room.Status)
	}
}

func TestSeatsOwnerAdminsMembers(t *testing.T) {
	room := newRoom()
	ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room)
	seatsCB := `{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"r","SeatList":[{"Index":2},{"Index":1,"Member_Account":144115233775727695}],"EventTime":1703589930000}`
	ForCallback(decode(t, seatsCB, tencent.CommandSeatInfoChanged), now)(room)
	if room.Status.OccupiedSeats != 1 || len(room.Status.Seats) != 2 || room.Status.Seats[0].Member != "144115233775727695" {
		t.Errorf("seats %+v", room.Status.Seats)
	}
	ownerCB := `{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"r","EventTime":1703589931000,"CurrentOwner_Account":"user2"}`
	ForCallback(decode(t, ownerCB, tencent.CommandChangeOwner), now)(room)
	if room.Status.Owner != "user2" || room.Spec.Owner != "user2" {
		t.Errorf("owner %q/%q", room.Status.Owner, room.Spec.Owner)
	}
	add := `{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"r","EventTime":1703589932000,"Admin_Account":["b","a"],"opType":"add"}`
	del := `{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"r","EventTime":1703589933000,"Admin_Account":["b"],"opType":"delete"}`
	// Delivered out of order: b's delete is newer than its add, so b is not an admin.
	ForCallback(decode(t, del, tencent.CommandModifyAdmin), now)(room)
	ForCallback(decode(t, add, tencent.CommandModifyAdmin), now)(room)
	if !slices.Equal(room.Status.Admins, []string{"a"}) {
		t.Errorf("admins %v", room.Status.Admins)
	}
	Members(5, 1703589934000, livev1.CountWrite{})(room)
	Members(-2, 1703589935000, livev1.CountWrite{})(room)
	if room.Status.Audience.Online != 3 || room.Status.Audience.Peak != 5 {
		t.Errorf("audience %+v", room.Status.Audience)
	}
	ForCallback(decode(t, destroyCB, tencent.CommandDestroyRoom), now)(room)
	if got := Members(1, 1703589999000, livev1.CountWrite{})(room); got != Unchanged || room.Status.Audience.Online != 0 {
		t.Errorf("member event after end: %s %+v", got, room.Status.Audience)
	}
}

func TestDeclaredRoomSpecUntouched(t *testing.T) {
	room := newRoom()
	room.Annotations = nil
	room.ResourceVersion = "1"
	room.Spec.RoomName = "declared"
	ForCallback(decode(t, createCB, tencent.CommandCreateRoom), now)(room)
	if room.Spec.RoomName != "declared" || room.Spec.Owner != "" {
		t.Errorf("callback changed a declared spec: %+v", room.Spec)
	}
	if room.Status.Phase != livev1.RoomPhaseLive || room.Status.Owner != "user3" {
		t.Errorf("declared status not updated: %+v", room.Status)
	}
}

func TestEventsOfUnknownRoomCreateLiveRoom(t *testing.T) {
	room := newRoom()
	if got := Members(2, now.UnixMilli(), livev1.CountWrite{})(room); got != Created || room.Status.Phase != livev1.RoomPhaseLive {
		t.Errorf("member event for unknown room: %s %+v", got, room.Status)
	}
	if got := EndNotFound(now)(room); got != Ended || room.Status.EndReason != livev1.EndReasonNotFoundInTencent {
		t.Errorf("end not found: %s", got)
	}
}

// Times far in the future would freeze a room: every real event after them looks older.
// They are taken as now.
func TestFutureTimesDoNotFreezeRoom(t *testing.T) {
	future := now.Add(10 * 365 * 24 * time.Hour)
	room := newRoom()
	create := `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","RoomName":"first","CreateTime":` + itoa(future.Unix()) + `}}`
	if got := ForCallback(decode(t, create, tencent.CommandCreateRoom), now)(room); got != Created {
		t.Fatalf("create: %s", got)
	}
	if !room.Status.CreateTime.Time.Equal(now) {
		t.Fatalf("createTime %v, want now %v", room.Status.CreateTime, now)
	}
	later := now.Add(time.Second)
	if got := ForCallback(decode(t, update("second", later.UnixMilli()), tencent.CommandUpdateRoomInfo), later)(room); got != Updated || room.Spec.RoomName != "second" {
		t.Fatalf("update after a future create: %s, name %q", got, room.Spec.RoomName)
	}
	destroy := `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","EventTime":` + itoa(future.UnixMilli()) + `}`
	end := now.Add(2 * time.Second)
	if got := ForCallback(decode(t, destroy, tencent.CommandDestroyRoom), end)(room); got != Ended {
		t.Fatalf("destroy: %s", got)
	}
	if !room.Status.EndTime.Time.Equal(end) {
		t.Fatalf("endTime %v, want %v (the ended-room TTL counts from it)", room.Status.EndTime, end)
	}
	// A small skew ahead is kept as sent: it is Tencent's order of events.
	skewed := newRoom()
	ahead := now.Add(MaxFuture / 2)
	ForCallback(decode(t, update("x", ahead.UnixMilli()), tencent.CommandUpdateRoomInfo), now)(skewed)
	if got := skewed.Status.LastEventTime.UnixMilli(); got != ahead.UnixMilli() {
		t.Fatalf("event within the allowance moved: %d, want %d", got, ahead.UnixMilli())
	}
	// Resync: a listed room's CreateTime is clamped the same way.
	listed := newRoom()
	FromRoomInfo(&tencent.RoomInfo{RoomID: "r", CreateTime: tencent.FlexInt(future.Unix())}, now)(listed)
	if !listed.Status.CreateTime.Time.Equal(now) {
		t.Fatalf("resync createTime %v, want now", listed.Status.CreateTime)
	}
}
