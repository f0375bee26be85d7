// Command load drives the callback server with an open-loop load like a busy app's:
// member enter/leave callbacks (the audience churning in many live rooms) arrive at a fixed
// rate whatever the answers' latency, while a room is created every 250 ms. It starts a
// real etcd + kube-apiserver (envtest, bin/k8s), declares the app as a user does (its
// namespace, a LiveApp, a Secret with its callback token), hands the token to the callback
// server as the controller does (which does not run here), and runs bin/manager
// --role=callback at its default flags against it, as a separate process, then measures,
// per rate:
//
//   - room creates stored (answered OK and present afterwards), their latency p50/p99, and
//     the ratio of the p99 to the same creates against the idle server, measured in the
//     same run;
//   - member callbacks' answers: p50/p99 and how many were not OK;
//   - API-server writes per second by lane, from the manager's liveroom_api_writes_total;
//   - after the storm: how long the count lane takes to drain, then how many rooms' stored
//     online count differs from the net of the member callbacks answered OK.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	sdkAppID = 1400000000
	token    = "bench-load-token"
	roomNS   = "live"
	// appName is the LiveApp's name; its tokens are in Secret appName-callback-tokens.
	appName = "load"
	// operatorNS holds the app's projection Secret and the manager's Lease.
	operatorNS = "liveroom-system"
)

type flags struct {
	manager     string
	rooms       int
	rates       []int
	duration    time.Duration
	createEvery time.Duration
	idle        time.Duration
	drainLimit  time.Duration
	maxInflight int
	extraArgs   []string
	profile     string
	profileRate int
}

func parseFlags() (*flags, error) {
	f := &flags{}
	rates := flag.String("rates", "500,2000,5000", "member callbacks per second, one storm per rate")
	extra := flag.String("manager-args", "", "extra flags for bin/manager, space-separated (defaults otherwise)")
	flag.StringVar(&f.manager, "manager", "bin/manager", "the manager binary")
	flag.IntVar(&f.rooms, "rooms", 1500, "live rooms whose audiences churn")
	// 60 s at a create every 250 ms is 240 creates: their p99 is not just the slowest one.
	flag.DurationVar(&f.duration, "duration", 60*time.Second, "length of each storm")
	flag.DurationVar(&f.createEvery, "create-every", 250*time.Millisecond, "a new room is created this often, idle and during the storms")
	flag.DurationVar(&f.idle, "idle", 30*time.Second, "length of the idle phase (creates only)")
	flag.DurationVar(&f.drainLimit, "drain-limit", 5*time.Minute, "give up waiting for the count lane to drain after this long")
	flag.IntVar(&f.maxInflight, "max-inflight", 8192, "requests in flight before the generator itself counts as saturated")
	flag.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of the manager, taken during one storm, to this file")
	flag.IntVar(&f.profileRate, "cpuprofile-rate", 0, "the storm to profile (default: the last)")
	flag.Parse()
	for _, p := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive number", p)
		}
		f.rates = append(f.rates, n)
	}
	f.extraArgs = strings.Fields(*extra)
	return f, nil
}

