package webhookserver

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// TestAuthenticatedCallbackMarksReceived: a callback that passes the SdkAppid and Sign
// checks moves its app's last-received time; a rejected one does not, so that forged
// requests cannot hide that Tencent stopped calling.
func TestAuthenticatedCallbackMarksReceived(t *testing.T) {
	g := NewWithT(t)
	s := newUnitServer(t, Options{}, newMemStore(), logr.Discard())
	lastReceived := s.metrics.LastReceived
	body := []byte(createBody("received", "u", time.Now().Unix()))

	forged := signedQuery(tencent.CommandCreateRoom, "not-the-token", nowRequestTime()).Encode()
	g.Expect(serve(s, forged, body).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(testutil.CollectAndCount(lastReceived)).To(BeZero())

	before := float64(time.Now().UnixNano()) / 1e9
	g.Expect(serve(s, signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode(), body).Code).To(Equal(http.StatusOK))
	after := float64(time.Now().UnixNano()) / 1e9
	g.Expect(testutil.CollectAndCount(lastReceived)).To(Equal(1), "one series, of the callback's app")
	g.Expect(testutil.ToFloat64(lastReceived)).To(BeNumerically("~", (before+after)/2, (after-before)/2))
}
