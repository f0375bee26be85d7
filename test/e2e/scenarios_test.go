package e2e

import (
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

// The scenarios run in file order against shared managers: one user's day with the
// operator, then a leader failover.

func TestCallbacksBecomeLiveRoomsAndRecordings(t *testing.T) {
	g := NewWithT(t)
	m := startManager(t)
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
	a, b := startManager(t), startManager(t)
	leader, follower := electedPair(g, a, b)

	// Both replicas serve callbacks, leader or not.
	for i, m := range []*manager{leader, follower} {
		mustSend(t, m, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("failover-%d", i), "u", "Live"))
	}
	rooms := 2

	// A rolling update: the leader gets SIGTERM and hands its lease over.
	rooms += failover(t, leader, follower, func() { leader.stop() }, 10*time.Second, "graceful")

	// A crash: the new leader is killed; a third replica takes over once the lease lapses.
	c := startManager(t)
	rooms += failover(t, follower, c, func() {
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

// failover stops the leader with stopLeader while callbacks keep going to the survivor,
// checks the survivor leads within within and answered every callback, and returns the
// number of rooms created meanwhile.
func failover(t *testing.T, leader, survivor *manager, stopLeader func(), within time.Duration, kind string) int {
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
			status, _, err := send(survivor, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("during-%s-%d", kind, i), "u", "Live"))
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
	time.Sleep(time.Second) // a few more callbacks to the new leader
	close(stop)
	wg.Wait()
	g.Expect(failed.Load()).To(BeZero(), "%s: callbacks served throughout (%d sent)", kind, sent.Load())
	g.Expect(sent.Load()).To(BeNumerically(">", 5))
	return int(sent.Load())
}