func main() {
	f, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f *flags) error {
	ctrl.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	k8s, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		return err
	}
	for _, ns := range []string{roomNS, operatorNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	if err := declareApp(ctx, k8s); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "liveroom-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	m, err := startManager(ctx, env, f, work)
	if err != nil {
		return err
	}
	defer m.stop()

	fmt.Printf("GOMAXPROCS=%d, NumCPU=%d: load generator, manager, kube-apiserver and etcd share these cores.\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("bin/manager --role=callback at its default flags%s; %d rooms; a create every %s\n", argsNote(f.extraArgs), f.rooms, f.createEvery)

	g := newGenerator(m.callbackURL, f.maxInflight)
	start := time.Now()
	if err := g.createRooms(ctx, f.rooms); err != nil {
		return fmt.Errorf("creating the rooms: %w", err)
	}
	fmt.Printf("setup: %d rooms created through callbacks in %s\n\n", f.rooms, time.Since(start).Round(time.Millisecond))

	idle := g.phase(ctx, 0, f.idle, f.createEvery)
	results := []*phaseResult{idle}
	for _, rate := range f.rates {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		writes0 := m.metrics()
		profileRate := f.profileRate
		if profileRate == 0 {
			profileRate = f.rates[len(f.rates)-1]
		}
		if f.profile != "" && rate == profileRate {
			go m.cpuProfile(f.profile, f.duration*3/4)
		}
		r := g.phase(ctx, rate, f.duration, f.createEvery)
		writes1 := m.metrics()
		r.writes = perSecond(writes0, writes1, r.wall)
		r.drain, r.drained = m.waitDrained(ctx, f.drainLimit)
		r.wrongCounts, r.uncertainCounts, r.countedRooms, err = g.checkCounts(ctx, k8s)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	stored, err := g.storedCreates(ctx, k8s)
	if err != nil {
		return err
	}
	report(results, stored)
	return nil
}

func argsNote(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return " plus " + strings.Join(args, " ")
}

// manager is the bin/manager process under test.
type manager struct {
	cmd                               *exec.Cmd
	callbackURL, metricsURL, pprofURL string
	done                              chan struct{}
	client                            *http.Client
}

func startManager(ctx context.Context, env *envtest.Environment, f *flags, work string) (*manager, error) {
	admin, err := env.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	m := &manager{callbackURL: "http://127.0.0.1:" + ports[0] + "/callback", metricsURL: "http://127.0.0.1:" + ports[1] + "/metrics",
		pprofURL: "http://127.0.0.1:" + ports[3] + "/debug/pprof/profile",
		done:     make(chan struct{}), client: &http.Client{Timeout: 5 * time.Second}}
	args := append([]string{
		"--role=callback", "--kubeconfig=" + kubeconfig, "--callback-bind-address=127.0.0.1:" + ports[0],
		"--metrics-bind-address=127.0.0.1:" + ports[1], "--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:" + ports[2], "--pprof-bind-address=127.0.0.1:" + ports[3],
	}, f.extraArgs...)
	log, err := os.Create(filepath.Join(work, "manager.log"))
	if err != nil {
		return nil, err
	}
	m.cmd = exec.Command(f.manager, args...)
	m.cmd.Env = append(os.Environ(), "POD_NAME=bench-load-manager", "POD_NAMESPACE="+operatorNS)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", f.manager, err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := m.client.Get("http://127.0.0.1:" + ports[2] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-m.done:
			b, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("the manager exited: %s", lastLines(string(b), 20))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the manager did not get ready in 60s")
		}
	}
}

// declareApp declares the app as a user does: a LiveApp in roomNS whose callback tokens
// are in a Secret beside it. The controller, which does not run here, would hand them to
// the callback server through a projection Secret in the operator's namespace: the bench
// writes that Secret as the controller does.
func declareApp(ctx context.Context, c client.Client) error {
	tokens := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: appName + "-callback-tokens", Namespace: roomNS},
		StringData: map[string]string{apps.TokensKey: token + "\n"},
	}
	if err := c.Create(ctx, tokens); err != nil {
		return err
	}
	app := &livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Name: appName, Namespace: roomNS},
		Spec: livev1.LiveAppSpec{
			SDKAppID: sdkAppID,
			Callback: livev1.LiveAppCallback{TokensSecretRef: &livev1.SecretKeyRef{Name: tokens.Name, Key: apps.TokensKey}},
		},
	}
	if err := c.Create(ctx, app); err != nil {
		return err
	}
	return c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: apps.ProjectionName(app.UID), Namespace: operatorNS,
			Labels: map[string]string{apps.ProjectionAppLabel: string(app.UID)},
			Annotations: map[string]string{
				apps.ProjectionAppAnnotation: roomNS + "/" + appName,
				apps.TokensHashAnnotation:    apps.TokensHash([]string{token}),
			},
		},
		Data: map[string][]byte{apps.TokensKey: []byte(token)},
	})
}

func (m *manager) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// metrics reads the manager's metrics as "name{labels}" -> value.
func (m *manager) metrics() map[string]float64 {
	out := map[string]float64{}
	resp, err := m.client.Get(m.metricsURL)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// cpuProfile writes a CPU profile of the manager over d to file.
func (m *manager) cpuProfile(file string, d time.Duration) {
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("%s?seconds=%d", m.pprofURL, int(d.Seconds())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: profiling the manager:", err)
		return
	}
	defer resp.Body.Close()
	out, err := os.Create(file)
	if err == nil {
		_, err = io.Copy(out, resp.Body)
		out.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: profiling the manager:", err)
	}
}

// waitDrained waits until the count lane has written every acknowledged delta.
func (m *manager) waitDrained(ctx context.Context, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		if v, ok := m.metrics()["liveroom_count_lane_backlog_rooms"]; ok && v == 0 {
			return time.Since(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), false
}

// perSecond is the rate of each lane's writes between two scrapes.
func perSecond(before, after map[string]float64, d time.Duration) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if lane, ok := strings.CutPrefix(k, `liveroom_api_writes_total{lane="`); ok {
			out[strings.TrimSuffix(lane, `"}`)] = (v - before[k]) / d.Seconds()
		}
	}
	return out
}

// generator sends signed callbacks and remembers what was acknowledged.
type generator struct {
	url      string
	http     *http.Client
	inflight chan struct{}
	created  atomic.Int64

	mu     sync.Mutex
	rooms  []string         // the churning rooms
	online map[string]int64 // per room, the model's members online (what is sent)
	acked  map[string]int64 // per room, the net of the member callbacks answered OK
	// lost are, per room, the enters and the leaves of member callbacks whose answer never
	// came (a timeout, a reset connection): the server may or may not have counted them.
	lost map[string]*lostChanges
}

