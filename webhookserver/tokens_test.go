package webhookserver

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

func TestTokensRefuseSetsWithoutToken(t *testing.T) {
	g := NewWithT(t)
	tokens, err := NewTokens("old-token")
	g.Expect(err).NotTo(HaveOccurred())
	for _, bad := range [][]string{nil, {}, {PlaceholderToken}, {"real-token", PlaceholderToken}} {
		changed, err := tokens.Set(bad)
		g.Expect(err).To(HaveOccurred(), "%q", bad)
		g.Expect(changed).To(BeFalse())
		g.Expect(tokens.Verify(Sign("old-token", nowRequestTime()), nowRequestTime(), time.Now(), time.Minute)).To(Succeed(), "the tokens held before stay")
	}
	changed, err := tokens.Set([]string{"new-token", "old-token"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	g.Expect(tokens.Count()).To(Equal(2))
	g.Expect(tokens.Hash()).To(Equal(apps.TokensHash([]string{"old-token", "new-token"})), "the hash the controller compares")
	changed, _ = tokens.Set([]string{"old-token", "new-token"})
	g.Expect(changed).To(BeFalse(), "the same set in another order")

	unsigned, err := NewTokens()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(unsigned.Enabled()).To(BeFalse())
	g.Expect(unsigned.Hash()).To(BeEmpty())
	_, err = NewTokens(PlaceholderToken)
	g.Expect(err).To(MatchError(ContainSubstring("placeholder")))
}

// TestProjectionReloadNeverDropsTokens: a projection that becomes empty, comment-only or
// holds the placeholder keeps the tokens loaded before, is counted and logged as an
// error, and leaves unsigned callbacks refused; a valid one is loaded.
func TestProjectionReloadNeverDropsTokens(t *testing.T) {
	g := NewWithT(t)
	logs := &lineLog{}
	metrics := NewMetrics(prometheus.NewRegistry())
	s := newServer(Options{}, memStores(newMemStore()), nil, metrics, logs.logger())
	app := testApp()
	project := func(tokens string) {
		s.ServeApps(context.Background(), []livev1.LiveApp{app}, []corev1.Secret{projectionOf(&app, tokens)})
	}
	project("old-token\n")
	g.Expect(testutil.ToFloat64(metrics.Tokens.WithLabelValues(unitLabel))).To(BeEquivalentTo(1))

	unsigned := func() int {
		q := signedQuery(tencent.CommandCreateRoom, "", "")
		q.Del("Sign")
		q.Del("RequestTime")
		return serve(s, q.Encode(), []byte(createBody("reload-room", "u", time.Now().Unix()))).Code
	}
	signedWith := func(token string) int {
		return serve(s, signedQuery(tencent.CommandCreateRoom, token, nowRequestTime()).Encode(),
			[]byte(createBody("reload-room", "u", time.Now().Unix()))).Code
	}
	g.Expect(unsigned()).To(Equal(http.StatusUnauthorized))

	for i, bad := range []string{"", "# rotated out\n\n", PlaceholderToken + "\n", "new-token\n" + PlaceholderToken} {
		project(bad)
		g.Expect(testutil.ToFloat64(metrics.TokenReloadErrors.WithLabelValues(unitLabel))).To(BeEquivalentTo(i+1), "refused projection %d is counted", i)
		g.Expect(unsigned()).To(Equal(http.StatusUnauthorized), "unsigned callbacks stay refused after projection %d", i)
		g.Expect(signedWith("old-token")).To(Equal(http.StatusOK), "the previous token stays valid after projection %d", i)
		g.Expect(testutil.ToFloat64(metrics.Tokens.WithLabelValues(unitLabel))).To(BeEquivalentTo(1))
	}
	project("new-token\n" + PlaceholderToken) // the same refused projection: counted once
	g.Expect(testutil.ToFloat64(metrics.TokenReloadErrors.WithLabelValues(unitLabel))).To(BeEquivalentTo(4))
	var errorLines int
	for _, l := range logs.all() {
		if l.Error && strings.Contains(l.Text, "Kept the previous callback tokens") {
			g.Expect(l.Text).NotTo(ContainSubstring("old-token"), "no token in the log")
			errorLines++
		}
	}
	g.Expect(errorLines).To(Equal(4), "refused projections are logged as errors")

	project("new-token\n")
	g.Expect(signedWith("new-token")).To(Equal(http.StatusOK))
	g.Expect(signedWith("old-token")).To(Equal(http.StatusUnauthorized))
	g.Expect(s.apps.loadedTokens()).To(Equal(map[string]string{string(app.UID): apps.TokensHash([]string{"new-token"})}))
}

// An app without a token yet refuses every callback, unless it allows unsigned ones.
func TestUnsignedOnlyWhenAllowed(t *testing.T) {
	g := NewWithT(t)
	q := signedQuery(tencent.CommandCreateRoom, "", "")
	q.Del("Sign")
	q.Del("RequestTime")
	noToken := newUnitServerFor(t, Options{}, unitApp{}, newMemStore(), logr.Discard())
	g.Expect(serve(noToken, q.Encode(), []byte(createBody("unsigned", "u", 1))).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(serve(noToken, signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode(), []byte(createBody("unsigned", "u", 1))).Code).
		To(Equal(http.StatusUnauthorized), "no Sign can be checked")
	g.Expect(testutil.ToFloat64(noToken.metrics.Rejections.WithLabelValues(unitLabel, reasonNoToken))).To(BeEquivalentTo(2))

	store := newMemStore()
	s := newUnitServerFor(t, Options{}, unitApp{allowUnsigned: true}, store, logr.Discard())
	g.Expect(serve(s, q.Encode(), []byte(createBody("unsigned", "u", 1))).Code).To(Equal(http.StatusOK))
	g.Expect(store.appliedTo("unsigned")).To(Equal(1))

	// Once the app has a token, allowUnsigned no longer opens the door.
	signed := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, allowUnsigned: true}, newMemStore(), logr.Discard())
	g.Expect(serve(signed, q.Encode(), []byte(createBody("unsigned", "u", 1))).Code).To(Equal(http.StatusUnauthorized))
}

// Each app's RequestTime window is its spec.callback.maxSkew, at most MaxSkewLimit.
func TestMaxSkewOfAnApp(t *testing.T) {
	g := NewWithT(t)
	aged := func(s *Server, age time.Duration) int {
		rt := strconv.FormatInt(time.Now().Add(-age).Unix(), 10)
		return serve(s, signedQuery(tencent.CommandCreateRoom, firstToken, rt).Encode(), []byte(createBody("skewed-"+age.String(), "u", 1))).Code
	}
	short := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, maxSkew: 5 * time.Second}, newMemStore(), logr.Discard())
	g.Expect(aged(short, 10*time.Second)).To(Equal(http.StatusUnauthorized))
	g.Expect(aged(short, 0)).To(Equal(http.StatusOK))

	usual := newUnitServer(t, Options{}, newMemStore(), logr.Discard())
	g.Expect(aged(usual, 30*time.Second)).To(Equal(http.StatusOK), "60s by default")
	g.Expect(aged(usual, 90*time.Second)).To(Equal(http.StatusUnauthorized))

	// The CRD refuses a negative maxSkew; should one get through, it is the default, not
	// a window that refuses every callback.
	negative := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, maxSkew: -5 * time.Second}, newMemStore(), logr.Discard())
	g.Expect(aged(negative, 30*time.Second)).To(Equal(http.StatusOK))
	g.Expect(aged(negative, 90*time.Second)).To(Equal(http.StatusUnauthorized))

	logs := &lineLog{}
	long := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, maxSkew: 2 * time.Hour}, newMemStore(), logs.logger())
	g.Expect(aged(long, 59*time.Minute)).To(Equal(http.StatusOK))
	g.Expect(aged(long, 61*time.Minute)).To(Equal(http.StatusUnauthorized), "cut to %s", MaxSkewLimit)
	g.Expect(logs.all()).To(ContainElement(And(HaveField("Error", true), HaveField("Text", ContainSubstring("maxSkew")))))
}

func TestOptionsValidate(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	valid := []Options{
		{},
		{Client: c, OperatorNamespace: "operator", Replica: "liveroom-callback-7d9f-abcde"},
	}
	for _, o := range valid {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v refused: %v", o, err)
		}
	}
	invalid := []Options{
		{MaxConnections: -1},
		{IdleTimeout: -time.Second},
		{Client: c, OperatorNamespace: "operator"},
		{Client: c, OperatorNamespace: "operator", Replica: "Not_A_Name"},
		{Client: c, Replica: "pod"},
	}
	for _, o := range invalid {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	s := newServer(Options{BindAddress: "127.0.0.1:0", Client: c, OperatorNamespace: "operator"}, memStores(newMemStore()), nil, nil, logr.Discard())
	if err := startBriefly(s); err == nil || !strings.Contains(err.Error(), "POD_NAME") {
		t.Fatalf("Start without a replica name: %v", err)
	}
}

// startBriefly starts s and stops it at once if it does start: a server that should
// refuse to start fails the test instead of serving until the test times out.
func startBriefly(s *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Start(ctx)
}
