package faketencent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

const (
	appID = 1400000001
	admin = "administrator"
	key   = "fake-secret-key"
)

type envelope struct {
	ActionStatus string
	ErrorCode    int
	ErrorInfo    string
	RequestID    string `json:"RequestId"`
	Response     json.RawMessage
}

func validQuery(t *testing.T) url.Values {
	t.Helper()
	sig, err := tencent.GenUserSig(appID, key, admin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{
		"sdkappid": {fmt.Sprint(appID)}, "identifier": {admin}, "usersig": {sig},
		"random": {"4294967295"}, "contenttype": {"json"},
	}
}

// post sends a raw request and decodes the envelope of a 200 answer.
func post(t *testing.T, s *Server, method, command string, q url.Values, body string) (int, envelope) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+"/"+tencent.ServiceOf(command)+"/"+command+"?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env envelope
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		if env.RequestID == "" || (env.ErrorCode == 0) != (env.ActionStatus == "OK") {
			t.Errorf("inconsistent envelope %+v", env)
		}
	}
	return resp.StatusCode, env
}

func call(t *testing.T, s *Server, command, body string) envelope {
	t.Helper()
	status, env := post(t, s, http.MethodPost, command, validQuery(t), body)
	if status != http.StatusOK {
		t.Fatalf("%s: HTTP %d", command, status)
	}
	return env
}

func TestAuthentication(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	expired, _ := tencent.GenUserSig(appID, key, admin, time.Second, time.Now().Add(-time.Hour))
	otherKey, _ := tencent.GenUserSig(appID, "other", admin, time.Hour, time.Now())
	otherUser, _ := tencent.GenUserSig(appID, key, "bob", time.Hour, time.Now())

	tests := []struct {
		name    string
		method  string
		command string
		edit    func(url.Values)
		body    string
		status  int
		code    int
	}{
		{"valid", http.MethodPost, tencent.RESTGetRoomList, nil, `{"Next":""}`, 200, 0},
		{"GET", http.MethodGet, tencent.RESTGetRoomList, nil, `{}`, 405, 0},
		{"unknown command", http.MethodPost, "drop_everything", nil, `{}`, 404, 0},
		{"config command", http.MethodPost, tencent.RESTGetCallback, nil, `{}`, 200, tencent.CodeCallbackConfigAbsent},
		{"config command, unauthenticated", http.MethodPost, tencent.RESTDeleteCallback, func(q url.Values) { q.Set("usersig", otherKey) }, `{}`, 200, tencent.CodeUserSigInvalid},
		{"contenttype", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("contenttype", "xml") }, `{}`, 200, tencent.CodeHTTPParse},
		{"no sdkappid", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Del("sdkappid") }, `{}`, 200, tencent.CodeSDKAppIDMissing},
		{"wrong sdkappid", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("sdkappid", "1") }, `{}`, 200, tencent.CodeInvalidSDKAppID},
		{"not admin", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("identifier", "bob"); q.Set("usersig", otherUser) }, `{}`, 200, tencent.CodeAdminRequired},
		{"no random", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Del("random") }, `{}`, 200, tencent.CodeHTTPParse},
		{"random above uint32", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("random", "4294967296") }, `{}`, 200, tencent.CodeHTTPParse},
		{"no usersig", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Del("usersig") }, `{}`, 200, tencent.CodeUserSigInvalid},
		{"usersig of another key", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("usersig", otherKey) }, `{}`, 200, tencent.CodeUserSigInvalid},
		{"expired usersig", http.MethodPost, tencent.RESTGetRoomList, func(q url.Values) { q.Set("usersig", expired) }, `{}`, 200, tencent.CodeUserSigExpired},
		{"empty body", http.MethodPost, tencent.RESTGetRoomInfo, nil, ``, 200, tencent.CodeHTTPParse},
		{"not JSON", http.MethodPost, tencent.RESTGetRoomInfo, nil, `{`, 200, tencent.CodeJSONParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := validQuery(t)
			if tt.edit != nil {
				tt.edit(q)
			}
			status, env := post(t, s, tt.method, tt.command, q, tt.body)
			if status != tt.status || env.ErrorCode != tt.code {
				t.Errorf("got HTTP %d code %d (%s), want HTTP %d code %d", status, env.ErrorCode, env.ErrorInfo, tt.status, tt.code)
			}
		})
	}

	s.SetSecretKey("rotated")
	if env := call(t, s, tencent.RESTGetRoomList, `{"Next":""}`); env.ErrorCode != tencent.CodeUserSigInvalid {
		t.Errorf("old key after rotation: code %d, want %d", env.ErrorCode, tencent.CodeUserSigInvalid)
	}
}

