package webhookserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// fuzzQuery is the query Tencent sends, without Sign and RequestTime.
func fuzzQuery(command string) string {
	return "SdkAppid=" + strconv.Itoa(testAppID) + "&CallbackCommand=" + url.QueryEscape(command) + "&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI"
}

// handlerSeeds are Tencent's documented samples (reference: Tencent Cloud Live webhook
// pages) and hostile variants.
func handlerSeeds() [][2]string {
	samples := []string{
		`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":"tandy-test-rest","RoomName":"tandy-test-rest","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":1703589922,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`,
		`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"admin","RoomId":"tandy-test-rest","EventType":"DestroyByUser","EventTime":1703589922780,"RoomInfo":{"RoomName":"live name","RoomType":"Live","Owner_Account":144115216631667826,"IsSeatEnabled":true,"TakeSeatMode":"FreeToTake","MaxMemberCount":400,"MaxSeatCount":4,"Category":[1,2,3],"CustomInfo":"","IsMessageDisabled":false,"CoverURL":"cover url","ActivityStatus":0,"IsPublicVisible":false,"ViewCount":0,"BackgroundURL":"background url","IsUnlimitedRoomEnabled":true},"Statistic":{"TotalViewers":0,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0}}`,
		`{"CallbackCommand":"Live.CallbackAfterUpdateRoomInfo","Operator_Account":"bob","RoomInfo":{"RoomId":"live-room","RoomName":"rname-123","MaxMemberCount":300,"IsMessageDisabled":false,"CoverURL":"https://xxxx.png","Category":[1,2,3],"ActivityStatus":1,"IsPublicVisible":false,"TakeSeatMode":"ApplyToTake","CustomInfo":"custom123"},"EventTime":1670574414123}`,
		`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"room_id","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":1703589922780}`,
		`{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"room_id","EventTime":1703589922780,"Operator_Account":"admin","CurrentOwner_Account":"user2","OriginalOwner_Account":"user1"}`,
		`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"room_id","EventTime":1703589922780,"Operator_Account":"admin","Admin_Account":["user1","user2"],"opType":"add"}`,
		`{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"rid-123","SeatList":[{"Index":1,"Member_Account":144115233775727695,"IsTakenDisabled":false,"IsVideoDisabled":false,"IsAudioDisabled":false}],"EventTime":1670574414123}`,
		`{"CallbackCommand":"Live.CallbackAfterSetMetadata","Operator_Account":"brennanli","RoomId":"live-room1111","Metadata":[{"Key":"key1","Value":"value1"},{"Key":"key2","Value":"value2"}],"EventTime":1739965885831}`,
		`{"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"brennanli","RoomId":"live-room1111","Keys":["key1","key2"],"EventTime":1739966441121}`,
		`{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","Operator_Account":"brennanli","EventTime":1739966441121,"CurRoomCount":400,"MaxRoomCount":500}`,
		`{"CallbackCommand":"Live.CallbackBeforeSendGift","Operator_Account":"brennanli","RoomId":"room_id","GiftWater":{"From_Account":"from","To_Account":["to1"],"Time":1703589922,"GiftId":"gift1","Count":1,"Coins":1000}}`,
	}
	var seeds [][2]string
	for _, body := range samples {
		var head struct{ CallbackCommand string }
		_ = json.Unmarshal([]byte(body), &head)
		seeds = append(seeds, [2]string{fuzzQuery(head.CallbackCommand), body})
	}
	create := samples[0]
	member := samples[3]
	seeds = append(seeds,
		// The documented spelling variants of the query.
		[2]string{strings.Replace(fuzzQuery(tencent.CommandMemberStateChanged), "CallbackAfterMemberStateChanged", "CallbackMemberStateChanged", 1), member},
		[2]string{strings.Replace(fuzzQuery(tencent.CommandCreateRoom), "SdkAppid", "SdkAppId", 1), create},
		// A room the store refuses, and an unknown member event type.
		[2]string{fuzzQuery(tencent.CommandCreateRoom), strings.ReplaceAll(create, "tandy-test-rest", "down-room")},
		[2]string{fuzzQuery(tencent.CommandMemberStateChanged), strings.Replace(member, "Online", "Sideways", 1)},
		// Tencent's documented Sign example: long stale.
		[2]string{fuzzQuery(tencent.CommandCreateRoom) + "&Sign=17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061&RequestTime=1669872112", create},
		[2]string{fuzzQuery(tencent.CommandCreateRoom) + "&Sign=17773BC39A671D7B9AA835458704D2A6DB81360A5940292B587D6D760D484061&RequestTime=+1669872112", create},
		[2]string{fuzzQuery(tencent.CommandCreateRoom) + "&Sign=zz&RequestTime=99999999999999999999", create},
		[2]string{"SdkAppid=1400000001&CallbackCommand=Live.CallbackAfterCreateRoom", create},
		[2]string{"SdkAppid=1400000000&SdkAppid=1&CallbackCommand=Live.CallbackAfterCreateRoom;x=%zz", create},
		[2]string{"", ""},
		[2]string{fuzzQuery("Live." + strings.Repeat("A", 2000)), `{"CallbackCommand":"Live.` + strings.Repeat("A", 2000) + `"}`},
		[2]string{fuzzQuery(tencent.CommandCreateRoom), create + ` {"CallbackCommand":"Live.CallbackAfterCreateRoom"}`},
		[2]string{fuzzQuery(tencent.CommandCreateRoom), strings.Repeat("[", 10000)},
		[2]string{fuzzQuery(tencent.CommandDestroyRoom), `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"a\u0000b","EventTime":1e400}`},
		[2]string{fuzzQuery(tencent.CommandDestroyRoom), "{\"CallbackCommand\":\"Live.CallbackAfterDestroyRoom\",\"RoomId\":\"\xff\xfe\"}"},
		[2]string{fuzzQuery(tencent.CommandDestroyRoom), `{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":"x","RoomId":"y","EventTime":-1}`},
		[2]string{fuzzQuery(tencent.CommandCreateRoom), `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":null}`},
		[2]string{fuzzQuery(tencent.CommandSeatInfoChanged), `{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"r","SeatList":[{"Index":-5},{"Index":99999999999}]}`},
		[2]string{fuzzQuery("Live.CallbackAfterCreateBattle"), `{"CallbackCommand":"Live.CallbackAfterCreateBattle","Pad":"` + strings.Repeat("x", MaxOtherBodyBytes) + `"}`},
	)
	return seeds
}

