package roomstate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// event is one callback of a room's life, at a Tencent event time in milliseconds.
type event struct {
	name string
	cb   string
}

const t0 = int64(1703589922000) // the room's CreateTime, in milliseconds

func createAt(ms int64, owner string) event {
	return event{"create", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","RoomName":"first","Owner_Account":%q,"MaxMemberCount":300,"CreateTime":%d}}`, owner, ms/1000)}
}

func updateAt(ms int64, name string) event {
	return event{"update " + name, update(name, ms)}
}

func seatsAt(ms int64, members ...string) event {
	list := make([]string, len(members))
	for i, m := range members {
		list[i] = fmt.Sprintf(`{"Index":%d,"Member_Account":%q}`, i, m)
	}
	return event{"seats", fmt.Sprintf(`{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"r","SeatList":[%s],"EventTime":%d}`, strings.Join(list, ","), ms)}
}

func ownerAt(ms int64, owner string) event {
	return event{"owner " + owner, fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"r","EventTime":%d,"CurrentOwner_Account":%q}`, ms, owner)}
}

func adminsAt(ms int64, op string, accounts ...string) event {
	return event{op + " admins", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"r","EventTime":%d,"Admin_Account":["%s"],"opType":%q}`, ms, strings.Join(accounts, `","`), op)}
}

func destroyAt(ms int64) event {
	return event{"destroy", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","EventType":"DestroyByUser","EventTime":%d,"Statistic":{"TotalViewers":7}}`, ms)}
}

func commandOf(cb string) string {
	_, rest, _ := strings.Cut(cb, `"CallbackCommand":"`)
	cmd, _, _ := strings.Cut(rest, `"`)
	return cmd
}

// facts is what a room shows after its events, the part the ordering rules decide.
type facts struct {
	phase     livev1.RoomPhase
	name      string
	owner     string
	seated    int32
	admins    string
	endReason livev1.EndReason
	viewers   int64
}

func factsOf(room *livev1.LiveRoom) facts {
	f := facts{phase: room.Status.Phase, name: room.Spec.RoomName, owner: room.Spec.Owner,
		seated: room.Status.OccupiedSeats, admins: strings.Join(room.Status.Admins, ","), endReason: room.Status.EndReason}
	if room.Status.Statistics != nil {
		f.viewers = room.Status.Statistics.TotalViewers
	}
	return f
}

func apply(t *testing.T, room *livev1.LiveRoom, e event) Outcome {
	t.Helper()
	return ForCallback(decode(t, e.cb, commandOf(e.cb)), now)(room)
}

// TestEventOrderings: Tencent does not promise delivery order. Whatever order a room's
// events arrive in, the room ends up as the events' own order says.
func TestEventOrderings(t *testing.T) {
	cases := []struct {
		name   string
		events []event // in Tencent's order
		want   facts
	}{
		{
			name:   "a life",
			events: []event{createAt(t0, "host"), updateAt(t0+1000, "renamed"), seatsAt(t0+2000, "host", "guest"), ownerAt(t0+3000, "host2"), adminsAt(t0+4000, "add", "a", "b"), destroyAt(t0 + 5000)},
			want:   facts{phase: livev1.RoomPhaseEnded, name: "renamed", owner: "host2", admins: "a,b", endReason: livev1.EndReasonDestroyByUser, viewers: 7},
		},
		{
			name:   "settings and owner keep the newest",
			events: []event{createAt(t0, "host"), updateAt(t0+1000, "second"), updateAt(t0+2000, "third"), ownerAt(t0+3000, "o1"), ownerAt(t0+4000, "o2")},
			want:   facts{phase: livev1.RoomPhaseLive, name: "third", owner: "o2"},
		},
		{
			name:   "seats keep the newest list",
			events: []event{createAt(t0, "host"), seatsAt(t0+1000, "host"), seatsAt(t0+2000, "host", "a", "b")},
			want:   facts{phase: livev1.RoomPhaseLive, name: "first", owner: "host", seated: 3},
		},
		{
			name:   "admins added and removed",
			events: []event{createAt(t0, "host"), adminsAt(t0+1000, "add", "a", "b"), adminsAt(t0+2000, "delete", "a")},
			want:   facts{phase: livev1.RoomPhaseLive, name: "first", owner: "host", admins: "b"},
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
				if got := factsOf(room); got != c.want {
					t.Fatalf("delivered as %v:\n got %+v\nwant %+v", names, got, c.want)
				}
			}
		})
	}
}

// permutations lists every order of n items (n! of them; keep n small).
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			out = append(out, slices.Insert(slices.Clone(p), i, n-1))
		}
	}
	return out
}