func TestRoomLifecycle(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	s.SetNow(func() time.Time { return time.Unix(1700000000, 0) })
	s.SetSecretKey(key)

	steps := []struct {
		command, body string
		code          int
	}{
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r1","RoomType":"Live"}}`, 0},
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r1","RoomType":"Live","Owner_Account":"administrator"}}`, tencent.CodeRoomExistsSameOwner},
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r1","RoomType":"Live","Owner_Account":"alice"}}`, tencent.CodeRoomExists},
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r2"}}`, tencent.CodeInvalidParam},
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"","RoomType":"Live"}}`, tencent.CodeInvalidParam},
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r2","RoomType":"Live","Category":[1,2,3,4]}}`, tencent.CodeInvalidParam},
		{tencent.RESTCreateRoom, `{}`, tencent.CodeInvalidParam},
		{tencent.RESTUpdateRoomInfo, `{"RoomInfo":{"RoomId":"r1","RoomName":"renamed","TakeSeatMode":2}}`, 0},
		{tencent.RESTUpdateRoomInfo, `{"RoomInfo":{"RoomId":"r1","Notice":"` + strings.Repeat("x", 101) + `"}}`, tencent.CodeInvalidParam},
		{tencent.RESTUpdateRoomInfo, `{"RoomInfo":{"RoomId":"nope","RoomName":"x"}}`, tencent.CodeRoomNotFound},
		{tencent.RESTGetRoomInfo, `{"RoomId":"nope"}`, tencent.CodeRoomNotFound},
		{tencent.RESTDestroyRoom, `{"RoomId":"nope"}`, tencent.CodeRoomNotFound},
		{tencent.RESTDestroyRoom, `{}`, tencent.CodeInvalidParam},
	}
	for i, st := range steps {
		if env := call(t, s, st.command, st.body); env.ErrorCode != st.code {
			t.Errorf("step %d %s %s: code %d (%s), want %d", i, st.command, st.body, env.ErrorCode, env.ErrorInfo, st.code)
		}
	}

	env := call(t, s, tencent.RESTGetRoomInfo, `{"RoomId":"r1"}`)
	var got struct{ RoomInfo tencent.RoomInfo }
	if err := json.Unmarshal(env.Response, &got); err != nil {
		t.Fatal(err)
	}
	ri := got.RoomInfo
	if ri.OwnerAccount != admin || ri.CreateTime != 1700000000 || *ri.RoomName != "renamed" || ri.TakeSeatMode != tencent.SeatModeApplyToTake {
		t.Errorf("room r1 = %+v", ri)
	}

	env = call(t, s, tencent.RESTDestroyRoom, `{"RoomId":"r1"}`)
	if env.ErrorCode != 0 || !strings.Contains(string(env.Response), `"Statistic"`) {
		t.Errorf("destroy: %+v %s", env, env.Response)
	}
	if _, ok := s.Room("r1"); ok || len(s.Rooms()) != 0 {
		t.Error("r1 still stored after destroy")
	}
	if s.Calls(tencent.RESTCreateRoom) != 7 || s.Calls(tencent.RESTDestroyRoom) != 3 {
		t.Errorf("calls: create %d, destroy %d", s.Calls(tencent.RESTCreateRoom), s.Calls(tencent.RESTDestroyRoom))
	}
}

