package webhookserver

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// backend is the app's own callback endpoint, recording what reaches it.
type backend struct {
	mu             sync.Mutex
	received       []string // raw query + "\n" + body
	authorizations []string // the Authorization header of each
	answer         string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.received = append(b.received, r.URL.RawQuery+"\n"+string(body))
	b.authorizations = append(b.authorizations, r.Header.Get("Authorization"))
	answer := b.answer
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, answer)
}

func (b *backend) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.received...)
}

// forwardingServer runs a callback server in front of a backend; c decides whether the
// operator's own writes work.
func forwardingServer(t *testing.T, b *backend, c clientForTest) string {
	t.Helper()
	hb := httptest.NewServer(b)
	t.Cleanup(hb.Close)
	s := serverOn(t, Options{Timeout: 500 * time.Millisecond}, c.client, c.reader)
	// The suite's app, as if its spec asked for a fan-out to the backend.
	app, proj := suiteAppNow(t)
	app.Spec.Forward = &livev1.LiveAppForward{URL: hb.URL + "/tencent", Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.ServeApps(ctx, []livev1.LiveApp{*app}, []corev1.Secret{*proj})
	return startHandler(t, s)
}

type clientForTest struct {
	client client.Client
	reader client.Reader
}

func TestBlockingCallbackAnsweredByBackend(t *testing.T) {
	g := NewWithT(t)
	b := &backend{answer: `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"gift rejected by the app"}`}
	url := forwardingServer(t, b, clientForTest{client: writes, reader: writes})
	gift := `{"CallbackCommand":"Live.CallbackBeforeSendGift","Operator_Account":"brennanli","RoomId":"room_id","GiftWater":{"From_Account":"from","To_Account":["to1"],"Time":1703589922,"GiftId":"gift1","Count":1,"Coins":1000}}`
	r := send(t, callback{command: "Live.CallbackBeforeSendGift", body: gift, url: url})
	g.Expect(r.status).To(Equal(http.StatusOK))
	g.Expect(r.ErrorCode).To(Equal(1))
	g.Expect(r.ErrorInfo).To(Equal("gift rejected by the app"))
	g.Expect(b.got()).To(HaveLen(1))
	g.Expect(b.got()[0]).To(HaveSuffix("\n" + gift))
	g.Expect(b.got()[0]).To(ContainSubstring("CallbackCommand=Live.CallbackBeforeSendGift"))
	g.Expect(b.got()[0]).To(ContainSubstring("Sign="), "the backend can check Tencent's Sign itself")
}

func TestAfterCallbackForwardedEvenWhenNotStored(t *testing.T) {
	g := NewWithT(t)
	b := &backend{answer: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`}
	slow := &slowClient{Client: writes}
	url := forwardingServer(t, b, clientForTest{client: slow, reader: writes})
	body := createBody("forwarded-room", "u", time.Now().Unix())

	// The operator's own write fails: Tencent hears 503, the app still gets the callback.
	r := send(t, callback{command: tencent.CommandCreateRoom, body: body, url: url})
	g.Expect(r.status).To(Equal(http.StatusServiceUnavailable))
	g.Eventually(b.got, 5*time.Second).Should(HaveLen(1))
	g.Expect(strings.SplitN(b.got()[0], "\n", 2)[1]).To(Equal(body), "body byte-identical")

	// Once stored, a replay of the applied delivery is not forwarded again.
	slow.fast = true
	rt := time.Now().Unix()
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: body, url: url, requestTime: rt}))
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: body, url: url, requestTime: rt}))
	g.Eventually(b.got, 5*time.Second).Should(HaveLen(2))
	g.Consistently(b.got, time.Second).Should(HaveLen(2))
}
