package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gstruct"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const timeout = 90 * time.Second

// The scenarios run in file order, each with callback servers and controllers of its own:
// one user's day with the operator and its apps, a failover of the controller's leader,
// the installed permissions, then (tencent_test.go) apps whose REST API is a fake Tencent.

func TestCallbacksBecomeLiveRoomsAndRecordings(t *testing.T) {
	g := NewWithT(t)
	m := startCallback(t)
	startController(t)
	kubectlApply(t, recordingPolicy("record-live", "Live"))
	// The controller hands the example app's token to the callback server.
	waitServed(t, example, m)

	mustSend(t, m, example, "Live.CallbackAfterCreateRoom", createBody("tandy-test-rest", "user3", "Live"))
	mustSend(t, m, example, "Live.CallbackAfterCreateRoom", createBody("Room_ABC.01", "144115216631667826", "Live"))
	mustSend(t, m, example, "Live.CallbackAfterCreateRoom", createBody("audio-only", "user9", "Audio"))

	// kubectl get liverooms shows the printer columns a user reads.
	var header []string
	var rows map[string]map[string]string
	g.Eventually(func() int {
		header, rows = table(kubectl(t, "get", "liverooms", "-n", roomNS))
		ready := 0
		for _, r := range rows {
			if r["READY"] == "True" {
				ready++
			}
		}
		return ready
	}, timeout).Should(Equal(3))
	g.Expect(header).To(Equal([]string{"NAME", "ROOM ID", "OWNER", "PHASE", "RECORDING", "READY", "AGE"}))
	g.Expect(rows["tandy-test-rest"]).To(gstruct.MatchKeys(gstruct.IgnoreExtras, gstruct.Keys{
		"ROOM ID": Equal("tandy-test-rest"), "OWNER": Equal("user3"), "PHASE": Equal("Live"), "RECORDING": Equal("True"),
	}))
	hashedName := ""
	for name := range rows {
		if strings.HasPrefix(name, "room-abc-01-") {
			hashedName = name
		}
	}
	g.Expect(hashedName).NotTo(BeEmpty(), "Room_ABC.01 gets a sanitised, hashed name")
	g.Expect(rows[hashedName]).To(gstruct.MatchKeys(gstruct.IgnoreExtras, gstruct.Keys{
		"ROOM ID": Equal("Room_ABC.01"), "OWNER": Equal("144115216631667826"), "PHASE": Equal("Live"),
	}))
	g.Expect(rows["audio-only"]["RECORDING"]).To(Equal("False"), "no policy selects Audio rooms")

	// Metadata callbacks: the room's status keeps what Tencent holds, in event order.
	at := time.Now().UnixMilli()
	mustSend(t, m, example, "Live.CallbackAfterSetMetadata", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterSetMetadata","Operator_Account":"user3","RoomId":"tandy-test-rest","Metadata":[{"Key":"topic","Value":"music"},{"Key":"lang","Value":"en"}],"EventTime":%d}`, at))
	mustSend(t, m, example, "Live.CallbackAfterDelMetadata", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"user3","RoomId":"tandy-test-rest","Keys":["lang"],"EventTime":%d}`, at+1))
	g.Expect(kubectl(t, "get", "liveroom", "tandy-test-rest", "-n", roomNS, "-o", "jsonpath={.status.metadata}")).
		To(MatchJSON(`{"topic":"music"}`), "the answer comes once the metadata is stored")

	// The recording Job's pod runs on a kwok node.
	g.Eventually(func() string {
		return kubectl(t, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "jsonpath={.items[*].status.phase}/{.items[*].spec.nodeName}")
	}, timeout).Should(MatchRegexp(`^Running/kwok-node-\d$`))

	// The destroy callback ends the room; the Job is suspended and its pod goes.
	mustSend(t, m, example, "Live.CallbackAfterDestroyRoom", destroyBody("tandy-test-rest"))
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "tandy-test-rest", "-n", roomNS, "-o", "jsonpath={.status.phase}/{.status.recordings[0].phase}")
	}, timeout).Should(Equal("Ended/Stopped"))
	g.Expect(kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "jsonpath={.items[*].spec.suspend}")).To(Equal("true"))
	g.Eventually(func() string {
		return strings.TrimSpace(kubectl(t, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "name"))
	}, timeout).Should(BeEmpty())
}

// TestAppsKeepToTheirNamespacesAndTokens: one callback server serves two apps, each with
// its own token, each writing its rooms in its own namespace; a second LiveApp for an
// SDKAppID already served is refused and says why.
func TestAppsKeepToTheirNamespacesAndTokens(t *testing.T) {
	g := NewWithT(t)
	second := app{namespace: "live-second", name: "second", sdkAppID: 1400000001, token: "e2e-token-second"}
	claimant := app{namespace: "live-claimant", name: "claimant", sdkAppID: second.sdkAppID, token: "e2e-token-claimant"}
	m := startCallback(t)
	startController(t)
	declareCallbackApp(t, second)
	waitServed(t, example, m)
	waitServed(t, second, m)

	mustSend(t, m, example, "Live.CallbackAfterCreateRoom", createBody("first-app-room", "user1", "Voice"))
	mustSend(t, m, second, "Live.CallbackAfterCreateRoom", createBody("second-app-room", "user2", "Voice"))
	for _, tc := range []struct {
		a          app
		room, away string
	}{{example, "first-app-room", second.namespace}, {second, "second-app-room", example.namespace}} {
		g.Expect(kubectl(t, "get", "liveroom", tc.room, "-n", tc.a.namespace, "-o", "jsonpath={.spec.sdkAppId}")).
			To(Equal(strconv.FormatInt(tc.a.sdkAppID, 10)), "%s is in its app's namespace", tc.room)
		g.Expect(kubectl(t, "get", "liveroom", tc.room, "-n", tc.away, "--ignore-not-found", "-o", "name")).
			To(BeEmpty(), "%s is not in namespace %s", tc.room, tc.away)
	}

	// One app's token does not sign the other's callbacks; an SDKAppID no LiveApp serves
	// is refused whatever the token.
	for _, tc := range []struct {
		sdkAppID int64
		token    string
		status   int
	}{{second.sdkAppID, example.token, http.StatusUnauthorized}, {example.sdkAppID, second.token, http.StatusUnauthorized}, {1400009999, example.token, http.StatusForbidden}} {
		status, answer, err := sendSigned(m, tc.sdkAppID, tc.token, "Live.CallbackAfterCreateRoom", createBody("forged-room", "mallory", "Voice"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).To(Equal(tc.status), "SDKAppID %d: %s", tc.sdkAppID, answer)
		g.Expect(answer).To(ContainSubstring(`"ActionStatus":"FAIL"`))
	}
	g.Expect(kubectl(t, "get", "liverooms", "-A", "--field-selector", "spec.roomId=forged-room", "-o", "name")).To(BeEmpty())

	// A second LiveApp for the same SDKAppID: the older one keeps it, the newcomer stalls.
	// Creation times are to the second, and LiveApps created in the same second are
	// ordered by name: the newcomer is made in a later second than the first.
	created, err := time.Parse(time.RFC3339, kubectl(t, "get", "liveapp", second.name, "-n", second.namespace, "-o", "jsonpath={.metadata.creationTimestamp}"))
	g.Expect(err).NotTo(HaveOccurred())
	time.Sleep(time.Until(created.Add(time.Second)))
	declareCallbackApp(t, claimant)
	g.Eventually(func() string { return appCondition(t, claimant, "Stalled") }, timeout).Should(Equal("True/SDKAppIDTaken"))
	g.Expect(kubectl(t, "get", "liveapp", claimant.name, "-n", claimant.namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].message}`)).
		To(Equal(fmt.Sprintf("SDKAppID %d is served by the older LiveApp %s/%s", second.sdkAppID, second.namespace, second.name)))
	g.Expect(appCondition(t, claimant, "Ready")).To(HavePrefix("False/"))
	g.Eventually(func() string { return events(t, claimant.namespace, "LiveApp", claimant.name) }, timeout).
		Should(ContainSubstring("Warning SDKAppIDTaken: SDKAppID 1400000001 is served by the older LiveApp"))
	status, _, err := send(m, claimant, "Live.CallbackAfterCreateRoom", createBody("claimant-room", "user3", "Voice"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(Equal(http.StatusUnauthorized), "the SDKAppID's callbacks are checked with its serving app's token")
	mustSend(t, m, second, "Live.CallbackAfterCreateRoom", createBody("second-app-room-2", "user2", "Voice"))

	out := kubectl(t, "get", "liveapps", "-A")
	t.Logf("kubectl get liveapps -A:\n%s", out)
	_, apps := table(out)
	g.Expect(apps).To(gstruct.MatchKeys(gstruct.IgnoreExtras, gstruct.Keys{
		"example":  HaveKeyWithValue("READY", "True"),
		"second":   HaveKeyWithValue("READY", "True"),
		"claimant": HaveKeyWithValue("READY", "False"),
	}))
}

// TestUnauthenticatedCallbacksAreRefusedAndCounted: a callback without a Sign, signed with
// another token or with a RequestTime out of the app's skew is refused 401, one of an
// SDKAppID no LiveApp serves 403; none stores a room, and the callback server counts each
// refusal by app and reason. An app whose token Secret still holds config/app's
// placeholder accepts no callback; an app that allows unsigned callbacks (a trial)
// accepts them without a Sign.
func TestUnauthenticatedCallbacksAreRefusedAndCounted(t *testing.T) {
	g := NewWithT(t)
	placeholder := app{namespace: "live-placeholder", name: "placeholder", sdkAppID: 1400000004, token: webhookserver.PlaceholderToken}
	trial := app{namespace: "live-trial", name: "trial", sdkAppID: 1400000005}
	m := startCallback(t)
	startController(t)
	waitServed(t, example, m)

	now := time.Now()
	for _, tc := range []struct {
		what     string
		sdkAppID int64
		auth     string
		status   int
		app      string
		reason   string
	}{
		{"no Sign", example.sdkAppID, "", http.StatusUnauthorized, "live/example", "missing_sign"},
		{"a RequestTime without a Sign", example.sdkAppID, "&RequestTime=" + strconv.FormatInt(now.Unix(), 10), http.StatusUnauthorized, "live/example", "missing_sign"},
		{"a Sign of another token", example.sdkAppID, signedAt("not-the-token", now), http.StatusUnauthorized, "live/example", "bad_sign"},
		{"a RequestTime 10 minutes old", example.sdkAppID, signedAt(example.token, now.Add(-10*time.Minute)), http.StatusUnauthorized, "live/example", "stale_time"},
		{"an SDKAppID no LiveApp serves", 1400009999, signedAt(example.token, now), http.StatusForbidden, "unknown", "wrong_app"},
	} {
		status, answer, err := post(m, tc.sdkAppID, tc.auth, "Live.CallbackAfterCreateRoom", createBody("unauthenticated-room", "mallory", "Voice"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).To(Equal(tc.status), "a callback with %s: %s", tc.what, answer)
		g.Expect(answer).To(ContainSubstring(`"ActionStatus":"FAIL"`), "a callback with %s", tc.what)
		_, body, err := m.getMetrics(metricsToken)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(body).To(MatchRegexp(`(?m)^liveroom_callback_rejections_total\{app=%q,reason=%q\} [1-9]`, tc.app, tc.reason), "a callback with %s is counted", tc.what)
	}
	g.Expect(kubectl(t, "get", "liverooms", "-A", "--field-selector", "spec.roomId=unauthenticated-room", "-o", "name")).To(BeEmpty())

	// config/app's placeholder token is public: the controller stalls the app saying so and
	// hands the callback server no token, so even callbacks signed with it are refused.
	placeholderTokens, err := os.ReadFile(filepath.Join(root(), "config", "app", "callback-tokens.txt"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(placeholderTokens)).To(ContainSubstring(placeholder.token))
	createNamespace(t, placeholder.namespace)
	createSecret(t, placeholder.namespace, placeholder.name+"-callback-tokens", "tokens", string(placeholderTokens))
	applyCallbackApp(t, placeholder)
	g.Eventually(func() string {
		return kubectl(t, "get", "liveapp", placeholder.name, "-n", placeholder.namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].status}/{.status.conditions[?(@.type=="Stalled")].reason}`)
	}, timeout, 200*time.Millisecond).Should(Equal("True/PlaceholderToken"))
	g.Eventually(func() string {
		_, body, _ := m.getMetrics(metricsToken)
		return body
	}, timeout, 200*time.Millisecond).Should(ContainSubstring(`liveroom_callback_tokens{app="live-placeholder/placeholder"} 0`))
	status, answer, err := send(m, placeholder, "Live.CallbackAfterCreateRoom", createBody("placeholder-room", "mallory", "Voice"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(Equal(http.StatusUnauthorized), "signed with the placeholder: %s", answer)

	// A trial app allows unsigned callbacks while it has no token.
	createNamespace(t, trial.namespace)
	applyLiveApp(t, trial, `
callback:
  allowUnsigned: true`)
	g.Eventually(func() (int, error) {
		status, _, err := post(m, trial.sdkAppID, "", "Live.CallbackAfterCreateRoom", createBody("trial-room", "tester", "Voice"))
		return status, err
	}, timeout, 100*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(kubectl(t, "get", "liveroom", "trial-room", "-n", trial.namespace, "-o", "jsonpath={.spec.sdkAppId}")).To(Equal(strconv.FormatInt(trial.sdkAppID, 10)))
}

// TestQuotaWarningMarksTheApp: Tencent's warning that the app nears its room quota sets the
// LiveApp's QuotaNearLimit condition and records a Warning Event on it.
func TestQuotaWarningMarksTheApp(t *testing.T) {
	g := NewWithT(t)
	m := startCallback(t)
	startController(t)
	waitServed(t, example, m)
	g.Eventually(func() string { return appCondition(t, example, "QuotaNearLimit") }, timeout).Should(Equal("False/NoWarning"))

	mustSend(t, m, example, "Live.CallbackAfterCreateRoomReachingThreshold", fmt.Sprintf(
		`{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","Operator_Account":"administrator","EventTime":%d,"CurRoomCount":400,"MaxRoomCount":500}`, time.Now().UnixMilli()))
	g.Eventually(func() string { return appCondition(t, example, "QuotaNearLimit") }, timeout).Should(Equal("True/TencentWarned"))
	g.Expect(kubectl(t, "get", "liveapp", example.name, "-n", example.namespace, "-o", `jsonpath={.status.conditions[?(@.type=="QuotaNearLimit")].message}`)).
		To(HavePrefix("Tencent reported 400 rooms of a quota of 500 at "))
	g.Expect(kubectl(t, "get", "liveapp", example.name, "-n", example.namespace, "-o", "jsonpath={.status.roomQuota.rooms}/{.status.roomQuota.maxRooms}")).To(Equal("400/500"))
	g.Expect(events(t, example.namespace, "LiveApp", example.name)).
		To(ContainSubstring("Warning RoomQuotaNearLimit: Tencent warns that the app has 400 rooms of its quota of 500"))
	g.Expect(appCondition(t, example, "Ready")).To(Equal("True/Serving"), "a warning does not stop the app")
}

func TestLeaderFailoverKeepsServingAndNeverDuplicatesJobs(t *testing.T) {
	g := NewWithT(t)
	kubectlApply(t, recordingPolicy("record-live", "Live"))
	callbacks := []*manager{startCallback(t), startCallback(t)}
	a, b := startController(t), startController(t)
	leader, follower := electedPair(g, a, b)
	waitServed(t, example, callbacks...)

	// Both callback servers serve; neither takes part in the election.
	for i, m := range callbacks {
		mustSend(t, m, example, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("failover-%d", i), "u", "Live"))
		g.Expect(m.isLeader()).To(BeFalse(), "%s elects no leader", m.name)
	}
	rooms := 2

	// A rolling update: the leader gets SIGTERM and hands its lease over.
	rooms += failover(t, callbacks, follower, func() { leader.stop() }, 10*time.Second, "graceful")

	// A crash: the new leader is killed; a third replica takes over once the lease lapses.
	c := startController(t)
	rooms += failover(t, callbacks, c, func() {
		_ = follower.cmd.Process.Kill()
		<-follower.done
	}, 15*time.Second+10*time.Second, "crash")

	// Every room of type Live gets exactly one Job of the policy; none twice.
	g.Eventually(func() error {
		out := kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/policy=record-live", "-o", `jsonpath={range .items[*]}{.metadata.labels.live\.liveroom\.io/room}{"\n"}{end}`)
		perRoom := map[string]int{}
		for _, room := range strings.Fields(out) {
			perRoom[room]++
		}
		got := 0
		for room, n := range perRoom {
			if n != 1 {
				return fmt.Errorf("room %s has %d Jobs", room, n)
			}
			if strings.HasPrefix(room, "failover-") || strings.HasPrefix(room, "during-") {
				got++
			}
		}
		if got != rooms {
			return fmt.Errorf("%d of %d rooms have their Job", got, rooms)
		}
		return nil
	}, timeout).Should(Succeed())

	// Deleting a room: the real garbage collector removes its Job. (It learns of the
	// LiveRoom kind up to 30 s after the CRD is installed, hence this check comes late.)
	kubectl(t, "delete", "liveroom", "failover-0", "-n", roomNS, "--wait=true")
	g.Eventually(func() string {
		return kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/room=failover-0", "-o", "name")
	}, timeout).Should(BeEmpty())
}

// electedPair waits until exactly one of a and b leads and returns (leader, follower).
func electedPair(g Gomega, a, b *manager) (leader, follower *manager) {
	g.Eventually(func() bool {
		switch {
		case a.isLeader() && !b.isLeader():
			leader, follower = a, b
		case b.isLeader() && !a.isLeader():
			leader, follower = b, a
		}
		return leader != nil
	}, timeout, 200*time.Millisecond).Should(BeTrue(), "exactly one leader")
	return leader, follower
}

// failover stops the controller's leader with stopLeader while callbacks keep going to the
// callback servers, checks the survivor leads within within and every callback was
// answered, and returns the number of rooms created meanwhile.
func failover(t *testing.T, callbacks []*manager, survivor *manager, stopLeader func(), within time.Duration, kind string) int {
	g := NewWithT(t)
	l := startLoad(func(i int) (int, string, error) {
		return send(callbacks[i%len(callbacks)], example, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("during-%s-%d", kind, i), "u", "Live"))
	})
	stopped := time.Now()
	stopLeader()
	g.Eventually(survivor.isLeader, within, 100*time.Millisecond).Should(BeTrue(), "%s: the survivor takes over", kind)
	t.Logf("%s: the survivor led %s after the leader stopped", kind, time.Since(stopped).Round(100*time.Millisecond))
	time.Sleep(time.Second) // a few more callbacks once the new leader reconciles
	sent := l.finish(t, kind)
	g.Expect(sent).To(BeNumerically(">", 5))
	return sent
}

// load sends a callback every 100 ms until finished and records those not answered 200.
type load struct {
	sent   atomic.Int32
	mu     sync.Mutex
	failed []string
	stop   chan struct{}
	done   chan struct{}
}

// startLoad calls send(0), send(1), ... every 100 ms, each in the order it was sent.
func startLoad(send func(i int) (int, string, error)) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			status, answer, err := send(i)
			l.sent.Add(1)
			if err != nil || status != http.StatusOK {
				l.mu.Lock()
				l.failed = append(l.failed, fmt.Sprintf("%s #%d: %d %s %v", time.Now().Format("15:04:05.000"), i, status, strings.TrimSpace(answer), err))
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// finish stops the load, fails the test if any callback was not answered 200 and returns
// how many were sent.
func (l *load) finish(t *testing.T, what string) int {
	t.Helper()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Errorf("%s: %d of %d callbacks not answered 200:\n%s", what, len(l.failed), l.sent.Load(), strings.Join(l.failed, "\n"))
	}
	return int(l.sent.Load())
}

// TestServiceAccountsHoldOnlyTheirRolesPermissions asks the API server what each installed
// ServiceAccount may do: the internet-facing callback server stores LiveRooms, reads
// LiveApps and reports their room quota, and reads Secrets and keeps its Lease in the
// operator's namespace only; the controller runs Jobs and deletes rooms, and reads the
// Secrets LiveApps name by name, never listing them.
func TestServiceAccountsHoldOnlyTheirRolesPermissions(t *testing.T) {
	for _, tc := range []struct {
		sa   string
		can  [][]string
		cant [][]string
	}{{
		sa: callbackSA,
		can: [][]string{
			{"get", "liverooms.live.liveroom.io", "-n", roomNS},
			{"list", "liverooms.live.liveroom.io", "-A"},
			{"watch", "liverooms.live.liveroom.io", "-A"},
			{"create", "liverooms.live.liveroom.io", "-n", roomNS},
			{"patch", "liverooms.live.liveroom.io", "-n", roomNS},
			{"patch", "liverooms.live.liveroom.io", "--subresource=status", "-n", roomNS},
			{"watch", "liveapps.live.liveroom.io", "-A"},
			{"patch", "liveapps.live.liveroom.io", "--subresource=status", "-n", roomNS},
			{"create", "events.events.k8s.io", "-n", roomNS},
			{"watch", "secrets", "-n", operatorNS},
			{"create", "leases.coordination.k8s.io", "-n", operatorNS},
			{"create", "tokenreviews.authentication.k8s.io"},
			{"create", "subjectaccessreviews.authorization.k8s.io"},
		},
		cant: [][]string{
			{"create", "jobs.batch", "-n", roomNS},
			{"patch", "jobs.batch", "-n", roomNS},
			{"create", "pods", "-n", roomNS},
			{"delete", "liverooms.live.liveroom.io", "-n", roomNS},
			{"update", "liverooms.live.liveroom.io", "--subresource=finalizers", "-n", roomNS},
			{"list", "recordingpolicies.live.liveroom.io", "-n", roomNS},
			{"patch", "liveapps.live.liveroom.io", "-n", roomNS},
			{"get", "secrets", "-n", roomNS},
			{"list", "secrets", "-A"},
			{"create", "secrets", "-n", operatorNS},
			{"create", "leases.coordination.k8s.io", "-n", roomNS},
			{"get", "/metrics"},
		},
	}, {
		sa: controllerSA,
		can: [][]string{
			{"create", "jobs.batch", "-n", roomNS},
			{"patch", "jobs.batch", "-n", roomNS},
			{"delete", "liverooms.live.liveroom.io", "-n", roomNS},
			{"create", "liverooms.live.liveroom.io", "-n", roomNS},
			{"update", "liverooms.live.liveroom.io", "--subresource=finalizers", "-n", roomNS},
			{"list", "recordingpolicies.live.liveroom.io", "-A"},
			{"patch", "recordingpolicies.live.liveroom.io", "--subresource=status", "-n", roomNS},
			{"patch", "liveapps.live.liveroom.io", "--subresource=status", "-n", roomNS},
			{"update", "liveapps.live.liveroom.io", "--subresource=finalizers", "-n", roomNS},
			{"get", "secrets", "-n", roomNS},
			{"update", "secrets", "-n", roomNS},
			{"delete", "secrets", "-n", operatorNS},
			{"watch", "leases.coordination.k8s.io", "-n", operatorNS},
			{"create", "leases.coordination.k8s.io", "-n", operatorNS},
			{"create", "tokenreviews.authentication.k8s.io"},
		},
		cant: [][]string{
			{"list", "secrets", "-n", roomNS},
			{"watch", "secrets", "-A"},
			{"delete", "secrets", "-n", roomNS},
			{"create", "pods", "-n", roomNS},
			{"delete", "jobs.batch", "-n", roomNS},
			{"create", "leases.coordination.k8s.io", "-n", roomNS},
		},
	}} {
		t.Run(tc.sa, func(t *testing.T) {
			for _, args := range tc.can {
				if !canI(t, tc.sa, args...) {
					t.Errorf("%s cannot %v", tc.sa, args)
				}
			}
			for _, args := range tc.cant {
				if canI(t, tc.sa, args...) {
					t.Errorf("%s can %v", tc.sa, args)
				}
			}
		})
	}
}

// canI asks the API server, with a SubjectAccessReview, whether a ServiceAccount of the
// operator's namespace may do what args say, in `kubectl auth can-i`'s words: a verb, then
// a resource[.group] with -n NAMESPACE, -A (every namespace) or neither (cluster-scoped)
// and --subresource=NAME, or a non-resource URL.
func canI(t *testing.T, sa string, args ...string) bool {
	t.Helper()
	spec := authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + operatorNS + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNS, "system:authenticated"},
	}
	verb, what := args[0], args[1]
	if strings.HasPrefix(what, "/") {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: verb, Path: what}
	} else {
		resource, group, _ := strings.Cut(what, ".")
		attrs := &authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Group: group}
		for i := 2; i < len(args); i++ {
			switch arg := args[i]; {
			case arg == "-n":
				i++
				attrs.Namespace = args[i]
			case arg == "-A":
			case strings.HasPrefix(arg, "--subresource="):
				attrs.Subresource = strings.TrimPrefix(arg, "--subresource=")
			default:
				t.Fatalf("canI %v: unknown argument %q", args, arg)
			}
		}
		spec.ResourceAttributes = attrs
	}
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("can %s %v: %v", sa, args, err)
	}
	return review.Status.Allowed
}

