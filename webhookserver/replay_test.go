package webhookserver

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// TestReplayVariantsAreDuplicates: respelling a delivery's Sign, RequestTime or JSON
// whitespace does not make it count again.
func TestReplayVariantsAreDuplicates(t *testing.T) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	body := createBody("replayed", "u", time.Now().Unix())
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(body), "", "    "); err != nil {
		t.Fatal(err)
	}
	delivery := signedQuery(tencent.CommandCreateRoom, firstToken, rt)
	with := func(key, value string) string {
		q := signedQuery(tencent.CommandCreateRoom, firstToken, rt)
		q.Set(key, value)
		return q.Encode()
	}
	type variant struct{ query, body string }
	respelt := map[string]variant{
		"upper-case Sign":        {with("Sign", strings.ToUpper(delivery.Get("Sign"))), body},
		"re-indented body":       {delivery.Encode(), indented.String()},
		"body with outer spaces": {delivery.Encode(), "\n  " + body + " \r\n"},
	}
	// A RequestTime cannot be respelt under a checked Sign, which covers its spelling; it
	// can when Tencent signs but the operator accepts unsigned callbacks.
	unsignedRespelt := map[string]variant{
		"RequestTime with a leading 0": {with("RequestTime", "0"+rt), body},
		"RequestTime with a +":         {with("RequestTime", "+"+rt), body},
		"upper-case Sign":              {with("Sign", strings.ToUpper(delivery.Get("Sign"))), body},
	}
	for mode, c := range map[string]struct {
		app      unitApp
		variants map[string]variant
	}{
		"signed":   {signedApp, respelt},
		"unsigned": {unitApp{allowUnsigned: true}, unsignedRespelt},
	} {
		t.Run(mode, func(t *testing.T) {
			g := NewWithT(t)
			store := newMemStore()
			s := newUnitServerFor(t, Options{}, c.app, store, logr.Discard())
			g.Expect(serve(s, delivery.Encode(), []byte(body)).Code).To(Equal(http.StatusOK))
			g.Expect(store.appliedTo("replayed")).To(Equal(1))
			for name, v := range c.variants {
				before := testutil.ToFloat64(s.metrics.Duplicates.WithLabelValues(unitLabel))
				g.Expect(serve(s, v.query, []byte(v.body)).Code).To(Equal(http.StatusOK), name)
				g.Expect(testutil.ToFloat64(s.metrics.Duplicates.WithLabelValues(unitLabel))-before).To(BeEquivalentTo(1), "%s is acknowledged as a duplicate", name)
				g.Expect(store.appliedTo("replayed")).To(Equal(1), "%s is not applied again", name)
			}
			// A different event of the same second is still applied.
			g.Expect(serve(s, delivery.Encode(), []byte(createBody("replayed-other", "u", 1))).Code).To(Equal(http.StatusOK))
			g.Expect(store.appliedTo("replayed-other")).To(Equal(1))
		})
	}
}

// TestPanicReleasesReplayEntry: a delivery whose apply panics is answered 500 and
// forgotten, so an identical retry is processed rather than left waiting on it.
func TestPanicReleasesReplayEntry(t *testing.T) {
	g := NewWithT(t)
	store := newMemStore()
	store.panics.Store(true)
	logs := &lineLog{}
	s := newUnitServer(t, Options{}, store, logs.logger())
	hs := httptest.NewServer(s.Handler())
	defer closeUnlessFailed(t, hs)
	client := &http.Client{Timeout: 5 * time.Second}

	url := hs.URL + "/callback?" + signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode()
	body := createBody("panicky", "u", time.Now().Unix())
	post := func() (int, error) {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var a answer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	g.Expect(post()).To(Equal(http.StatusInternalServerError))
	g.Expect(testutil.ToFloat64(s.metrics.Rejections.WithLabelValues(unitLabel, reasonInternal))).To(BeEquivalentTo(1))
	g.Expect(logs.all()).To(ContainElement(And(
		HaveField("Error", true), HaveField("Text", ContainSubstring("store bug")), HaveField("Text", ContainSubstring("goroutine")))))

	store.panics.Store(false)
	g.Expect(post()).To(Equal(http.StatusOK), "the retry is processed")
	g.Expect(store.appliedTo("panicky")).To(Equal(1))
	g.Expect(post()).To(Equal(http.StatusOK))
	g.Expect(store.appliedTo("panicky")).To(Equal(1), "and remembered once applied")
}

// TestPanicOutsideApplyReleasesReplayEntry: a panic elsewhere in the handler goes to
// net/http, and the delivery is still released for a retry.
func TestPanicOutsideApplyReleasesReplayEntry(t *testing.T) {
	g := NewWithT(t)
	store, fwd := newMemStore(), &fakeForwarder{}
	fwd.panics.Store(true)
	s := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, forwarder: fwd}, store, logr.Discard())
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http reports the panic
	hs.Start()
	defer closeUnlessFailed(t, hs)
	client := &http.Client{Timeout: 5 * time.Second}
	url := hs.URL + "/callback?" + signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode()
	body := createBody("panicky-forward", "u", time.Now().Unix())

	_, err := client.Post(url, "application/json", strings.NewReader(body))
	g.Expect(err).To(HaveOccurred(), "net/http drops the connection of a panicking handler")
	fwd.panics.Store(false)
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred(), "the retry is not left waiting")
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(store.appliedTo("panicky-forward")).To(Equal(1))
}

// closeUnlessFailed closes hs, which waits for its handlers: after a failure one of them
// may wait forever.
func closeUnlessFailed(t *testing.T, hs *httptest.Server) {
	if !t.Failed() {
		hs.Close()
	}
}
