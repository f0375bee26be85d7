package v1alpha1

import (
	"reflect"
	"strings"
)

// StatusOwner is one of the two writers of a LiveRoom's status. Each writes only its own
// fields, with server-side apply under its own field manager, so neither ever clears or
// overwrites the other's.
type StatusOwner int

const (
	// StatusOwnerRoomEvents writes what Tencent reports: the callback server and the
	// resync, through the room store.
	StatusOwnerRoomEvents StatusOwner = iota
	// StatusOwnerController writes what the operator did: the LiveRoom reconciler.
	StatusOwnerController
)

// liveRoomStatusOwners says who writes each LiveRoomStatus field, by JSON name. A field
// added to LiveRoomStatus must be added here (a test checks that every field is).
var liveRoomStatusOwners = map[string]StatusOwner{
	"phase":              StatusOwnerRoomEvents,
	"createTime":         StatusOwnerRoomEvents,
	"endTime":            StatusOwnerRoomEvents,
	"endReason":          StatusOwnerRoomEvents,
	"lastEventTime":      StatusOwnerRoomEvents,
	"eventTimes":         StatusOwnerRoomEvents,
	"owner":              StatusOwnerRoomEvents,
	"admins":             StatusOwnerRoomEvents,
	"seats":              StatusOwnerRoomEvents,
	"occupiedSeats":      StatusOwnerRoomEvents,
	"audience":           StatusOwnerRoomEvents,
	"statistics":         StatusOwnerRoomEvents,
	"metadata":           StatusOwnerRoomEvents,
	"recordings":         StatusOwnerController,
	"tencent":            StatusOwnerController,
	"observedGeneration": StatusOwnerController,
	"conditions":         StatusOwnerController,
}

// OwnedBy returns a copy of st that holds only the fields owner writes, the others
// zero: what owner's apply of the status carries.
func (st *LiveRoomStatus) OwnedBy(owner StatusOwner) LiveRoomStatus {
	out := *st.DeepCopy()
	v := reflect.ValueOf(&out).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		if liveRoomStatusOwners[jsonName(f)] != owner {
			v.Field(i).SetZero()
		}
	}
	return out
}

// jsonName is a struct field's name in JSON.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}