const fuzzToken = "fuzz-token"

var fuzzStatuses = []int{200, 400, 401, 403, 405, 413, 503}

// FuzzHandler drives the whole handler with any query and body, on an in-memory store
// that refuses rooms whose RoomId contains "down". A query without Sign and RequestTime
// is signed validly, so that most inputs get past authentication. `go test` runs the
// seeds; `make fuzz` explores.
func FuzzHandler(f *testing.F) {
	for _, s := range handlerSeeds() {
		f.Add(s[0], []byte(s[1]))
	}
	metrics := NewMetrics(nil)
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		store := newMemStore()
		store.refuse = func(roomID string) error {
			if strings.Contains(roomID, "down") {
				return errStoreDown
			}
			return nil
		}
		fwd := &fakeForwarder{}
		// The count lane is not started: member changes it takes are acknowledged, not written.
		counts := audience.New(audience.Config{Log: logr.Discard()}, onlyStore(store))
		s := newServer(Options{Timeout: time.Second}, memStores(store), counts, metrics, logr.Discard())
		quota := &fakeQuota{}
		s.quota = quota
		unitApp{tokens: []string{fuzzToken}, forwarder: fwd}.serve(t, s)

		params, _ := url.ParseQuery(query)
		signed := queryValue(params, "Sign") == "" && queryValue(params, "RequestTime") == ""
		if signed {
			rt := strconv.FormatInt(time.Now().Unix(), 10)
			query += "&RequestTime=" + rt + "&Sign=" + Sign(fuzzToken, rt)
			params, _ = url.ParseQuery(query)
			// A query that hides our parameters behind its own spelling is not signed.
			signed = queryValue(params, "RequestTime") == rt && queryValue(params, "Sign") == Sign(fuzzToken, rt)
		}
		req := &http.Request{
			Method: http.MethodPost, URL: &url.URL{Path: "/callback", RawQuery: query},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
			Host: "callbacks.example.com", RemoteAddr: "192.0.2.1:4242",
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)

		if !slices.Contains(fuzzStatuses, rec.Code) {
			t.Fatalf("status %d is not a documented one", rec.Code)
		}
		checkAnswer(t, rec)

		command := queryValue(params, "CallbackCommand")
		for _, queued := range fwd.bodies() {
			if int64(len(queued)) > bodyLimit(command) {
				t.Fatalf("queued a %d-byte body for %q", len(queued), command)
			}
		}
		cb, decodeErr := tencent.Decode(body, command)
		valid := signed && queryValue(params, "SdkAppid") == strconv.Itoa(testAppID) &&
			int64(len(body)) <= bodyLimit(command) && decodeErr == nil
		if !valid {
			if rec.Code == http.StatusOK && !signed && queryValue(params, "Sign") != "" {
				// Only a valid Sign gets past: the fuzzer cannot forge one.
				t.Fatalf("accepted a callback with a Sign of its own")
			}
			return
		}
		counted := cb.Command == tencent.CommandMemberStateChanged && !ignoredMemberEvent(cb)
		lifecycle := tencent.IsRoomCommand(cb.Command) && cb.Command != tencent.CommandMemberStateChanged
		refused := strings.Contains(cb.Room(), "down") && lifecycle
		switch {
		case refused && rec.Code != http.StatusServiceUnavailable:
			t.Fatalf("a callback the store refused was answered %d", rec.Code)
		case !refused && rec.Code != http.StatusOK:
			t.Fatalf("a signed valid callback was refused: %d %s", rec.Code, rec.Body)
		case rec.Code == http.StatusOK && lifecycle && store.appliedTo(cb.Room()) == 0:
			t.Fatalf("200 for a room callback the store never accepted")
		case rec.Code == http.StatusOK && counted:
			if n, _ := counts.Backlog(); n == 0 {
				t.Fatalf("200 for a member callback the count lane never took")
			}
		case rec.Code == http.StatusOK && cb.Command == tencent.CommandCreateRoomReachingThreshold && len(quota.got) == 0:
			t.Fatalf("200 for a room quota warning never stored")
		}
	})
}

// ignoredMemberEvent is a member callback of an event type the operator does not count.
func ignoredMemberEvent(cb *tencent.Callback) bool {
	return cb.Command == tencent.CommandMemberStateChanged && cb.EventType != "Online" && cb.EventType != "Offline"
}

// checkAnswer checks that the answer is Tencent's JSON and agrees with the status.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &fields); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, rec.Body)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || len(fields) != 3 {
		t.Fatalf("answer is not {ActionStatus, ErrorCode, ErrorInfo}: %v: %s", err, rec.Body)
	}
	want := answer{ActionStatus: "FAIL", ErrorCode: rec.Code}
	if rec.Code == http.StatusOK {
		want = answer{ActionStatus: "OK"}
	}
	if a.ActionStatus != want.ActionStatus || a.ErrorCode != want.ErrorCode || (rec.Code != http.StatusOK) != (a.ErrorInfo != "") {
		t.Fatalf("status %d answered %+v", rec.Code, a)
	}
	if len(a.ErrorInfo) > maxErrorInfoBytes+len(fmt.Sprintf("…[%d bytes]", MaxBodyBytes)) {
		t.Fatalf("ErrorInfo of %d bytes", len(a.ErrorInfo))
	}
}