func TestStoreReturnsCopies(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	name := "original"
	s.AddRoom(tencent.RoomInfo{RoomID: "r", RoomName: &name})
	name = "changed by caller"
	ri, _ := s.Room("r")
	*ri.RoomName = "changed again"
	if ri, _ := s.Room("r"); *ri.RoomName != "original" {
		t.Errorf("store changed through a pointer: %q", *ri.RoomName)
	}
}

// listAll pages with raw requests and returns the RoomIds in order.
func listAll(t *testing.T, s *Server, count int, between func(page int)) []string {
	t.Helper()
	var ids []string
	next := ""
	for page := 1; page < 1000; page++ {
		env := call(t, s, tencent.RESTGetRoomList, fmt.Sprintf(`{"Next":%q,"Count":%d}`, next, count))
		if env.ErrorCode != 0 {
			t.Fatalf("page %d: %+v", page, env)
		}
		var out struct {
			Next     string
			RoomList []tencent.RoomInfo
		}
		if err := json.Unmarshal(env.Response, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.RoomList) > count {
			t.Fatalf("page %d has %d rooms, more than %d", page, len(out.RoomList), count)
		}
		for _, ri := range out.RoomList {
			ids = append(ids, string(ri.RoomID))
		}
		if out.Next == "" {
			return ids
		}
		if between != nil {
			between(page)
		}
		next = out.Next
	}
	t.Fatal("listing does not end")
	return nil
}

func TestListPaging(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	s.SetListRateLimit(0)
	for i := range 45 {
		s.AddRoom(tencent.RoomInfo{RoomID: tencent.FlexString(fmt.Sprintf("room-%03d", i))})
	}

	ids := listAll(t, s, 20, nil)
	if len(ids) != 45 || ids[0] != "room-000" || ids[44] != "room-044" || s.Calls(tencent.RESTGetRoomList) != 3 {
		t.Errorf("listed %d rooms in %d calls: %v", len(ids), s.Calls(tencent.RESTGetRoomList), ids)
	}

	// Rooms removed between pages do not shift the cursor: room-003 was already listed,
	// room-010 is skipped and room-011 follows page 1.
	ids = listAll(t, s, 10, func(page int) {
		if page == 1 {
			s.RemoveRoom("room-003")
			s.RemoveRoom("room-010")
		}
	})
	if len(ids) != 44 || ids[10] != "room-011" {
		t.Errorf("after removals listed %d rooms: %v", len(ids), ids)
	}

	for _, body := range []string{`{"Next":"garbage!","Count":20}`, `{"Next":"","Count":21}`, `{"Count":20}`} {
		if env := call(t, s, tencent.RESTGetRoomList, body); env.ErrorCode != tencent.CodeInvalidParam {
			t.Errorf("%s: code %d, want %d", body, env.ErrorCode, tencent.CodeInvalidParam)
		}
	}
}

