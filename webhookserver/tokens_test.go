package webhookserver

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// writeAtomically replaces path the way a mounted Secret changes: a new file renamed
// over the old one, never a half-written file.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestNewTokensRefusesConfiguredSourceWithoutToken(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name, file, env, want string
	}{
		{"empty file", file("empty", ""), "", "holds no token"},
		{"comments only", file("comments", "# the token goes here\n\n   \n#another\n"), "", "holds no token"},
		{"missing file", filepath.Join(dir, "missing"), "", "reading callback tokens"},
		{"placeholder only", file("placeholder", "# demo\n"+PlaceholderToken+"\n"), "", "placeholder"},
		{"placeholder next to a token", file("mixed", "real-token\n"+PlaceholderToken+"\n"), "", "placeholder"},
		{"empty file, tokens in env", filepath.Join(dir, "empty"), "env-token", "holds no token"},
		{"env comments only", "", "# nothing\n", "LIVEROOM_CALLBACK_TOKENS holds no token"},
		{"env placeholder", "", PlaceholderToken, "placeholder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewTokens(c.file, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}

	unsigned, err := NewTokens("", "  \n")
	if err != nil || unsigned.Enabled() {
		t.Fatalf("no source: err=%v enabled=%v, want unsigned", err, unsigned.Enabled())
	}
	both, err := NewTokens(file("good", "# rotation\nnew-token\nold-token\n"), "env-token")
	if err != nil || both.Count() != 3 {
		t.Fatalf("got %v with %d tokens, want 3", err, both.Count())
	}
}

// TestTokenReloadNeverDropsTokens: a token file that becomes empty, comment-only,
// placeholder-only or unreadable keeps the tokens loaded before, is counted and logged
// as an error, and leaves the server ready and refusing unsigned callbacks.
func TestTokenReloadNeverDropsTokens(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "tokens")
	writeAtomically(t, path, "old-token\n")
	tokens, err := NewTokens(path, "")
	g.Expect(err).NotTo(HaveOccurred())

	logs := &lineLog{}
	metrics := NewMetrics(prometheus.NewRegistry())
	s := newServer(Options{BindAddress: "127.0.0.1:0", SDKAppID: testAppID, Tokens: tokens}, newMemStore(), nil, metrics, logs.logger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	g.Eventually(s.Addr).ShouldNot(BeNil())
	g.Eventually(func() float64 { return testutil.ToFloat64(metrics.Tokens) }).Should(BeEquivalentTo(1))

	unsigned := func() int {
		q := signedQuery(tencent.CommandCreateRoom, "", "")
		q.Del("Sign")
		q.Del("RequestTime")
		return serve(s, q.Encode(), []byte(createBody("reload-room", "u", time.Now().Unix()))).Code
	}
	signedWith := func(token string) func() int {
		return func() int {
			return serve(s, signedQuery(tencent.CommandCreateRoom, token, nowRequestTime()).Encode(),
				[]byte(createBody("reload-room", "u", time.Now().Unix()))).Code
		}
	}
	g.Expect(unsigned()).To(Equal(http.StatusUnauthorized))

	bad := []func(){
		func() { writeAtomically(t, path, "") },
		func() { writeAtomically(t, path, "# rotated out\n\n") },
		func() { writeAtomically(t, path, PlaceholderToken+"\n") },
		func() { g.Expect(os.Remove(path)).To(Succeed()) },
	}
	for i, change := range bad {
		change()
		g.Eventually(func() float64 { return testutil.ToFloat64(metrics.TokenReloadErrors) }, 5*time.Second).
			Should(BeNumerically(">=", i+1), "refused reload %d is counted", i)
		g.Expect(unsigned()).To(Equal(http.StatusUnauthorized), "unsigned callbacks stay refused after change %d", i)
		g.Expect(signedWith("old-token")()).To(Equal(http.StatusOK), "the previous token stays valid after change %d", i)
		g.Expect(s.Ready(nil)).To(Succeed())
		g.Expect(testutil.ToFloat64(metrics.Tokens)).To(BeEquivalentTo(1))
	}
	var errorLines int
	for _, l := range logs.all() {
		if l.Error && strings.Contains(l.Text, "Kept the previous callback tokens") {
			errorLines++
		}
	}
	// Once per distinct failure: no token (twice in a row), placeholder, unreadable.
	g.Expect(errorLines).To(BeNumerically(">=", 3), "refused reloads are logged as errors")

	// A valid file is loaded again.
	writeAtomically(t, path, "new-token\n")
	g.Eventually(signedWith("new-token"), 5*time.Second).Should(Equal(http.StatusOK))
	g.Expect(signedWith("old-token")()).To(Equal(http.StatusUnauthorized))

	cancel()
	g.Eventually(done).Should(Receive(BeNil()))
}

func TestUnsignedOnlyWhenAllowed(t *testing.T) {
	g := NewWithT(t)
	noTokens, err := NewTokens("", "")
	g.Expect(err).NotTo(HaveOccurred())
	for _, tokens := range []*Tokens{nil, noTokens} {
		s := newServer(Options{BindAddress: "127.0.0.1:0", SDKAppID: testAppID, Tokens: tokens}, newMemStore(), nil, nil, logr.Discard())
		g.Expect(startBriefly(s)).To(MatchError(ContainSubstring("--callback-allow-unsigned")))
		// Used without Start, the handler fails closed.
		q := signedQuery(tencent.CommandCreateRoom, "", "")
		q.Del("Sign")
		q.Del("RequestTime")
		g.Expect(serve(s, q.Encode(), []byte(createBody("unsigned", "u", 1))).Code).To(Equal(http.StatusUnauthorized))
	}

	store := newMemStore()
	s := newServer(Options{SDKAppID: testAppID, AllowUnsigned: true}, store, nil, nil, logr.Discard())
	q := signedQuery(tencent.CommandCreateRoom, "", "")
	q.Del("Sign")
	q.Del("RequestTime")
	g.Expect(serve(s, q.Encode(), []byte(createBody("unsigned", "u", 1))).Code).To(Equal(http.StatusOK))
	g.Expect(store.appliedTo("unsigned")).To(Equal(1))
}

func TestOptionsValidateMaxSkew(t *testing.T) {
	tokens := unitTokens(t)
	for _, skew := range []time.Duration{-time.Second, MaxSkewLimit + time.Second, 1 << 62} {
		if err := (Options{Tokens: tokens, MaxSkew: skew}).Validate(); err == nil {
			t.Errorf("max skew %s accepted", skew)
		}
	}
	for _, skew := range []time.Duration{0, time.Second, MaxSkewLimit} {
		if err := (Options{Tokens: tokens, MaxSkew: skew}).Validate(); err != nil {
			t.Errorf("max skew %s refused: %v", skew, err)
		}
	}
	s := newServer(Options{BindAddress: "127.0.0.1:0", Tokens: tokens, MaxSkew: 1 << 62}, newMemStore(), nil, nil, logr.Discard())
	if err := startBriefly(s); err == nil || !strings.Contains(err.Error(), "max skew") {
		t.Fatalf("Start with an overflowing skew: %v", err)
	}
}

// startBriefly starts s and stops it at once if it does start: a server that should
// refuse to start fails the test instead of serving until the test times out.
func startBriefly(s *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Start(ctx)
}
