package v1alpha1

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every status field has exactly one writer, and the two halves together are the status.
func TestStatusOwnersCoverEveryField(t *testing.T) {
	fields := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[LiveRoomStatus]()) {
		name := jsonName(f)
		fields[name] = true
		if _, ok := liveRoomStatusOwners[name]; !ok {
			t.Errorf("status.%s has no owner in liveRoomStatusOwners", name)
		}
	}
	for name := range liveRoomStatusOwners {
		if !fields[name] {
			t.Errorf("liveRoomStatusOwners names status.%s, which LiveRoomStatus lacks", name)
		}
	}
}

func TestOwnedByHalvesMakeTheWhole(t *testing.T) {
	now := metav1.Now()
	st := LiveRoomStatus{
		Phase: RoomPhaseLive, CreateTime: &now, Owner: "o", Admins: []string{"a"},
		Seats: []SeatStatus{{Index: 1}}, Audience: AudienceStatus{Online: 3},
		Recordings:         []RecordingStatus{{Policy: "p", Job: "j", Phase: RecordingRunning}},
		Tencent:            TencentRoomStatus{State: TencentRoomCreated, ObservedGeneration: 2},
		ObservedGeneration: 2, Conditions: []metav1.Condition{{Type: ConditionReady}},
	}
	events, controller := st.OwnedBy(StatusOwnerRoomEvents), st.OwnedBy(StatusOwnerController)
	if events.Recordings != nil || events.Conditions != nil || events.ObservedGeneration != 0 || events.Phase != RoomPhaseLive {
		t.Errorf("room-events half: %+v", events)
	}
	if controller.Phase != "" || controller.Admins != nil || controller.Recordings == nil || controller.Tencent.State != TencentRoomCreated {
		t.Errorf("controller half: %+v", controller)
	}
	// Every field set in st is in exactly one half.
	whole := reflect.ValueOf(st)
	for i, f := range reflect.VisibleFields(whole.Type()) {
		inEvents := !reflect.ValueOf(events).Field(i).IsZero()
		inController := !reflect.ValueOf(controller).Field(i).IsZero()
		if !whole.Field(i).IsZero() && inEvents == inController {
			t.Errorf("status.%s is in both halves or in neither", jsonName(f))
		}
	}
}