func TestFaults(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	s.SetListRateLimit(0)
	for i := range 50 {
		s.AddRoom(tencent.RoomInfo{RoomID: tencent.FlexString(fmt.Sprintf("room-%03d", i))})
	}

	s.FailNext(tencent.RESTGetRoomInfo, tencent.CodeInternal, 2)
	s.FailNext(tencent.RESTGetRoomInfo, tencent.CodeRateLimited, 1)
	var codes []int
	for range 4 {
		codes = append(codes, call(t, s, tencent.RESTGetRoomInfo, `{"RoomId":"room-001"}`).ErrorCode)
	}
	if fmt.Sprint(codes) != fmt.Sprint([]int{tencent.CodeInternal, tencent.CodeInternal, tencent.CodeRateLimited, 0}) {
		t.Errorf("codes %v", codes)
	}

	s.FailListPage(2, tencent.CodeInternal)
	env := call(t, s, tencent.RESTGetRoomList, `{"Next":"","Count":20}`)
	var out struct{ Next string }
	if err := json.Unmarshal(env.Response, &out); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if env := call(t, s, tencent.RESTGetRoomList, fmt.Sprintf(`{"Next":%q}`, out.Next)); env.ErrorCode != tencent.CodeInternal {
			t.Errorf("page 2: code %d, want %d", env.ErrorCode, tencent.CodeInternal)
		}
	}
	s.FailListPage(2, 0)
	if env := call(t, s, tencent.RESTGetRoomList, fmt.Sprintf(`{"Next":%q}`, out.Next)); env.ErrorCode != 0 {
		t.Errorf("page 2 after clearing: code %d", env.ErrorCode)
	}

	s.SetListRateLimit(1)
	first := call(t, s, tencent.RESTGetRoomList, `{"Next":""}`).ErrorCode
	second := call(t, s, tencent.RESTGetRoomList, `{"Next":""}`).ErrorCode
	if first != 0 || second != tencent.CodeRateLimited {
		t.Errorf("rate limit: codes %d, %d; want 0, %d", first, second, tencent.CodeRateLimited)
	}
}

func TestLatencyEndsWithTheClient(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			s.URL()+"/"+tencent.RESTService+"/"+tencent.RESTGetRoomInfo+"?"+validQuery(t).Encode(), strings.NewReader(`{}`))
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	for s.Calls(tencent.RESTGetRoomInfo) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("request finished despite an hour of latency")
	}
	// Close would hang here if the handler still waited.
}

func TestCommandsOnlyUnderTheirService(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	for _, path := range []string{"/" + tencent.RESTService + "/" + tencent.RESTSetCallback, "/" + tencent.ConfigService + "/" + tencent.RESTGetRoomList} {
		resp, err := http.Post(s.URL()+path+"?"+validQuery(t).Encode(), "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: HTTP %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestCallbackConfigFaultsAndToken(t *testing.T) {
	s := New(appID, admin, key)
	defer s.Close()
	s.FailNext(tencent.RESTSetCallback, tencent.CodeInternal, 1)
	body := `{"Url":"https://a.example/callback","CallbackCommandList":["Live.CallbackAfterCreateRoom"]}`
	if env := call(t, s, tencent.RESTSetCallback, body); env.ErrorCode != tencent.CodeInternal {
		t.Fatalf("injected fault: code %d", env.ErrorCode)
	}
	if env := call(t, s, tencent.RESTSetCallback, body); env.ErrorCode != 0 {
		t.Fatalf("set: code %d %s", env.ErrorCode, env.ErrorInfo)
	}
	if env := call(t, s, tencent.RESTSetCallback, body); env.ErrorCode != tencent.CodeCallbackConfigExists {
		t.Fatalf("second set: code %d", env.ErrorCode)
	}
	if env := call(t, s, tencent.RESTSetCallback, `{"Url":"a.example","CallbackCommandList":["x"]}`); env.ErrorCode != tencent.CodeInvalidParam {
		t.Fatalf("URL without scheme: code %d", env.ErrorCode)
	}

	if env := call(t, s, tencent.RESTSetCallbackToken, `{"Token":"t1"}`); env.ErrorCode != tencent.CodeInvalidParam {
		t.Fatalf("first token without IsTokenEnable: code %d", env.ErrorCode)
	}
	if env := call(t, s, tencent.RESTSetCallbackToken, `{"Token":"t1","IsTokenEnable":true}`); env.ErrorCode != 0 {
		t.Fatalf("first token: code %d", env.ErrorCode)
	}
	if env := call(t, s, tencent.RESTSetCallbackToken, `{"Token":"t2"}`); env.ErrorCode != 0 {
		t.Fatalf("token change alone: code %d", env.ErrorCode)
	}
	if got := s.CallbackToken(); got != (CallbackToken{Token: "t2", Enabled: true}) {
		t.Fatalf("token %+v", got)
	}
}
