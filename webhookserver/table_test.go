package webhookserver

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// An app's fan-out is started when its LiveApp asks for one, replaced when the LiveApp
// changes it (the old one drains), and stopped when the LiveApp no longer asks or goes.
func TestForwardersFollowTheApps(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	s := newServer(Options{}, memStores(newMemStore()), nil, NewMetrics(reg), logr.Discard())
	var built []*fakeForwarder
	var configs []forward.Config
	s.apps.newForwarder = func(cfg forward.Config) (runningForwarder, error) {
		f := &fakeForwarder{}
		built, configs = append(built, f), append(configs, cfg)
		return f, nil
	}
	app := testApp()
	app.Spec.Forward = &livev1.LiveAppForward{URL: "http://one.example/cb", Timeout: &metav1.Duration{Duration: time.Second}, FailPolicy: "deny"}
	proj := projectionOf(&app, firstToken)
	proj.Data["forwardAuthorization"] = []byte("Bearer one")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveApps := func(list ...livev1.LiveApp) { s.ServeApps(ctx, list, []corev1.Secret{proj}) }

	serveApps(app)
	g.Expect(built).To(HaveLen(1))
	g.Expect(configs[0].URL).To(Equal("http://one.example/cb"))
	g.Expect(configs[0].Timeout).To(Equal(time.Second))
	g.Expect(configs[0].FailPolicy).To(Equal("deny"))
	g.Expect(configs[0].Authorization).To(Equal("Bearer one"))
	g.Eventually(built[0].running.Load).Should(BeTrue())

	serveApps(app) // nothing changed: the same fan-out
	g.Expect(built).To(HaveLen(1))

	app.Spec.Forward.URL = "http://two.example/cb"
	serveApps(app)
	g.Expect(built).To(HaveLen(2))
	g.Eventually(built[0].running.Load).Should(BeFalse(), "the replaced fan-out is stopped")
	g.Eventually(built[1].running.Load).Should(BeTrue())
	g.Expect(s.apps.lookup("1400000000").forwarder).To(BeIdenticalTo(built[1]))

	proj.Data["forwardAuthorization"] = []byte("Bearer two")
	serveApps(app)
	g.Expect(built).To(HaveLen(3), "a new Authorization is a new fan-out")
	g.Expect(configs[2].Authorization).To(Equal("Bearer two"))

	app.Spec.Forward = nil
	serveApps(app)
	g.Eventually(built[2].running.Load).Should(BeFalse())
	g.Expect(s.apps.lookup("1400000000").forwarder).To(BeNil())

	app.Spec.Forward = &livev1.LiveAppForward{URL: "http://three.example/cb"}
	serveApps(app)
	serveApps()
	g.Eventually(built[3].running.Load).Should(BeFalse(), "an app that goes takes its fan-out along")
	g.Expect(s.apps.lookup("1400000000")).To(BeNil())
}

// Callbacks for an SDKAppID no app serves are 403 and counted as "unknown"; the series
// of an app that goes are dropped.
func TestAppsComeAndGo(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	store := newMemStore()
	s := newServer(Options{}, memStores(store), nil, metrics, logr.Discard())
	create := func(sdkAppID string) int {
		q := signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime())
		q.Set("SdkAppid", sdkAppID)
		return serve(s, q.Encode(), []byte(createBody("coming", "u", time.Now().Unix()))).Code
	}
	g.Expect(create("1400000000")).To(Equal(http.StatusForbidden), "no app yet")
	for _, spelling := range []string{"+1400000000", "01400000000", "1400000000 ", "abc"} {
		g.Expect(create(spelling)).To(Equal(http.StatusForbidden), "%q", spelling)
	}
	g.Expect(testutil.ToFloat64(metrics.Rejections.WithLabelValues(unknownApp, reasonWrongApp))).To(BeEquivalentTo(5))

	app := testApp()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.ServeApps(ctx, []livev1.LiveApp{app}, []corev1.Secret{projectionOf(&app, firstToken)})
	g.Expect(create("1400000000")).To(Equal(http.StatusOK))
	g.Expect(testutil.ToFloat64(metrics.Requests.WithLabelValues(unitLabel, tencent.CommandCreateRoom, "200"))).To(BeEquivalentTo(1))

	// A second claimant of the SDKAppID, younger, serves nothing.
	younger := testApp()
	younger.Namespace, younger.UID = "elsewhere", "uid-of-younger"
	younger.CreationTimestamp = metav1.NewTime(time.Now())
	app.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
	s.ServeApps(ctx, []livev1.LiveApp{younger, app}, []corev1.Secret{projectionOf(&app, firstToken), projectionOf(&younger, "younger-token")})
	g.Expect(s.apps.lookup("1400000000").key.Namespace).To(Equal(testNamespace))

	s.ServeApps(ctx, nil, nil)
	g.Expect(create("1400000000")).To(Equal(http.StatusForbidden))
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				g.Expect(l.GetName() == "app" && l.GetValue() == unitLabel).To(BeFalse(), "%s keeps a series of the app gone", f.GetName())
			}
		}
	}
}

