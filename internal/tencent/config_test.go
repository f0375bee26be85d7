package tencent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

func TestCallbackConfigLifecycle(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()
	if _, err := c.GetCallback(ctx); !tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
		t.Fatalf("get without a configuration: %v, want %d", err, tencent.CodeCallbackConfigAbsent)
	}
	if err := c.UpdateCallback(ctx, tencent.CallbackConfig{URL: "https://a.example/callback", Commands: []string{"x"}}); !tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
		t.Fatalf("update without a configuration: %v", err)
	}
	want := tencent.CallbackConfig{URL: "https://a.example/callback", Commands: tencent.OperatorCommands()}
	if err := c.SetCallback(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := c.SetCallback(ctx, want); !tencent.IsCode(err, tencent.CodeCallbackConfigExists) || tencent.IsRetryable(err) {
		t.Fatalf("second set: %v, want %d, not retried", err, tencent.CodeCallbackConfigExists)
	}
	got, err := c.GetCallback(ctx)
	if err != nil || !got.Equal(want) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	changed := tencent.CallbackConfig{URL: "https://b.example/callback", Commands: []string{tencent.CommandCreateRoom}}
	if err := c.UpdateCallback(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CallbackConfig(); !got.Equal(changed) {
		t.Fatalf("fake holds %+v", got)
	}
	if err := c.DeleteCallback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.CallbackConfig(); ok {
		t.Fatal("delete_callback left the configuration")
	}
}

func TestCallbackConfigChecksLocally(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()
	for _, cfg := range []tencent.CallbackConfig{
		{URL: "ftp://a.example", Commands: []string{"x"}},
		{URL: "https://a.example"},
		{URL: "https://a.example", Commands: []string{""}},
		{URL: "https://a.example/" + strings.Repeat("p", 1100), Commands: []string{"x"}},
	} {
		if err := c.SetCallback(ctx, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	for _, tok := range []string{"", strings.Repeat("t", tencent.MaxCallbackTokenBytes+1)} {
		if err := c.SetCallbackToken(ctx, tok, true); err == nil {
			t.Errorf("token of %d bytes accepted", len(tok))
		}
	}
	if n := s.Calls(tencent.RESTSetCallback) + s.Calls(tencent.RESTSetCallbackToken); n != 0 {
		t.Fatalf("%d requests for invalid arguments", n)
	}
}

func TestEqualIgnoresCommandOrder(t *testing.T) {
	a := tencent.CallbackConfig{URL: "u", Commands: []string{"b", "a", "a"}}
	if !a.Equal(tencent.CallbackConfig{URL: "u", Commands: []string{"a", "b"}}) {
		t.Error("the same set in another order differs")
	}
	if a.Equal(tencent.CallbackConfig{URL: "u", Commands: []string{"a"}}) || a.Equal(tencent.CallbackConfig{URL: "v", Commands: []string{"a", "b"}}) {
		t.Error("different configurations are equal")
	}
}

func TestSetCallbackToken(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	if err := c.SetCallbackToken(context.Background(), "first-token", true); err != nil {
		t.Fatal(err)
	}
	if got := s.CallbackToken(); got.Token != "first-token" || !got.Enabled {
		t.Fatalf("fake holds %+v", got)
	}
}

// A callback token travels in the request body; an error page or an API error that
// echoes the body must not carry it into conditions, Events or logs.
func TestErrorsNeverQuoteTheCallbackToken(t *testing.T) {
	const token = "0123456789abcdef-callback-token"
	for name, reply := range map[string]func(w http.ResponseWriter, body string){
		"API error": func(w http.ResponseWriter, body string) {
			fmt.Fprintf(w, `{"ActionStatus":"FAIL","ErrorCode":100002,"ErrorInfo":"bad request %s","RequestId":"%s"}`, strings.ReplaceAll(body, `"`, `'`), token)
		},
		"HTTP error page": func(w http.ResponseWriter, body string) {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream refused "+body)
		},
	} {
		t.Run(name, func(t *testing.T) {
			url := serve(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				reply(w, string(body))
			})
			c := newClient(t, url, func(cfg *tencent.Config) { cfg.MaxAttempts = 1 })
			err := c.SetCallbackToken(context.Background(), token, true)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "set_callback_token") {
				t.Fatalf("error quotes the token or lost its command: %v", err)
			}
		})
	}
}

func TestConfigRequestShape(t *testing.T) {
	rec, url := startRecorder(t, nil)
	c := newClient(t, url, nil)
	ctx := context.Background()
	cfg := tencent.CallbackConfig{URL: "https://a.example/callback", Commands: []string{"Live.CallbackAfterCreateRoom"}}
	tests := []struct {
		path, body string
		call       func() error
	}{
		{"/v4/live_config/set_callback", `{"Url":"https://a.example/callback","CallbackCommandList":["Live.CallbackAfterCreateRoom"]}`, func() error { return c.SetCallback(ctx, cfg) }},
		{"/v4/live_config/update_callback", `{"Url":"https://a.example/callback","CallbackCommandList":["Live.CallbackAfterCreateRoom"]}`, func() error { return c.UpdateCallback(ctx, cfg) }},
		{"/v4/live_config/get_callback", `{}`, func() error { _, err := c.GetCallback(ctx); return err }},
		{"/v4/live_config/delete_callback", `{}`, func() error { return c.DeleteCallback(ctx) }},
		{"/v4/live_config/set_callback_token", `{"Token":"t","IsTokenEnable":true}`, func() error { return c.SetCallbackToken(ctx, "t", true) }},
		{"/v4/live_engine_http_srv/set_room_metadata", `{"RoomId":"r","Metadata":[{"Key":"a","Value":"1"},{"Key":"b","Value":""}]}`,
			func() error { return c.SetRoomMetadata(ctx, "r", map[string]string{"b": "", "a": "1"}) }},
		{"/v4/live_engine_http_srv/del_room_metadata", `{"RoomId":"r","Keys":["a","b"]}`, func() error { return c.DelRoomMetadata(ctx, "r", []string{"b", "a"}) }},
		{"/v4/live_engine_http_srv/get_room_metadata", `{"RoomId":"r","Keys":[]}`, func() error { _, err := c.GetRoomMetadata(ctx, "r", nil); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		reqs := rec.all()
		got := reqs[len(reqs)-1]
		if got.path != tt.path || got.body != tt.body {
			t.Errorf("sent %s %s, want %s %s", got.path, got.body, tt.path, tt.body)
		}
	}
}

func TestRoomMetadata(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()
	if err := c.SetRoomMetadata(ctx, "nowhere", map[string]string{"a": "1"}); !tencent.IsCode(err, tencent.CodeRoomNotFound) {
		t.Fatalf("metadata of a missing room: %v", err)
	}
	if err := c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRoomMetadata(ctx, "r", map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRoomMetadata(ctx, "r", map[string]string{"b": "two"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRoomMetadata(ctx, "r", nil)
	if err != nil || len(got) != 2 || got["a"] != "1" || got["b"] != "two" {
		t.Fatalf("get: %v, %v", got, err)
	}
	if got, _ := c.GetRoomMetadata(ctx, "r", []string{"a", "zz"}); len(got) != 1 || got["a"] != "1" {
		t.Fatalf("get a: %v", got)
	}
	if err := c.DelRoomMetadata(ctx, "r", []string{"a", "never-set"}); err != nil {
		t.Fatal(err)
	}
	if got := s.RoomMetadata("r"); len(got) != 1 || got["b"] != "two" {
		t.Fatalf("after delete: %v", got)
	}
	// Tencent counts the keys the room has already.
	full := map[string]string{}
	for i := range tencent.MaxMetadataKeys {
		full[fmt.Sprint("k", i)] = "v"
	}
	if err := c.SetRoomMetadata(ctx, "r", full); !tencent.IsCode(err, tencent.CodeMetadataTooManyKeys) || tencent.IsRetryable(err) {
		t.Fatalf("an eleventh key: %v", err)
	}
	if _, err := c.DestroyRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got := s.RoomMetadata("r"); len(got) != 0 {
		t.Fatalf("a destroyed room keeps its metadata: %v", got)
	}
}

func TestRoomMetadataLimitsCheckedLocally(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	tooMany := map[string]string{}
	for i := range tencent.MaxMetadataKeys + 1 {
		tooMany[fmt.Sprint("k", i)] = ""
	}
	bigTotal := map[string]string{}
	for i := range 9 {
		bigTotal[fmt.Sprint("k", i)] = strings.Repeat("v", tencent.MaxMetadataValueBytes)
	}
	for name, md := range map[string]map[string]string{
		"too many keys": tooMany,
		"empty key":     {"": "v"},
		"long key":      {strings.Repeat("k", tencent.MaxMetadataKeyBytes+1): "v"},
		"long value":    {"k": strings.Repeat("v", tencent.MaxMetadataValueBytes+1)},
		"large total":   bigTotal,
	} {
		if err := c.SetRoomMetadata(context.Background(), "r", md); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := s.Calls(tencent.RESTSetRoomMetadata); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}
