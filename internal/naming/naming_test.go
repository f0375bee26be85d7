package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func sha10(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

func TestRoomObjectName(t *testing.T) {
	cases := []struct{ roomID, want string }{
		{"tandy-test-rest", "tandy-test-rest"},
		{"room1", "room1"},
		{"Room_ABC.01", "room-abc-01-" + sha10("Room_ABC.01")},
		{"UPPER", "upper-" + sha10("UPPER")},
		{"___", "room-" + sha10("___")},
		{"-lead", "lead-" + sha10("-lead")},
		{"a b\tc", "a-b-c-" + sha10("a b\tc")},
		{strings.Repeat("x", 47) + "Y", strings.Repeat("x", 47) + "y-" + sha10(strings.Repeat("x", 47)+"Y")},
	}
	for _, c := range cases {
		got := RoomObjectName(c.roomID)
		if got != c.want {
			t.Errorf("RoomObjectName(%q) = %q, want %q", c.roomID, got, c.want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("RoomObjectName(%q) = %q is not a DNS label: %v", c.roomID, got, errs)
		}
	}
}

func TestRoomObjectNamesNeverShared(t *testing.T) {
	// RoomIds that sanitise to the same prefix, and one that spells another's hashed name.
	ids := []string{"Room_A", "room_a", "ROOM-A", "room.a", "room a", "room-a"}
	ids = append(ids, RoomObjectName("Room_A"))
	seen := map[string]string{}
	for _, id := range ids {
		for i, name := range RoomObjectNames(id) {
			if i == 1 && name == RoomObjectNames(id)[0] {
				t.Errorf("fallback name of %q equals its primary %q", id, name)
			}
			if other, ok := seen[name]; ok && i == 0 {
				// Only a primary may meet another RoomId's primary, when one RoomId spells
				// another's hashed name; the fallback must then be free.
				if RoomObjectNames(id)[1] == other || seen[RoomObjectNames(id)[1]] != "" {
					t.Errorf("%q and %q share %q and the fallback does not separate them", id, other, name)
				}
				continue
			}
			if other, ok := seen[name]; ok && other != id {
				t.Errorf("%q and %q both map to %q", id, other, name)
			}
			seen[name] = id
		}
	}
}

func TestJobName(t *testing.T) {
	a, b := JobName("a-b", "c"), JobName("a", "b-c")
	if a == b {
		t.Fatalf("JobName collides: %q", a)
	}
	if got, want := JobName("tandy-test-rest", "record"), "tandy-test-rest-record-"+sha10("tandy-test-rest/record"); got != want {
		t.Errorf("JobName = %q, want %q", got, want)
	}
	long := JobName(strings.Repeat("r", 63), strings.Repeat("p", 63))
	if len(long) > 63 || len(validation.IsDNS1123Label(long)) > 0 {
		t.Errorf("JobName of long names = %q (%d chars), not a DNS label", long, len(long))
	}
	if long == JobName(strings.Repeat("r", 63), strings.Repeat("p", 62)) {
		t.Errorf("JobName of long names collides")
	}
}

func TestLabelValue(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Live", "Live"},
		{"144115216631667826", "144115216631667826"},
		{"", ""},
		{"user@example", "user_example-" + sha10("user@example")},
		{"_x_", "x-" + sha10("_x_")},
		{"主播", sha10("主播")},
		{strings.Repeat("a", 64), strings.Repeat("a", 52) + "-" + sha10(strings.Repeat("a", 64))},
	}
	for _, c := range cases {
		got := LabelValue(c.in)
		if got != c.want {
			t.Errorf("LabelValue(%q) = %q, want %q", c.in, got, c.want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q invalid: %v", c.in, got, errs)
		}
	}
	if LabelValue("a@b") == LabelValue("a#b") {
		t.Error("distinct invalid values sanitise to one label value")
	}
}

func FuzzRoomObjectName(f *testing.F) {
	for _, s := range []string{"tandy-test-rest", "Room_ABC.01", "", "---", strings.Repeat("Z", 48)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		for _, name := range RoomObjectNames(id) {
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				t.Fatalf("%q -> %q: %v", id, name, errs)
			}
		}
		if v := LabelValue(id); len(validation.IsValidLabelValue(v)) > 0 {
			t.Fatalf("label %q -> %q invalid", id, v)
		}
	})
}

// App users choose RoomIds freely: creating the RoomIds spelled like a victim's primary and
// fallback names must leave the victim a name of its own.
func TestLastResortNameCannotBePreempted(t *testing.T) {
	victim := "Room_ABC.01"
	names := RoomObjectNames(victim)
	if len(names) != 3 {
		t.Fatalf("RoomObjectNames(%q) = %v, want three names", victim, names)
	}
	taken := map[string]bool{}
	for _, squatter := range names[:2] {
		if len(validation.IsDNS1123Label(squatter)) > 0 || len(squatter) > 48 {
			t.Fatalf("squatter RoomId %q would not take its literal name", squatter)
		}
		for _, n := range RoomObjectNames(squatter) {
			taken[n] = true
		}
	}
	if taken[names[2]] {
		t.Fatalf("last-resort name %q can be taken by another RoomId", names[2])
	}
	if len(names[2]) != 63 || len(validation.IsDNS1123Label(names[2])) > 0 {
		t.Fatalf("last-resort name %q is not a 63-character DNS label", names[2])
	}
}

func FuzzLastResortNameUnique(f *testing.F) {
	f.Add("Room_ABC.01", "room-abc-01")
	f.Add(strings.Repeat("a", 48), strings.Repeat("b", 47))
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || len(a) > 48 || len(b) > 48 {
			return
		}
		last := RoomObjectNames(a)[2]
		for _, n := range RoomObjectNames(b) {
			if n == last {
				t.Fatalf("last-resort name of %q is also a name of %q", a, b)
			}
		}
	})
}
