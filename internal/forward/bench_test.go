package forward

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
)

// The two benchmarks post the same callback to the same kind of backend, once directly
// and once through Forward; the difference is what forwarding adds to a blocking answer.

var benchBody = []byte(`{"CallbackCommand":"Live.CallbackBeforeSendGift","Operator_Account":"u1","RoomId":"room_1",` +
	`"GiftWater":{"From_Account":"u1","To_Account":["u2"],"Time":1703589922,"GiftId":"gift1","Count":1,"Coins":1000}}`)

func benchBackend(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		answerOK(0, w, r)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func BenchmarkBlockingDirect(b *testing.B) {
	srv := benchBackend(b)
	client := &http.Client{Transport: newTransport(DefaultTimeout)}
	target := srv.URL + "/cb?" + tencentQuery
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(benchBody))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

func BenchmarkBlockingForwarded(b *testing.B) {
	srv := benchBackend(b)
	f, err := New(Config{URL: srv.URL + "/cb", Log: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if a := f.Forward(ctx, tencentQuery, benchBody); !a.FromBackend {
			b.Fatalf("answer not from backend: %s", a.Body)
		}
	}
}
