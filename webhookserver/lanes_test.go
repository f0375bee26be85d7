package webhookserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// A busy app's audience churns in many rooms while rooms are created: every create is
// stored within its deadline, and once the churn stops every room's count is the net of
// the member callbacks acknowledged.
func TestMemberStormNeverStarvesRoomCreates(t *testing.T) {
	g := NewWithT(t)
	const rooms = 100
	for i := range rooms {
		expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("storm-%03d", i), "u", time.Now().Unix())}))
	}
	var mu sync.Mutex
	net := map[string]int64{}
	stop := make(chan struct{})
	var storm sync.WaitGroup
	var sent, refused atomic.Int64
	for w := range 16 {
		storm.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("storm-%03d", rng.IntN(rooms))
				eventType, delta := "Online", int64(1)
				if rng.IntN(2) == 0 {
					eventType, delta = "Offline", -1
				}
				r := send(t, callback{command: tencent.CommandMemberStateChanged, body: memberBody(id, eventType, []string{fmt.Sprintf("m%d", sent.Add(1))}, nowMillis())})
				if r.status != http.StatusOK {
					refused.Add(1)
					continue
				}
				mu.Lock()
				net[id] += delta
				mu.Unlock()
			}
		})
	}
	// Meanwhile a room is created every 100 ms.
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("during-storm-%d", i), "u", time.Now().Unix())}))
		slowest = max(slowest, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	storm.Wait()
	t.Logf("%d member callbacks sent, %d refused; slowest create %s", sent.Load(), refused.Load(), slowest)
	g.Expect(refused.Load()).To(BeZero(), "member callbacks are acknowledged, never refused, on a healthy server")
	g.Expect(slowest).To(BeNumerically("<", 1500*time.Millisecond), "every create stored within its deadline")

	// The count lane writes what was acknowledged, exactly once.
	g.Eventually(func(g Gomega) {
		var list = map[string]int64{}
		for id := range net {
			list[id] = getRoom(t, id).Status.Audience.Online
		}
		mu.Lock()
		defer mu.Unlock()
		g.Expect(list).To(Equal(net))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
}

// slowRooms makes every write to the rooms named with prefix take delay once active, as
// an overloaded API server would, honouring the caller's deadline.
type slowRooms struct {
	client.Client
	prefix string
	delay  time.Duration
	active atomic.Bool
	// waiting gets a value each time a write starts waiting.
	waiting chan struct{}
}

func newSlowRooms(prefix string, delay time.Duration) *slowRooms {
	s := &slowRooms{Client: writes, prefix: prefix, delay: delay, waiting: make(chan struct{}, 1)}
	s.active.Store(true)
	return s
}

func (s *slowRooms) wait(ctx context.Context, name string) error {
	if !s.active.Load() || !strings.HasPrefix(name, s.prefix) {
		return nil
	}
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowRooms) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if err := s.wait(ctx, ac.(interface{ GetName() string }).GetName()); err != nil {
		return err
	}
	return s.Client.Apply(ctx, ac, opts...)
}

func (s *slowRooms) Status() client.SubResourceWriter {
	return &slowStatus{SubResourceWriter: s.Client.Status(), s: s}
}

type slowStatus struct {
	client.SubResourceWriter
	s *slowRooms
}

func (w *slowStatus) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if err := w.s.wait(ctx, ac.(interface{ GetName() string }).GetName()); err != nil {
		return err
	}
	return w.SubResourceWriter.Apply(ctx, ac, opts...)
}

// answered is one callback's answer and how long it took.
type answered struct {
	reply
	took time.Duration
}

func sendTimed(t *testing.T, c callback) answered {
	start := time.Now()
	r := send(t, c)
	return answered{r, time.Since(start)}
}