// The table tells the replica's Lease when the loaded token sets change, and only then.
func TestLoadedTokensReported(t *testing.T) {
	g := NewWithT(t)
	s := newServer(Options{}, memStores(newMemStore()), nil, nil, logr.Discard())
	var reports atomic.Int32
	s.apps.loadedChanged = func() { reports.Add(1) }
	app := testApp()
	ctx := context.Background()
	s.ServeApps(ctx, []livev1.LiveApp{app}, nil)
	g.Expect(reports.Load()).To(BeZero(), "no tokens, nothing loaded")
	s.ServeApps(ctx, []livev1.LiveApp{app}, []corev1.Secret{projectionOf(&app, "a")})
	g.Expect(reports.Load()).To(BeEquivalentTo(1))
	s.ServeApps(ctx, []livev1.LiveApp{app}, []corev1.Secret{projectionOf(&app, "a")})
	g.Expect(reports.Load()).To(BeEquivalentTo(1), "the same set")
	s.ServeApps(ctx, []livev1.LiveApp{app}, []corev1.Secret{projectionOf(&app, "a\nb")})
	g.Expect(reports.Load()).To(BeEquivalentTo(2))
	s.ServeApps(ctx, nil, nil)
	g.Expect(reports.Load()).To(BeEquivalentTo(3))
	g.Expect(s.apps.loadedTokens()).To(BeEmpty())
}

// Replay protection is per app: the same delivery (Sign, RequestTime, body) to two apps
// that share a token is applied to each.
func TestReplayIsPerApp(t *testing.T) {
	g := NewWithT(t)
	stores := map[string]*memStore{testNamespace: newMemStore(), "other": newMemStore()}
	s := newServer(Options{}, func(namespace string, _ int64) roomWriter { return stores[namespace] }, nil, nil, logr.Discard())
	first, second := testApp(), testApp()
	second.Namespace, second.UID, second.Spec.SDKAppID = "other", "uid-of-other", testAppID+1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.ServeApps(ctx, []livev1.LiveApp{first, second}, []corev1.Secret{projectionOf(&first, firstToken), projectionOf(&second, firstToken)})

	rt := nowRequestTime()
	body := []byte(createBody("shared-room", "u", time.Now().Unix()))
	for _, app := range []livev1.LiveApp{first, second, first, second} {
		q := signedQuery(tencent.CommandCreateRoom, firstToken, rt)
		q.Set("SdkAppid", strconv.FormatInt(app.Spec.SDKAppID, 10))
		g.Expect(serve(s, q.Encode(), body).Code).To(Equal(http.StatusOK))
	}
	g.Expect(stores[testNamespace].appliedTo("shared-room")).To(Equal(1))
	g.Expect(stores["other"].appliedTo("shared-room")).To(Equal(1))
	g.Expect(testutil.ToFloat64(s.metrics.Duplicates.WithLabelValues("other/app"))).To(BeEquivalentTo(1))
}

// A LiveApp deleted and made again under the same name (a new UID) is a new app: the old
// one's tokens go, and the new one keeps its metrics series.
func TestAppMadeAgainUnderTheSameName(t *testing.T) {
	g := NewWithT(t)
	metrics := NewMetrics(prometheus.NewRegistry())
	s := newServer(Options{}, memStores(newMemStore()), nil, metrics, logr.Discard())
	old, remade := testApp(), testApp()
	remade.UID = "uid-of-the-new-app"
	ctx := context.Background()
	s.ServeApps(ctx, []livev1.LiveApp{old}, []corev1.Secret{projectionOf(&old, "old-token")})
	s.ServeApps(ctx, []livev1.LiveApp{remade}, []corev1.Secret{projectionOf(&old, "old-token"), projectionOf(&remade, "new-token")})
	g.Expect(s.apps.lookup("1400000000").tokens.Hash()).To(Equal(apps.TokensHash([]string{"new-token"})))
	g.Expect(testutil.CollectAndCount(metrics.Tokens)).To(Equal(1), "the new app's tokens gauge")
	g.Expect(testutil.ToFloat64(metrics.Tokens.WithLabelValues(unitLabel))).To(BeEquivalentTo(1))
}
