package roomstate

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

func setMetadataAt(ms int64, pairs ...string) event {
	entries := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		entries = append(entries, fmt.Sprintf(`{"Key":%q,"Value":%q}`, pairs[i], pairs[i+1]))
	}
	return event{fmt.Sprintf("set %v at %d", pairs, ms), fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterSetMetadata","RoomId":"r","Metadata":[%s],"EventTime":%d}`, strings.Join(entries, ","), ms)}
}

func delMetadataAt(ms int64, keys ...string) event {
	return event{fmt.Sprintf("del %v at %d", keys, ms), fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDelMetadata","RoomId":"r","Keys":["%s"],"EventTime":%d}`, strings.Join(keys, `","`), ms)}
}

// TestMetadataOrderings: whatever order a room's metadata callbacks arrive in, each key
// ends as the newest change to it says.
func TestMetadataOrderings(t *testing.T) {
	cases := []struct {
		name   string
		events []event // in Tencent's order
		want   map[string]string
	}{
		{
			name:   "set then changed",
			events: []event{createAt(t0, "h"), setMetadataAt(t0+1000, "k1", "a", "k2", "b"), setMetadataAt(t0+2000, "k1", "c")},
			want:   map[string]string{"k1": "c", "k2": "b"},
		},
		{
			name:   "set then deleted",
			events: []event{createAt(t0, "h"), setMetadataAt(t0+1000, "k1", "a", "k2", "b"), delMetadataAt(t0+2000, "k1")},
			want:   map[string]string{"k2": "b"},
		},
		{
			name:   "deleted then set again",
			events: []event{createAt(t0, "h"), setMetadataAt(t0+1000, "k1", "a"), delMetadataAt(t0+2000, "k1"), setMetadataAt(t0+3000, "k1", "again")},
			want:   map[string]string{"k1": "again"},
		},
		{
			name:   "every key deleted",
			events: []event{setMetadataAt(t0+1000, "k1", "a", "k2", "b"), delMetadataAt(t0+2000, "k1", "k2")},
			want:   nil,
		},
		{
			name:   "keys change independently",
			events: []event{createAt(t0, "h"), setMetadataAt(t0+1000, "k1", "a"), setMetadataAt(t0+2000, "k2", "b"), delMetadataAt(t0+3000, "k1"), setMetadataAt(t0+4000, "k2", "c", "k3", "d")},
			want:   map[string]string{"k2": "c", "k3": "d"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, order := range permutations(len(c.events)) {
				room := newRoom()
				var names []string
				for _, i := range order {
					apply(t, room, c.events[i])
					names = append(names, c.events[i].name)
				}
				if !maps.Equal(room.Status.Metadata, c.want) {
					t.Fatalf("delivered as %v:\n got %v\nwant %v", names, room.Status.Metadata, c.want)
				}
				if room.Status.Phase != livev1.RoomPhaseLive {
					t.Fatalf("delivered as %v: phase %q", names, room.Status.Phase)
				}
			}
		})
	}
}

func TestMetadataOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		before []event
		event  event
		want   Outcome
	}{
		{"first set", []event{createAt(t0, "h")}, setMetadataAt(t0+1000, "k", "v"), Updated},
		{"set of an unknown room", nil, setMetadataAt(t0+1000, "k", "v"), Created},
		{"same set again", []event{createAt(t0, "h"), setMetadataAt(t0+1000, "k", "v")}, setMetadataAt(t0+1000, "k", "v"), Unchanged},
		{"set older than a delete", []event{createAt(t0, "h"), delMetadataAt(t0+2000, "k")}, setMetadataAt(t0+1000, "k", "v"), Unchanged},
		{"delete of a key never set", []event{createAt(t0, "h")}, delMetadataAt(t0+1000, "k"), Updated},
		{"set after the end", []event{createAt(t0, "h"), destroyAt(t0 + 1000)}, setMetadataAt(t0+2000, "k", "v"), Unchanged},
		{"set of an earlier life", []event{createAt(t0+60000, "h")}, setMetadataAt(t0+1000, "k", "v"), Unchanged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			room := newRoom()
			for _, e := range c.before {
				apply(t, room, e)
			}
			if got := apply(t, room, c.event); got != c.want {
				t.Fatalf("%s after %d events: %s, want %s", c.event.name, len(c.before), got, c.want)
			}
		})
	}
}

// A room remembers the deletion time of its most recently deleted keys only, within
// the CRD's bound on eventTimes.metadataKeys.
func TestDeletedMetadataKeysAreForgottenOldestFirst(t *testing.T) {
	room := newRoom()
	apply(t, room, createAt(t0, "h"))
	apply(t, room, setMetadataAt(t0+1, "kept", "v"))
	for i := range 200 {
		key := fmt.Sprintf("k%03d", i)
		apply(t, room, setMetadataAt(t0+int64(2*i+2), key, "v"))
		apply(t, room, delMetadataAt(t0+int64(2*i+3), key))
	}
	times := room.Status.EventTimes.MetadataKeys
	if len(times) != 1+MaxMetadataTombstones || len(room.Status.Metadata) != 1 {
		t.Fatalf("%d key times kept, %d keys", len(times), len(room.Status.Metadata))
	}
	if _, ok := times["kept"]; !ok {
		t.Fatal("the time of a current key was forgotten")
	}
	if _, ok := times["k199"]; !ok {
		t.Fatal("the newest deletion was forgotten")
	}
	if _, ok := times["k000"]; ok {
		t.Fatal("the oldest deletion was kept")
	}
}