// Callbacks queued behind a hot room give up at their own deadline, not when the room is
// free, and hold up no other room. Here the room is held by a slow audience-count write,
// which has a deadline of its own, far longer than a callback's.
func TestHotRoomWaitersGiveUpAtTheirDeadline(t *testing.T) {
	g := NewWithT(t)
	timeout := 400 * time.Millisecond
	slow := newSlowRooms("hot", 2*time.Second)
	slow.active.Store(false)
	s := serverOn(t, Options{Timeout: timeout}, slow, writes)
	url := startHandler(t, s)
	t0 := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("hot-room", "u", t0), url: url}))
	g.Eventually(func() error { var l livev1.LiveRoomList; return srvCacheHas(&l, "hot-room") }).Should(Succeed())
	slow.active.Store(true)

	// The count lane takes the room's lock for a write that will take 2 s.
	expectOK(t, send(t, callback{command: tencent.CommandMemberStateChanged, body: memberBody("hot-room", "Online", []string{"m"}, nowMillis()), url: url}))
	<-slow.waiting
	var wg sync.WaitGroup
	answers := make([]answered, 40)
	for i := range answers {
		wg.Go(func() {
			admin := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"hot-room","Admin_Account":["a%d"],"opType":"add","EventTime":%d}`, i, t0*1000+int64(i+1))
			answers[i] = sendTimed(t, callback{command: tencent.CommandModifyAdmin, body: admin, url: url})
		})
	}
	cold := sendTimed(t, callback{command: tencent.CommandCreateRoom, body: createBody("cold-room", "u", t0), url: url})
	wg.Wait()

	expectOK(t, cold.reply)
	g.Expect(cold.took).To(BeNumerically("<", 300*time.Millisecond), "another room is not held up")
	for _, a := range answers {
		g.Expect(a.status).To(Equal(http.StatusServiceUnavailable))
		g.Expect(a.took).To(BeNumerically("<", timeout+200*time.Millisecond), "answered at its deadline, not when the room is free")
	}
}

// When the writes in flight would outlast a callback's deadline, it is refused at once
// rather than at the deadline.
func TestOverloadRefusedEarly(t *testing.T) {
	g := NewWithT(t)
	timeout := 600 * time.Millisecond
	slow := newSlowRooms("busy-api", 100*time.Millisecond)
	s := serverOn(t, Options{Timeout: timeout, LifecycleConcurrency: 1}, slow, writes)
	url := startHandler(t, s)
	// The gate learns how long a write takes here.
	for i := range 3 {
		expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("busy-api-warm-%d", i), "u", time.Now().Unix()), url: url}))
	}
	var wg sync.WaitGroup
	answers := make([]answered, 20)
	for i := range answers {
		wg.Go(func() {
			answers[i] = sendTimed(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("busy-api-%d", i), "u", time.Now().Unix()), url: url})
		})
	}
	wg.Wait()
	early := 0
	for _, a := range answers {
		g.Expect(a.took).To(BeNumerically("<", timeout+200*time.Millisecond))
		if a.status == http.StatusServiceUnavailable && strings.Contains(a.ErrorInfo, "too many room changes") && a.took < 100*time.Millisecond {
			early++
		}
	}
	g.Expect(early).To(BeNumerically(">=", 10), "most of a burst the API server cannot take in time is refused at once")
}

// Under overload, room lifecycle callbacks are admitted before member callbacks.
func TestMemberCallbacksShedBeforeLifecycle(t *testing.T) {
	g := NewWithT(t)
	store := newMemStore()
	release := make(chan struct{})
	store.refuse = func(roomID string) error {
		if strings.HasPrefix(roomID, "blocked") {
			<-release
		}
		return nil
	}
	s := newUnitServer(t, Options{MemberAdmission: 2}, store, logr.Discard())
	url := startHandler(t, s)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("blocked-%d", i), "u", time.Now().Unix()), url: url}))
		})
	}
	g.Eventually(s.inflight.Load).Should(BeEquivalentTo(3))
	r := send(t, callback{command: tencent.CommandMemberStateChanged, body: memberBody("elsewhere", "Online", []string{"m"}, nowMillis()), url: url})
	g.Expect(r.status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(r.ErrorInfo).To(ContainSubstring("overloaded"))
	// A lifecycle callback is still admitted.
	wg.Go(func() {
		expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("blocked-late", "u", time.Now().Unix()), url: url}))
	})
	g.Eventually(s.inflight.Load).Should(BeEquivalentTo(4))
	close(release)
	wg.Wait()
	g.Expect(store.appliedTo("blocked-late")).To(Equal(1))
}
