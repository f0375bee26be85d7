package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

const timeout = 90 * time.Second

// The scenarios run in file order, each with callback servers and controllers of its own:
// one user's day with the operator, then a failover of the controller's leader.

func TestCallbacksBecomeLiveRoomsAndRecordings(t *testing.T) {
	g := NewWithT(t)
	m := startCallback(t)
	startController(t)
	kubectlApply(t, recordingPolicy("record-live", "Live"))

	mustSend(t, m, "Live.CallbackAfterCreateRoom", createBody("tandy-test-rest", "user3", "Live"))
	mustSend(t, m, "Live.CallbackAfterCreateRoom", createBody("Room_ABC.01", "144115216631667826", "Live"))
	mustSend(t, m, "Live.CallbackAfterCreateRoom", createBody("audio-only", "user9", "Audio"))

	// kubectl get liverooms shows the printer columns a user reads.
	var header []string
	var rows map[string][]string
	g.Eventually(func() int {
		header, rows = table(kubectl(t, "get", "liverooms", "-n", roomNS))
		ready := 0
		for _, r := range rows {
			if r[4] == "True" {
				ready++
			}
		}
		return ready
	}, timeout).Should(Equal(3))
	g.Expect(header).To(Equal([]string{"NAME", "ROOM", "ID", "OWNER", "PHASE", "RECORDING", "READY", "AGE"}))
	row := rows["tandy-test-rest"]
	g.Expect(row[:5]).To(Equal([]string{"tandy-test-rest", "user3", "Live", "True", "True"}))
	var hashed []string
	for name, r := range rows {
		if strings.HasPrefix(name, "room-abc-01-") {
			hashed = r
		}
	}
	g.Expect(hashed).NotTo(BeNil(), "Room_ABC.01 gets a sanitised, hashed name")
	g.Expect(hashed[:3]).To(Equal([]string{"Room_ABC.01", "144115216631667826", "Live"}))
	g.Expect(rows["audio-only"][3]).To(Equal("False"), "no policy selects Audio rooms")

	// The recording Job's pod runs on a kwok node.
	g.Eventually(func() string {
		return kubectl(t, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "jsonpath={.items[*].status.phase}/{.items[*].spec.nodeName}")
	}, timeout).Should(MatchRegexp(`^Running/kwok-node-\d$`))

	// The destroy callback ends the room; the Job is suspended and its pod goes.
	mustSend(t, m, "Live.CallbackAfterDestroyRoom", destroyBody("tandy-test-rest"))
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "tandy-test-rest", "-n", roomNS, "-o", "jsonpath={.status.phase}/{.status.recordings[0].phase}")
	}, timeout).Should(Equal("Ended/Stopped"))
	g.Expect(kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "jsonpath={.items[*].spec.suspend}")).To(Equal("true"))
	g.Eventually(func() string {
		return strings.TrimSpace(kubectl(t, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "name"))
	}, timeout).Should(BeEmpty())

	// Deleting a room: the real garbage collector removes its Jobs.
	g.Eventually(func() string {
		return kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/room", "-o", "name")
	}, timeout).Should(ContainSubstring("job.batch/room-abc-01-"))
	hashedName := ""
	for name := range rows {
		if strings.HasPrefix(name, "room-abc-01-") {
			hashedName = name
		}
	}
	kubectl(t, "delete", "liveroom", hashedName, "-n", roomNS, "--wait=true")
	g.Eventually(func() string {
		return kubectl(t, "get", "jobs", "-n", roomNS, "-l", "live.liveroom.io/room="+hashedName, "-o", "name")
	}, timeout).Should(BeEmpty())
}

// table parses kubectl's default output: the header's words, and the rows keyed by their
// first column (NAME) holding the others: ROOM ID, OWNER, PHASE, RECORDING, READY, AGE.
func table(out string) (header []string, rows map[string][]string) {
	rows = map[string][]string{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header = strings.Fields(lines[0])
	for _, line := range lines[1:] {
		if fields := strings.Fields(line); len(fields) == 7 {
			rows[fields[0]] = fields[1:]
		}
	}
	return header, rows
}

func TestLeaderFailoverKeepsServingAndNeverDuplicatesJobs(t *testing.T) {
	g := NewWithT(t)
	kubectlApply(t, recordingPolicy("record-live", "Live"))
	callbacks := []*manager{startCallback(t), startCallback(t)}
	a, b := startController(t), startController(t)
	leader, follower := electedPair(g, a, b)

	// Both callback servers serve; neither takes part in the election.
	for i, m := range callbacks {
		mustSend(t, m, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("failover-%d", i), "u", "Live"))
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
	var sent, failed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			status, _, err := send(callbacks[i%len(callbacks)], "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("during-%s-%d", kind, i), "u", "Live"))
			sent.Add(1)
			if err != nil || status != http.StatusOK {
				failed.Add(1)
			}
		}
	}()
	stopped := time.Now()
	stopLeader()
	g.Eventually(survivor.isLeader, within, 100*time.Millisecond).Should(BeTrue(), "%s: the survivor takes over", kind)
	t.Logf("%s: the survivor led %s after the leader stopped", kind, time.Since(stopped).Round(100*time.Millisecond))
	time.Sleep(time.Second) // a few more callbacks once the new leader reconciles
	close(stop)
	wg.Wait()
	g.Expect(failed.Load()).To(BeZero(), "%s: callbacks served throughout (%d sent)", kind, sent.Load())
	g.Expect(sent.Load()).To(BeNumerically(">", 5))
	return int(sent.Load())
}

// TestServiceAccountsHoldOnlyTheirRolesPermissions asks the API server what each installed
// ServiceAccount may do: the internet-facing callback server stores LiveRooms and nothing
// more; the controller runs Jobs and deletes rooms. Neither reads Secrets.
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
			{"create", "events.events.k8s.io", "-n", roomNS},
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
			{"get", "secrets", "-n", operatorNS},
			{"list", "secrets", "-n", roomNS},
			{"create", "leases.coordination.k8s.io", "-n", operatorNS},
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
			{"create", "leases.coordination.k8s.io", "-n", operatorNS},
			{"create", "tokenreviews.authentication.k8s.io"},
		},
		cant: [][]string{
			{"get", "secrets", "-n", operatorNS},
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

// canI is `kubectl auth can-i` as a ServiceAccount of the operator's namespace.
func canI(t *testing.T, sa string, args ...string) bool {
	t.Helper()
	out, err := cluster.Kubectl(context.Background(), "", append([]string{"auth", "can-i", "--as=system:serviceaccount:" + operatorNS + ":" + sa}, args...)...)
	// The answer is the last line; warnings (e.g. a namespace given for a cluster-scoped
	// resource) come before it.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	switch answer := strings.TrimSpace(lines[len(lines)-1]); {
	case answer == "yes" && err == nil:
		return true
	case strings.HasPrefix(answer, "no"):
		return false
	default:
		t.Fatalf("kubectl auth can-i %v: %s %v", args, out, err)
		return false
	}
}

// TestMetricsAnswerOnlyAuthorizedTokens: both roles serve metrics over HTTPS to a token
// allowed GET /metrics, and to nobody else.
func TestMetricsAnswerOnlyAuthorizedTokens(t *testing.T) {
	g := NewWithT(t)
	stranger := "metrics-stranger"
	kubectl(t, "create", "serviceaccount", stranger, "-n", metricsNS)
	strangerToken, err := createToken(context.Background(), metricsNS, stranger)
	g.Expect(err).NotTo(HaveOccurred())

	for _, m := range []*manager{startCallback(t), startController(t)} {
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
}
