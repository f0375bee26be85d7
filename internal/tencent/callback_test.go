package tencent

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// Payloads as Tencent's documentation prints them.
const (
	sampleCreate  = `{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":"tandy-test-rest","RoomName":"tandy-test-rest","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":1703589922,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`
	sampleDestroy = `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"admin","RoomId":"tandy-test-rest","EventType":"DestroyByUser","EventTime":1703589922780,"RoomInfo":{"RoomName":"live name","RoomType":"Live","Owner_Account":144115216631667826,"IsSeatEnabled":true,"TakeSeatMode":"FreeToTake","MaxMemberCount":400,"MaxSeatCount":4,"Category":[1,2,3],"CustomInfo":"","IsMessageDisabled":false,"CoverURL":"cover url","ActivityStatus":0,"IsPublicVisible":false,"ViewCount":0,"BackgroundURL":"background url","IsUnlimitedRoomEnabled":true},"Statistic":{"TotalViewers":7,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":3}}`
	sampleSeats   = `{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"rid-123","SeatList":[{"Index":1,"Member_Account":144115233775727695,"IsTakenDisabled":false,"IsVideoDisabled":false,"IsAudioDisabled":false},{"Index":2,"IsTakenDisabled":true}],"EventTime":1670574414123}`
	sampleMembers = `{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"room_id","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":1703589922780}`
	sampleAdmins  = `{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"room_id","EventTime":1703589922780,"Operator_Account":"admin","Admin_Account":["user1","user2"],"opType":"add"}`
	sampleOwner   = `{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"room_id","EventTime":1703589922780,"Operator_Account":"admin","CurrentOwner_Account":"user2","OriginalOwner_Account":"user1"}`
	sampleSetMeta = `{"CallbackCommand":"Live.CallbackAfterSetMetadata","Operator_Account":"brennanli","RoomId":"live-room1111","Metadata":[{"Key":"key1","Value":"value1"},{"Key":"key2","Value":"value2"}],"EventTime":1739965885831}`
	sampleDelMeta = `{"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"brennanli","RoomId":"live-room1111","Keys":["key1","key2"],"EventTime":1739966441121}`
	sampleQuota   = `{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","Operator_Account":"brennanli","EventTime":1739966441121,"CurRoomCount":400,"MaxRoomCount":500}`
)