// TestOutcomes: what each event reports, which decides the Events and metrics.
func TestOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		before []event
		event  event
		want   Outcome
	}{
		{"first create", nil, createAt(t0, "h"), Created},
		{"duplicate create", []event{createAt(t0, "h")}, createAt(t0, "h"), Unchanged},
		{"older update", []event{createAt(t0, "h"), updateAt(t0+2000, "new")}, updateAt(t0+1000, "old"), Unchanged},
		{"update of an unknown room", nil, updateAt(t0, "x"), Created},
		{"destroy", []event{createAt(t0, "h")}, destroyAt(t0 + 1000), Ended},
		{"second destroy", []event{createAt(t0, "h"), destroyAt(t0 + 1000)}, destroyAt(t0 + 1000), Unchanged},
		{"create after its destroy", []event{destroyAt(t0 + 1000)}, createAt(t0, "h"), Updated},
		{"create of a new life", []event{createAt(t0, "h"), destroyAt(t0 + 1000)}, createAt(t0+60000, "h"), Revived},
		{"event after the end", []event{createAt(t0, "h"), destroyAt(t0 + 1000)}, ownerAt(t0+2000, "late"), Unchanged},
		{"event of an earlier life", []event{createAt(t0+60000, "h")}, ownerAt(t0+1000, "old"), Unchanged},
		{"same admins again", []event{createAt(t0, "h"), adminsAt(t0+1000, "add", "a")}, adminsAt(t0+1000, "add", "a"), Unchanged},
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

// A room remembers the removal time of its most recent removed admins only.
func TestRemovedAdminsAreForgottenOldestFirst(t *testing.T) {
	room := newRoom()
	apply(t, room, createAt(t0, "h"))
	for i := range 600 {
		account := fmt.Sprintf("a%d", i)
		apply(t, room, adminsAt(t0+int64(2*i+1), "add", account))
		apply(t, room, adminsAt(t0+int64(2*i+2), "delete", account))
	}
	times := room.Status.EventTimes.AdminAccounts
	if len(times) != livev1.MaxAdminTombstones || len(room.Status.Admins) != 0 {
		t.Fatalf("%d removal times kept, %d admins", len(times), len(room.Status.Admins))
	}
	if _, ok := times["a599"]; !ok {
		t.Fatal("the newest removal was forgotten")
	}
	if _, ok := times["a0"]; ok {
		t.Fatal("the oldest removal was kept")
	}
}

// Member counts are deltas, added as they are: batches from several replicas give the
// same count in any order, even when a leave is written before its enter.
func TestMemberBatchesCommute(t *testing.T) {
	deltas := []int64{+3, -1, +2, -4, +5}
	for _, order := range permutations(len(deltas)) {
		room := newRoom()
		apply(t, room, createAt(t0, "h"))
		for k, i := range order {
			Members(deltas[i], t0+int64(k+1)*1000, livev1.CountWrite{})(room)
		}
		if room.Status.Audience.Online != 5 {
			t.Fatalf("order %v: online %d, want 5", order, room.Status.Audience.Online)
		}
	}
}

func TestCountWriteMarks(t *testing.T) {
	room := newRoom()
	apply(t, room, createAt(t0, "h"))
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
	Members(1, t0+1000, livev1.CountWrite{Replica: "old", Sequence: 1, Time: at(-time.Hour)})(room)
	Members(1, t0+2000, livev1.CountWrite{Replica: "b", Sequence: 7, Time: at(0)})(room)
	Members(1, t0+3000, livev1.CountWrite{Replica: "a", Sequence: 3, Time: at(time.Second)})(room)
	Members(1, t0+4000, livev1.CountWrite{Replica: "b", Sequence: 8, Time: at(2 * time.Second)})(room)
	want := []livev1.CountWrite{{Replica: "a", Sequence: 3, Time: at(time.Second)}, {Replica: "b", Sequence: 8, Time: at(2 * time.Second)}}
	if !slices.EqualFunc(room.Status.Audience.Writers, want, func(x, y livev1.CountWrite) bool { return x.Replica == y.Replica && x.Sequence == y.Sequence }) {
		t.Fatalf("marks %+v, want %+v", room.Status.Audience.Writers, want)
	}
	for i := range 40 {
		Members(0, t0+5000+int64(i), livev1.CountWrite{Replica: fmt.Sprintf("r%02d", i), Sequence: 1, Time: at(time.Duration(i) * time.Second)})(room)
	}
	if n := len(room.Status.Audience.Writers); n != MaxCountWriters {
		t.Fatalf("%d marks kept, want %d", n, MaxCountWriters)
	}
	if !slices.ContainsFunc(room.Status.Audience.Writers, func(w livev1.CountWrite) bool { return w.Replica == "r39" }) {
		t.Fatal("the newest mark was dropped")
	}
}

// A count write sent again after its answer was lost is applied once.
func TestMarkedMemberWriteAppliedOnce(t *testing.T) {
	room := newRoom()
	apply(t, room, createAt(t0, "h"))
	mark := livev1.CountWrite{Replica: "a", Sequence: 5, Time: metav1.NewTime(now)}
	if got := Members(3, t0+1000, mark)(room); got != Updated {
		t.Fatalf("first write: %s", got)
	}
	if got := Members(3, t0+1000, mark)(room); got != Unchanged || room.Status.Audience.Online != 3 {
		t.Fatalf("the same write again: %s, online %d", got, room.Status.Audience.Online)
	}
	older := livev1.CountWrite{Replica: "a", Sequence: 4, Time: metav1.NewTime(now)}
	if got := Members(1, t0+900, older)(room); got != Unchanged {
		t.Fatalf("an earlier write of the replica after a later one: %s", got)
	}
	other := livev1.CountWrite{Replica: "b", Sequence: 1, Time: metav1.NewTime(now)}
	if got := Members(2, t0+2000, other)(room); got != Updated || room.Status.Audience.Online != 5 {
		t.Fatalf("another replica's write: %s, online %d", got, room.Status.Audience.Online)
	}
}