// lostChanges are the unanswered enters and leaves of one room.
type lostChanges struct{ enters, leaves int64 }

func newGenerator(url string, maxInflight int) *generator {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     10 * time.Second,
	}
	return &generator{url: url, http: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		inflight: make(chan struct{}, maxInflight), online: map[string]int64{}, acked: map[string]int64{},
		lost: map[string]*lostChanges{}}
}

// send posts one callback and returns the status and the time to the answer.
func (g *generator) send(command, body string) (int, time.Duration) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("%s?SdkAppid=%d&CallbackCommand=%s&contenttype=json&Sign=%s&RequestTime=%s",
		g.url, sdkAppID, command, webhookserver.Sign(token, rt), rt)
	start := time.Now()
	resp, err := g.http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, time.Since(start)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func createBody(roomID string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":%q,"RoomType":"Live","Owner_Account":"host","MaxMemberCount":1000,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":8,"CreateTime":%d}}`,
		roomID, roomID, time.Now().Unix())
}

func memberBody(roomID, eventType, member string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":%q,"EventType":%q,"EventCause":"Enter","MemberList":[{"Member_Account":%q}],"EventTime":%d}`,
		roomID, eventType, member, time.Now().UnixMilli())
}

// createRooms creates the churning rooms, 16 at a time.
func (g *generator) createRooms(ctx context.Context, n int) error {
	ids := make(chan string)
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				if status, _ := g.send("Live.CallbackAfterCreateRoom", createBody(id)); status != http.StatusOK {
					errc <- fmt.Errorf("create of %s answered %d", id, status)
					return
				}
			}
		})
	}
	for i := range n {
		id := fmt.Sprintf("churn-%05d", i)
		g.rooms = append(g.rooms, id)
		select {
		case ids <- id:
		case err := <-errc:
			close(ids)
			wg.Wait()
			return err
		case <-ctx.Done():
			close(ids)
			wg.Wait()
			return ctx.Err()
		}
	}
	close(ids)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// phaseResult is what one phase measured.
type phaseResult struct {
	rate                      int
	wall                      time.Duration
	creates, createsOK        int
	createdIDs                []string // answered OK
	createLat                 []time.Duration
	members, membersOK        int
	memberLat                 []time.Duration
	memberStatus              map[int]int
	saturated                 int
	writes                    map[string]float64
	drain                     time.Duration
	drained                   bool
	wrongCounts, countedRooms int
	uncertainCounts           int // rooms that differ only by changes whose answer was lost
}

// phase sends member callbacks at rate (0: none) for d, open loop, and a create every
// createEvery, and waits for every answer.
func (g *generator) phase(ctx context.Context, rate int, d, createEvery time.Duration) *phaseResult {
	r := &phaseResult{rate: rate, memberStatus: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)

	// Creates, one every createEvery.
	wg.Go(func() {
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * createEvery)
			if !at.Before(end) || ctx.Err() != nil {
				return
			}
			time.Sleep(time.Until(at))
			id := fmt.Sprintf("new-%06d", g.created.Add(1))
			wg.Go(func() {
				status, lat := g.send("Live.CallbackAfterCreateRoom", createBody(id))
				mu.Lock()
				r.creates++
				r.createLat = append(r.createLat, lat)
				if status == http.StatusOK {
					r.createsOK++
					r.createdIDs = append(r.createdIDs, id)
				}
				mu.Unlock()
			})
		}
	})
	// Member callbacks at the rate, whatever the answers take.
	if rate > 0 {
		interval := time.Second / time.Duration(rate)
		rng := rand.New(rand.NewPCG(uint64(rate), 7))
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(end) || ctx.Err() != nil {
				break
			}
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			}
			room := g.rooms[rng.IntN(len(g.rooms))]
			g.mu.Lock()
			eventType, delta := "Online", int64(1)
			if g.online[room] > 0 && rng.IntN(2) == 0 {
				eventType, delta = "Offline", -1
			}
			g.online[room] += delta
			g.mu.Unlock()
			select {
			case g.inflight <- struct{}{}:
			default:
				mu.Lock()
				r.saturated++
				mu.Unlock()
				g.mu.Lock()
				g.online[room] -= delta
				g.mu.Unlock()
				continue
			}
			body := memberBody(room, eventType, fmt.Sprintf("m%d", i))
			wg.Go(func() {
				defer func() { <-g.inflight }()
				status, lat := g.send("Live.CallbackAfterMemberStateChanged", body)
				mu.Lock()
				r.members++
				r.memberLat = append(r.memberLat, lat)
				r.memberStatus[status]++
				if status == http.StatusOK {
					r.membersOK++
				}
				mu.Unlock()
				g.mu.Lock()
				switch status {
				case http.StatusOK:
					g.acked[room] += delta
				case 0:
					g.online[room] -= delta // the model goes on without it; the server may have it
					g.lostChange(room, delta)
				default:
					g.online[room] -= delta // refused: the member's change is not the operator's to know
				}
				g.mu.Unlock()
			})
		}
	}
	wg.Wait()
	r.wall = time.Since(start)
	return r
}