func TestDecodeDocumentedSamples(t *testing.T) {
	cb, err := Decode([]byte(sampleCreate), CommandCreateRoom)
	if err != nil {
		t.Fatal(err)
	}
	ri := cb.RoomInfo
	if cb.Room() != "tandy-test-rest" || ri.OwnerAccount != "user3" || *ri.MaxMemberCount != 300 ||
		ri.TakeSeatMode != SeatModeApplyToTake || *ri.MaxSeatCount != 16 || ri.CreateTime != 1703589922 ||
		len(ri.Category) != 2 || ri.Category[1] != 2 || !bool(*ri.IsMessageDisabled) || cb.EventTime != 0 {
		t.Errorf("create decoded wrong: %+v %+v", cb, ri)
	}

	cb, err = Decode([]byte(sampleDestroy), CommandDestroyRoom)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Room() != "tandy-test-rest" || cb.RoomInfo.OwnerAccount != "144115216631667826" ||
		cb.EventType != "DestroyByUser" || cb.Statistic.TotalViewers != 7 || cb.EventTime != 1703589922780 {
		t.Errorf("destroy decoded wrong: %+v", cb)
	}

	cb, err = Decode([]byte(sampleSeats), CommandSeatInfoChanged)
	if err != nil {
		t.Fatal(err)
	}
	if len(cb.SeatList) != 2 || cb.SeatList[0].Account != "144115233775727695" || cb.SeatList[1].Account != "" || !bool(cb.SeatList[1].IsTakenDisabled) {
		t.Errorf("seats decoded wrong: %+v", cb.SeatList)
	}

	// The query may carry either spelling of the member-state command.
	for _, q := range []string{CommandMemberStateChanged, "Live.CallbackMemberStateChanged"} {
		cb, err = Decode([]byte(sampleMembers), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if cb.Command != CommandMemberStateChanged || len(cb.MemberList) != 2 || cb.EventType != "Online" {
			t.Errorf("members decoded wrong: %+v", cb)
		}
	}

	cb, err = Decode([]byte(sampleAdmins), CommandModifyAdmin)
	if err != nil || cb.AdminOp != "add" || len(cb.AdminAccounts) != 2 {
		t.Errorf("admins decoded wrong: %+v %v", cb, err)
	}
	cb, err = Decode([]byte(sampleOwner), CommandChangeOwner)
	if err != nil || cb.CurrentOwnerAccount != "user2" {
		t.Errorf("owner decoded wrong: %+v %v", cb, err)
	}
}

func TestDecodeMetadataAndQuotaSamples(t *testing.T) {
	cb, err := Decode([]byte(sampleSetMeta), CommandSetMetadata)
	if err != nil || cb.Room() != "live-room1111" || len(cb.Metadata) != 2 || cb.Metadata[1] != (MetadataEntry{Key: "key2", Value: "value2"}) || cb.EventTime != 1739965885831 {
		t.Errorf("set metadata decoded wrong: %+v %v", cb, err)
	}
	cb, err = Decode([]byte(sampleDelMeta), CommandDelMetadata)
	if err != nil || cb.Room() != "live-room1111" || len(cb.Keys) != 2 || cb.Keys[0] != "key1" {
		t.Errorf("del metadata decoded wrong: %+v %v", cb, err)
	}
	cb, err = Decode([]byte(sampleQuota), CommandCreateRoomReachingThreshold)
	if err != nil || cb.CurRoomCount != 400 || cb.MaxRoomCount != 500 || cb.EventTime != 1739966441121 || IsRoomCommand(cb.Command) || !IsHandled(cb.Command) {
		t.Errorf("quota warning decoded wrong: %+v %v", cb, err)
	}
	// The documentation types the counts as a string and an array; a string is read.
	cb, err = Decode([]byte(`{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","CurRoomCount":"400","MaxRoomCount":500}`), CommandCreateRoomReachingThreshold)
	if err != nil || cb.CurRoomCount != 400 {
		t.Errorf("quota warning with a string count: %+v %v", cb, err)
	}
}

func TestDecodeLenientTypes(t *testing.T) {
	body := `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r1","Owner_Account":12345678901234567890,"TakeSeatMode":2,"IsMessageDisabled":"true","MaxSeatCount":"8","Category":["1",2]}}`
	cb, err := Decode([]byte(body), CommandCreateRoom)
	if err != nil {
		t.Fatal(err)
	}
	ri := cb.RoomInfo
	if ri.OwnerAccount != "12345678901234567890" || ri.TakeSeatMode != SeatModeApplyToTake || !bool(*ri.IsMessageDisabled) || *ri.MaxSeatCount != 8 || ri.Category[0] != 1 {
		t.Errorf("lenient decode wrong: %+v", ri)
	}
	cb, err = Decode([]byte(`{"CallbackCommand":"Live.CallbackAfterUpdateRoomInfo","RoomInfo":{"RoomId":"r1","TakeSeatMode":1}}`), CommandUpdateRoomInfo)
	if err != nil || cb.RoomInfo.TakeSeatMode != SeatModeFreeToTake || cb.RoomInfo.RoomName != nil {
		t.Errorf("update decode: %+v %v", cb, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, body, query, reason string
	}{
		{"not json", `RoomId=1`, CommandCreateRoom, ReasonNotJSON},
		{"trailing data", `{"CallbackCommand":"Live.CallbackAfterCreateRoom"} {}`, CommandCreateRoom, ReasonNotJSON},
		{"array", `[1]`, CommandCreateRoom, ReasonNotJSON},
		{"mismatch", sampleCreate, CommandDestroyRoom, ReasonCommandMismatch},
		{"no command", `{"RoomId":"x"}`, CommandDestroyRoom, ReasonCommandMismatch},
		{"no room", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom"}`, CommandDestroyRoom, ReasonInvalidRoom},
		{"long room", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"` + strings.Repeat("a", 49) + `"}`, CommandDestroyRoom, ReasonInvalidRoom},
		{"control char", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a\u0001"}`, CommandDestroyRoom, ReasonInvalidRoom},
		{"four categories", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"a","Category":[1,2,3,4]}}`, CommandCreateRoom, ReasonInvalidRoom},
		{"long cover", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"a","CoverURL":"` + strings.Repeat("u", 201) + `"}}`, CommandCreateRoom, ReasonInvalidRoom},
		{"create without info", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomId":"a"}`, CommandCreateRoom, ReasonInvalidRoom},
		{"bad seat mode", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"a","TakeSeatMode":"Sometimes"}}`, CommandCreateRoom, ReasonNotJSON},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.body), c.query)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s: got %v, want reason %s", c.name, err, c.reason)
		}
	}
}

func TestDecodeUnknownCommandNeedsNoRoom(t *testing.T) {
	cb, err := Decode([]byte(`{"CallbackCommand":"Live.CallbackAfterCreateBattle","BattleId":"b"}`), "Live.CallbackAfterCreateBattle")
	if err != nil || IsRoomCommand(cb.Command) {
		t.Errorf("unknown command: %v %v", cb, err)
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts for a room
// command respects the limits the CRD enforces. `make test` runs the seed corpus.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{sampleCreate, sampleDestroy, sampleSeats, sampleMembers, sampleAdmins, sampleOwner, `{}`, `null`, `{"CallbackCommand":1}`} {
		f.Add([]byte(s), CommandCreateRoom)
		f.Add([]byte(s), CommandDestroyRoom)
	}
	f.Add([]byte(sampleSetMeta), CommandSetMetadata)
	f.Add([]byte(sampleDelMeta), CommandDelMetadata)
	f.Add([]byte(sampleQuota), CommandCreateRoomReachingThreshold)
	for _, c := range limitCases {
		f.Add([]byte(c.body), c.query)
	}
	for _, c := range strictCases {
		f.Add([]byte(c.body), c.query)
	}
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		cb, err := Decode(body, query)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if CanonicalCommand(query) != cb.Command {
			t.Fatalf("accepted %q for query %q", cb.Command, query)
		}
		if IsRoomCommand(cb.Command) {
			if ValidRoomID(cb.Room()) != nil {
				t.Fatalf("accepted invalid RoomId %q", cb.Room())
			}
			if cb.RoomInfo != nil && len(cb.RoomInfo.Category) > MaxCategories {
				t.Fatalf("accepted %d categories", len(cb.RoomInfo.Category))
			}
			if len(cb.SeatList) > MaxSeats || len(cb.AdminAccounts) > MaxAdmins {
				t.Fatalf("accepted %d seats and %d admins", len(cb.SeatList), len(cb.AdminAccounts))
			}
			indexes := map[FlexInt]bool{}
			for _, s := range cb.SeatList {
				if s.Index < 0 || s.Index > MaxSeatIndex || indexes[s.Index] || len(s.Account) > MaxUserIDBytes {
					t.Fatalf("accepted seat %+v", s)
				}
				indexes[s.Index] = true
			}
			if cb.EventTime > MaxEventMillis {
				t.Fatalf("accepted EventTime %d", cb.EventTime)
			}
			values := map[string]string{}
			for _, e := range cb.Metadata {
				if e.Key == "" || len(e.Key) > MaxMetadataKeyBytes || len(e.Value) > MaxMetadataValueBytes {
					t.Fatalf("accepted metadata %q of %d bytes", e.Key, len(e.Value))
				}
				values[e.Key] = e.Value
			}
			if len(values) != len(cb.Metadata) || len(values) > MaxMetadataKeys || MetadataValueBytes(values) > MaxMetadataTotalBytes || len(cb.Keys) > MaxMetadataKeys {
				t.Fatalf("accepted %d metadata keys of %d bytes, %d keys deleted", len(cb.Metadata), MetadataValueBytes(values), len(cb.Keys))
			}
		}
		if cb.Command == CommandCreateRoomReachingThreshold && (cb.CurRoomCount < 0 || cb.MaxRoomCount < 0) {
			t.Fatalf("accepted counts %d/%d", cb.CurRoomCount, cb.MaxRoomCount)
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
	})
}

// seatBody is a seat callback with the given seats, each a JSON object.
func seatBody(seats ...string) string {
	return `{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"r","EventTime":1670574414123,"SeatList":[` + strings.Join(seats, ",") + `]}`
}

func seatsNumbered(n int) []string {
	seats := make([]string, n)
	for i := range seats {
		seats[i] = fmt.Sprintf(`{"Index":%d,"Member_Account":"user%d"}`, i, i)
	}
	return seats
}

func adminBody(n int) string {
	accounts := make([]string, n)
	for i := range accounts {
		accounts[i] = fmt.Sprintf(`"admin%d"`, i)
	}
	return `{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"r","EventTime":1703589922780,"opType":"add","Admin_Account":[` + strings.Join(accounts, ",") + `]}`
}

// manyKeys is a create callback whose RoomInfo has n extra keys, and then extra.
func manyKeys(n int, extra string) string {
	var b strings.Builder
	b.WriteString(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r"`)
	for i := range n {
		fmt.Fprintf(&b, `,"Extra%d":%d`, i, i)
	}
	b.WriteString(extra + `}}`)
	return b.String()
}

