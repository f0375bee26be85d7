package webhookserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

func TestClip(t *testing.T) {
	cases := map[string]struct {
		in   string
		n    int
		want string
	}{
		"short":                 {"abc", 8, "abc"},
		"exact":                 {"abcdefgh", 8, "abcdefgh"},
		"long":                  {strings.Repeat("x", 20), 8, "xxxxxxxx…[20 bytes]"},
		"cut inside a rune":     {"aaaaaaa€€", 8, "aaaaaaa…[13 bytes]"},
		"cut after a full rune": {"aaaaa€bb", 8, "aaaaa€…[10 bytes]"},
	}
	for name, c := range cases {
		if got := clip(c.in, c.n); got != c.want {
			t.Errorf("%s: clip(%q, %d) = %q, want %q", name, c.in, c.n, got, c.want)
		}
	}
}

// TestLongCommandLogsABoundedLine: the query's command, quoted in the log line and in the
// decode error, is logged and answered cut to a few hundred bytes.
func TestLongCommandLogsABoundedLine(t *testing.T) {
	g := NewWithT(t)
	logs := &lineLog{}
	s := newUnitServer(t, Options{}, newMemStore(), logs.logger())
	logs.reset()
	command := "Live." + strings.Repeat("A", 15<<10)
	rec := serve(s, signedQuery(command, firstToken, nowRequestTime()).Encode(), []byte(createBody("r", "u", 1)))
	g.Expect(rec.Code).To(Equal(http.StatusBadRequest))
	g.Expect(rec.Body.Len()).To(BeNumerically("<", 512), "the answer quotes the command cut short")

	lines := logs.all()
	g.Expect(lines).To(HaveLen(1))
	g.Expect(lines[0].Error).To(BeFalse(), "a rejection is no error of the server's")
	g.Expect(len(lines[0].Text)).To(BeNumerically("<", 1024))
	g.Expect(lines[0].Text).To(ContainSubstring("bytes]"), "cut values say how long they were")
}

// TestRejectionFloodLogsBoundedLines: a burst of bad requests writes the first few lines
// and then one that counts the rest; the metric counts every one.
func TestRejectionFloodLogsBoundedLines(t *testing.T) {
	g := NewWithT(t)
	logs := &lineLog{}
	s := newUnitServer(t, Options{}, newMemStore(), logs.logger())
	logs.reset()
	s.throttleLogs(200 * time.Millisecond)
	query := signedQuery(tencent.CommandCreateRoom, "not-the-token", nowRequestTime()).Encode()
	for range 1000 {
		g.Expect(serve(s, query, []byte(createBody("flood", "u", 1))).Code).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(logs.all()).To(HaveLen(logBurst))
	g.Eventually(logs.all).Should(HaveLen(logBurst + 1))
	summary := logs.all()[logBurst].Text
	g.Expect(summary).To(ContainSubstring("Rejected callbacks not logged"))
	g.Expect(summary).To(ContainSubstring(`"count"=990`))
	g.Expect(testutil.ToFloat64(s.metrics.Rejections.WithLabelValues(unitLabel, reasonBadSign))).To(BeEquivalentTo(1000))
}

// TestNotStoredLoggedWithoutStack: a callback the store refuses is logged at info level
// (visible, no stack trace), with its error cut short.
func TestNotStoredLoggedWithoutStack(t *testing.T) {
	g := NewWithT(t)
	logs := &lineLog{}
	store := newMemStore()
	store.refuse = func(string) error { return context.DeadlineExceeded }
	s := newUnitServer(t, Options{}, store, logs.logger())
	logs.reset()
	rec := serve(s, signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode(), []byte(createBody("refused", "u", 1)))
	g.Expect(rec.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(logs.all()).To(ConsistOf(And(
		HaveField("Error", false),
		HaveField("Text", ContainSubstring("Callback not stored")),
		HaveField("Text", ContainSubstring(`"error"="context deadline exceeded"`)),
	)))
}