// TestMetricsAnswerOnlyAuthorizedTokens: both roles serve metrics over HTTPS to a token
// allowed GET /metrics, and to nobody else.
func TestMetricsAnswerOnlyAuthorizedTokens(t *testing.T) {
	g := NewWithT(t)
	stranger := "metrics-stranger"
	kubectl(t, "create", "serviceaccount", stranger, "-n", metricsNS)
	strangerToken, err := createToken(context.Background(), metricsNS, stranger)
	g.Expect(err).NotTo(HaveOccurred())

	callback := startCallback(t)
	for _, m := range []*manager{callback, startController(t)} {
		// The metrics server may start listening just after the probes answer.
		g.Eventually(func() (int, error) {
			status, _, err := m.getMetrics("")
			return status, err
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized), "%s without a token", m.name)
		// controller-runtime's filter answers 500, not 401, when the API server rejects the
		// token with an error (TokenReview status.error).
		status, _, err := m.getMetrics("not-a-token")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).NotTo(Equal(http.StatusOK), "%s with a token the API server does not know", m.name)
		status, _, err = m.getMetrics(strangerToken)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).To(Equal(http.StatusForbidden), "%s with a token not allowed GET /metrics", m.name)
		status, body, err := m.getMetrics(metricsToken)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).To(Equal(http.StatusOK), "%s with the metrics reader's token", m.name)
		g.Expect(body).To(ContainSubstring("controller_runtime_"))
		// Plain HTTP is not served on the metrics port.
		resp, err := http.Get("http://" + m.metrics + "/metrics")
		if err == nil {
			resp.Body.Close()
			g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "%s over plain HTTP", m.name)
		}
	}
	// The callback server's metrics say, per app, how many tokens it accepts.
	g.Eventually(func() string {
		_, body, _ := callback.getMetrics(metricsToken)
		return body
	}, 10*time.Second, 100*time.Millisecond).Should(ContainSubstring(`liveroom_callback_tokens{app="live/example"} 1`))
}