// lostChange records a member change whose answer never came; the caller holds g.mu.
func (g *generator) lostChange(room string, delta int64) {
	l := g.lost[room]
	if l == nil {
		l = &lostChanges{}
		g.lost[room] = l
	}
	if delta > 0 {
		l.enters += delta
	} else {
		l.leaves -= delta
	}
}

// checkCounts compares each churning room's stored online count with the net of the
// member callbacks answered OK. A room with unanswered changes may hold any of them: it is
// wrong only outside what they allow, and counted in uncertain when it differs within.
func (g *generator) checkCounts(ctx context.Context, c client.Client) (wrong, uncertain, rooms int, err error) {
	var list livev1.LiveRoomList
	if err := c.List(ctx, &list, client.InNamespace(roomNS)); err != nil {
		return 0, 0, 0, err
	}
	stored := map[string]int64{}
	for i := range list.Items {
		stored[list.Items[i].Spec.RoomID] = list.Items[i].Status.Audience.Online
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range g.rooms {
		got, want := stored[id], g.acked[id]
		if got == want {
			continue
		}
		if l := g.lost[id]; l != nil && got >= want-l.leaves && got <= want+l.enters {
			uncertain++
			continue
		}
		wrong++
	}
	return wrong, uncertain, len(g.rooms), nil
}

// storedCreates counts the rooms answered OK that are stored and live.
func (g *generator) storedCreates(ctx context.Context, c client.Client) (map[string]bool, error) {
	var list livev1.LiveRoomList
	if err := c.List(ctx, &list, client.InNamespace(roomNS)); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for i := range list.Items {
		if list.Items[i].Status.Phase == livev1.RoomPhaseLive {
			out[list.Items[i].Spec.RoomID] = true
		}
	}
	return out, nil
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func report(results []*phaseResult, stored map[string]bool) {
	idle := results[0]
	idleP99 := percentile(idle.createLat, 0.99)
	fmt.Println()
	fmt.Println("| member callbacks/s | creates stored | create p50 / p99 | p99 vs idle | member answers p50 / p99 | members not OK | writes/s lifecycle / counts | count lane drained in | wrong counts |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		label := "idle"
		if r.rate > 0 {
			label = fmt.Sprintf("%d (sent %.0f/s)", r.rate, float64(r.members+r.saturated)/r.wall.Seconds())
		}
		members, notOK, drained, wrong := "—", "—", "—", "—"
		if r.rate > 0 {
			members = ms(percentile(r.memberLat, 0.5)) + " / " + ms(percentile(r.memberLat, 0.99))
			notOK = fmt.Sprintf("%d of %d", r.members-r.membersOK, r.members)
			if r.saturated > 0 {
				notOK += fmt.Sprintf(" (+%d not sent: generator saturated)", r.saturated)
			}
			if codes := otherCodes(r.memberStatus); codes != "" {
				notOK += " " + codes
			}
			drained = r.drain.Round(time.Millisecond).String()
			if !r.drained {
				drained = "not drained after " + drained
			}
			wrong = fmt.Sprintf("%d of %d rooms", r.wrongCounts, r.countedRooms)
			if r.uncertainCounts > 0 {
				wrong += fmt.Sprintf(" (%d more differ only by changes whose answer was lost)", r.uncertainCounts)
			}
		}
		fmt.Printf("| %s | %s | %s / %s | %.2f× | %s | %s | %.1f / %.1f | %s | %s |\n",
			label, storedPct(r, stored), ms(percentile(r.createLat, 0.5)), ms(percentile(r.createLat, 0.99)),
			float64(percentile(r.createLat, 0.99))/float64(max(idleP99, time.Microsecond)),
			members, notOK, r.writes["lifecycle"], r.writes["counts"], drained, wrong)
	}
}

// storedPct counts the creates answered OK whose room is stored and live.
func storedPct(r *phaseResult, stored map[string]bool) string {
	if r.creates == 0 {
		return "—"
	}
	n := 0
	for _, id := range r.createdIDs {
		if stored[id] {
			n++
		}
	}
	return fmt.Sprintf("%d of %d (%.0f%%)", n, r.creates, 100*float64(n)/float64(r.creates))
}

func otherCodes(status map[int]int) string {
	var parts []string
	for code, n := range status {
		if code != http.StatusOK {
			parts = append(parts, fmt.Sprintf("%d×%d", n, code))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return ""
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