// metadataBody is a set-metadata callback with n keys of the given key and value sizes.
func metadataBody(n, keyBytes, valueBytes int) string {
	entries := make([]string, n)
	for i := range entries {
		key := fmt.Sprintf("%02d", i) + strings.Repeat("k", max(0, keyBytes-2))
		entries[i] = fmt.Sprintf(`{"Key":%q,"Value":%q}`, key, strings.Repeat("v", valueBytes))
	}
	return `{"CallbackCommand":"Live.CallbackAfterSetMetadata","RoomId":"r","EventTime":1739965885831,"Metadata":[` + strings.Join(entries, ",") + `]}`
}

func delMetadataBody(keys ...string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = fmt.Sprintf("%q", k)
	}
	return `{"CallbackCommand":"Live.CallbackAfterDelMetadata","RoomId":"r","EventTime":1739965885831,"Keys":[` + strings.Join(quoted, ",") + `]}`
}

// limitCases are bodies the LiveRoom CRD could not store, with the reason Decode gives.
var limitCases = []struct {
	name, body, query, reason string
}{
	{"257 seats", seatBody(seatsNumbered(MaxSeats + 1)...), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"MaxSeatCount beyond the seats a room can report", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","MaxSeatCount":257}}`, CommandCreateRoom, ReasonInvalidRoom},
	{"negative seat index", seatBody(`{"Index":-1}`), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"seat index past int32", seatBody(`{"Index":2147483648}`), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"seat index truncating onto another", seatBody(`{"Index":1,"Member_Account":"a"}`, `{"Index":4294967297,"Member_Account":"b"}`), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"repeated seat index", seatBody(`{"Index":3,"Member_Account":"a"}`, `{"Index":"3","Member_Account":"b"}`), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"long seat member", seatBody(`{"Index":0,"Member_Account":"` + strings.Repeat("m", MaxUserIDBytes+1) + `"}`), CommandSeatInfoChanged, ReasonInvalidRoom},
	{"257 admins", adminBody(MaxAdmins + 1), CommandModifyAdmin, ReasonInvalidRoom},
	{"event time past year 9999", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","EventTime":253402300800000}`, CommandDestroyRoom, ReasonInvalidRoom},
	{"create time past year 9999", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","CreateTime":253402300800}}`, CommandCreateRoom, ReasonInvalidRoom},
	{"negative create time", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","CreateTime":-1}}`, CommandCreateRoom, ReasonInvalidRoom},
	{"11 metadata keys", metadataBody(MaxMetadataKeys+1, 4, 4), CommandSetMetadata, ReasonInvalidRoom},
	{"long metadata key", metadataBody(1, MaxMetadataKeyBytes+1, 4), CommandSetMetadata, ReasonInvalidRoom},
	{"long metadata value", metadataBody(1, 4, MaxMetadataValueBytes+1), CommandSetMetadata, ReasonInvalidRoom},
	{"metadata past 16 KB in all", metadataBody(9, 4, MaxMetadataValueBytes), CommandSetMetadata, ReasonInvalidRoom},
	{"empty metadata key", `{"CallbackCommand":"Live.CallbackAfterSetMetadata","RoomId":"r","Metadata":[{"Key":"","Value":"v"}]}`, CommandSetMetadata, ReasonInvalidRoom},
	{"repeated metadata key", `{"CallbackCommand":"Live.CallbackAfterSetMetadata","RoomId":"r","Metadata":[{"Key":"k","Value":"1"},{"Key":"k","Value":"2"}]}`, CommandSetMetadata, ReasonInvalidRoom},
	{"metadata without a room", `{"CallbackCommand":"Live.CallbackAfterSetMetadata","Metadata":[{"Key":"k","Value":"1"}]}`, CommandSetMetadata, ReasonInvalidRoom},
	{"11 keys deleted", delMetadataBody("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"), CommandDelMetadata, ReasonInvalidRoom},
	{"long key deleted", delMetadataBody(strings.Repeat("k", MaxMetadataKeyBytes+1)), CommandDelMetadata, ReasonInvalidRoom},
	{"negative room count", `{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","CurRoomCount":-1,"MaxRoomCount":500}`, CommandCreateRoomReachingThreshold, ReasonInvalidQuota},
	{"quota warning past year 9999", `{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","CurRoomCount":1,"MaxRoomCount":5,"EventTime":253402300800000}`, CommandCreateRoomReachingThreshold, ReasonInvalidQuota},
	{"quota as an array", `{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","CurRoomCount":1,"MaxRoomCount":[500]}`, CommandCreateRoomReachingThreshold, ReasonNotJSON},
}

// strictCases are bodies encoding/json would read while silently dropping or changing
// part of them.
var strictCases = []struct {
	name, body, query string
}{
	{"repeated key", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a","RoomId":"b"}`, CommandDestroyRoom},
	{"keys differing in case", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a","roomid":"b"}`, CommandDestroyRoom},
	{"repeated command", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","CALLBACKCOMMAND":"Live.CallbackAfterCreateRoom","RoomId":"a"}`, CommandDestroyRoom},
	{"repeated key in RoomInfo", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"a","Owner_Account":"x","owner_account":"y"}}`, CommandCreateRoom},
	{"repeated key in a seat", seatBody(`{"Index":1,"Member_Account":"a","MEMBER_ACCOUNT":"b"}`), CommandSeatInfoChanged},
	{"keys equal under Unicode folding", seatBody(`{"Index":1,"IsTakenDisabled":false,"IsTa\u212aenDisabled":true}`), CommandSeatInfoChanged},
	{"escaped repeat", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a","Room\u0049d":"b"}`, CommandDestroyRoom},
	{"repeat in an unknown object", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a","X":[{"k":1,"K":2}]}`, CommandDestroyRoom},
	{"repeat after many keys", manyKeys(40, `,"extra39":0`), CommandCreateRoom},
	{"invalid UTF-8 in a value", "{\"CallbackCommand\":\"Live.CallbackAfterCreateRoom\",\"RoomInfo\":{\"RoomId\":\"a\",\"RoomName\":\"\xff\xfe\"}}", CommandCreateRoom},
	{"invalid UTF-8 in a key", "{\"CallbackCommand\":\"Live.CallbackAfterDestroyRoom\",\"RoomId\":\"a\",\"\xc3\":1}", CommandDestroyRoom},
	{"truncated UTF-8 in an unknown field", "{\"CallbackCommand\":\"Live.CallbackAfterDestroyRoom\",\"RoomId\":\"a\",\"Note\":\"caf\xc3\"}", CommandDestroyRoom},
}

func TestDecodeRefusesWhatALiveRoomCannotHold(t *testing.T) {
	for _, c := range limitCases {
		t.Run(c.name, func(t *testing.T) {
			cb, err := Decode([]byte(c.body), c.query)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != c.reason {
				t.Fatalf("got %+v, %v; want reason %s", cb, err, c.reason)
			}
			t.Log(err)
		})
	}
}

func TestDecodeAcceptsTheLimits(t *testing.T) {
	accepted := []struct{ name, body, query string }{
		{"256 seats", seatBody(seatsNumbered(MaxSeats)...), CommandSeatInfoChanged},
		{"largest seat index", seatBody(`{"Index":2147483647,"Member_Account":"` + strings.Repeat("m", MaxUserIDBytes) + `"}`), CommandSeatInfoChanged},
		{"256 admins", adminBody(MaxAdmins), CommandModifyAdmin},
		{"last millisecond of 9999", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","EventTime":253402300799999}`, CommandDestroyRoom},
		{"same key in different objects", `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"r","RoomInfo":{"RoomId":"r","RoomName":"n"},"Statistic":{"TotalViewers":1},"X":{"RoomId":1}}`, CommandDestroyRoom},
		{"many distinct keys", manyKeys(40, ""), CommandCreateRoom},
		{"UTF-8 text", `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"r","RoomName":"直播间 ✓","Notice":"\u00e9"}}`, CommandCreateRoom},
		{"10 metadata keys of 50 bytes", metadataBody(MaxMetadataKeys, MaxMetadataKeyBytes, 1000), CommandSetMetadata},
		{"metadata of 16 KB in all", metadataBody(MaxMetadataTotalBytes/MaxMetadataValueBytes, 4, MaxMetadataValueBytes), CommandSetMetadata},
		{"10 keys deleted", delMetadataBody("a", "b", "c", "d", "e", "f", "g", "h", "i", strings.Repeat("j", MaxMetadataKeyBytes)), CommandDelMetadata},
	}
	for _, c := range accepted {
		if _, err := Decode([]byte(c.body), c.query); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	cb, err := Decode([]byte(seatBody(`{"Index":7,"Member_Account":"a"}`, `{"Index":2,"Member_Account":"b"}`)), CommandSeatInfoChanged)
	if err != nil || len(cb.SeatList) != 2 || cb.SeatList[0].Index != 7 || cb.SeatList[1].Account != "b" {
		t.Errorf("seats: %+v, %v", cb, err)
	}
}

func TestDecodeRefusesAmbiguousJSON(t *testing.T) {
	for _, c := range strictCases {
		t.Run(c.name, func(t *testing.T) {
			cb, err := Decode([]byte(c.body), c.query)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != ReasonNotJSON {
				t.Fatalf("got %+v, %v; want reason %s", cb, err, ReasonNotJSON)
			}
			t.Log(err)
		})
	}
}

// Decoding runs for every callback, member churn included.
func BenchmarkDecode(b *testing.B) {
	bodies := map[string]struct{ cmd, body string }{
		"create": {CommandCreateRoom, `{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":"tandy-test-rest","RoomName":"tandy-test-rest","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":1703589922,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`},
		"member": {CommandMemberStateChanged, `{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"tandy-test-rest","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"u1"},{"Member_Account":"u2"}],"EventTime":1703589930000}`},
	}
	for name, c := range bodies {
		b.Run(name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(body, c.cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
