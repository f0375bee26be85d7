// Command callbacks benchmarks the callback server's create path against raw API writes.
//
// It starts a real etcd + kube-apiserver (envtest, bin/k8s/1.37.2), a manager with the
// cache configured as main.go configures it, the roomstore index and a callback server
// listening on 127.0.0.1:0 with a token, and then, per concurrency level, interleaves in
// rounds (rotating the order) these ways of storing the same new LiveRooms:
//
//   - callbacks: signed POST /callback of Live.CallbackAfterCreateRoom; the server answers
//     once the room is stored (server-side apply of the object, then of its status) and
//     records a RoomCreated Event, as the operator does.
//   - create+status: the fair baseline, a controller-runtime client without cache doing
//     Create of the same LiveRoom followed by Status().Update with the same status.
//   - create only: Create alone, shown for transparency (half the writes of the others).
//   - cb, no Events (diagnostic, -no-events-mode): callbacks to a twin server on the same
//     manager that records no Events.
//
// Every request uses a distinct RoomId; each level starts from empty namespaces. Latency
// is the client-side round trip of a whole request (for the baselines: both writes);
// throughput is requests over the wall time of the runs. After a callbacks run the
// benchmark waits for the server's asynchronous Events to be stored, so that they are
// counted against callbacks and do not slow the next run. Client, callback server, etcd
// and kube-apiserver all share the machine's cores, as does anything else running on it
// (reported as "other processes busy").
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/liveroom-io/liveroom-operator/hack/bench/internal/measure"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	// sdkAppID is the app of the callbacks; sdkAppIDNoEvents the twin app of the
	// diagnostic mode, whose rooms are in their own namespace.
	sdkAppID         = 1400000000
	sdkAppIDNoEvents = 1400000001
	token            = "bench-callback-token"
	// Namespaces of the three modes; the manager's cache watches all of them, as main.go's does.
	nsCallbacks    = "bench-callbacks"
	nsCreateStatus = "bench-create-status"
	nsCreateOnly   = "bench-create-only"
	nsNoEvents     = "bench-callbacks-noevents"
	// nsOperator holds the apps' projection Secrets and the servers' Leases.
	nsOperator = "bench-operator"
)

type mode int

const (
	modeCallback mode = iota
	modeCreateStatus
	modeCreateOnly
	// modeNoEvents is a diagnostic: callbacks to a second server that records no Events.
	modeNoEvents
	numModes
)

var modeNames = [numModes]string{"callbacks", "create+status", "create only", "cb, no Events"}

type flags struct {
	levels     []int
	requests   []int
	rounds     int
	warmup     int
	qps        float64
	burst      int
	timeout    time.Duration
	noEvents   bool
	cpuProfile string
	verbose    bool
}

func parseFlags() (*flags, error) {
	f := &flags{}
	levels := flag.String("levels", "1,16,64", "concurrency levels, comma-separated")
	requests := flag.String("requests", "600,2400,2400", "requests per mode at each level (one value, or one per level)")
	flag.IntVar(&f.rounds, "rounds", 8, "rounds per level; each round runs every mode on its share of the requests, in rotating order")
	flag.IntVar(&f.warmup, "warmup", 200, "unmeasured requests per mode at concurrency 16 before the first level")
	flag.Float64Var(&f.qps, "qps", 5000, "client QPS of the callback server's manager and of the baseline client")
	flag.IntVar(&f.burst, "burst", 10000, "client burst of the callback server's manager and of the baseline client")
	flag.DurationVar(&f.timeout, "callback-timeout", 1500*time.Millisecond, "the server's time to store a callback before answering 503 (--callback-timeout)")
	flag.BoolVar(&f.noEvents, "no-events-mode", true, "also measure, as a diagnostic, callbacks to a second server that records no Events (the operator records one per new room)")
	flag.BoolVar(&f.verbose, "v", false, "print every run")
	flag.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (client + callback server) over the measured levels")
	flag.Parse()
	var err error
	if f.levels, err = intList(*levels); err != nil {
		return nil, fmt.Errorf("-levels: %w", err)
	}
	if f.requests, err = intList(*requests); err != nil {
		return nil, fmt.Errorf("-requests: %w", err)
	}
	switch {
	case len(f.requests) == 1:
		f.requests = slices.Repeat(f.requests, len(f.levels))
	case len(f.requests) != len(f.levels):
		return nil, errors.New("-requests needs one value or one per level")
	}
	if f.rounds < 1 {
		return nil, errors.New("-rounds must be at least 1")
	}
	return f, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	f, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "callbacks:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "callbacks: setup failed:", err)
		os.Exit(1)
	}
}

// bench holds what every request needs.
type bench struct {
	url        string
	urlNoEv    string
	http       *http.Client
	raw        client.Client // controller-runtime client without cache
	createTime int64         // CreateTime of every room, so objects compare equal
	seq        atomic.Int64  // distinct RoomIds
	metricsCl  rest.Interface
	events     atomic.Int64 // Events seen in the callback namespace
	eventsOK   atomic.Int64 // rooms the server said it created (one Event each)
}

func run(ctx context.Context, f *flags) error {
	ctrl.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = float32(f.qps), f.burst

	raw, err := client.New(rest.CopyConfig(cfg), client.Options{Scheme: testenv.Scheme})
	if err != nil {
		return err
	}
	if err := declareApps(ctx, raw); err != nil {
		return err
	}
	srv, err := startServers(ctx, cfg, f.timeout)
	if err != nil {
		return err
	}
	defer srv.stop()
	b, err := newBench(ctx, cfg, raw, srv, slices.Max(f.levels))
	if err != nil {
		return err
	}

	fmt.Printf("GOMAXPROCS=%d, NumCPU=%d: client, callback server, kube-apiserver and etcd share these cores.\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("client QPS/burst %g/%d on both sides; %d rounds per level, modes interleaved in rotating order\n",
		f.qps, f.burst, f.rounds)
	modes := []mode{modeCallback, modeCreateStatus, modeCreateOnly}
	if f.noEvents {
		modes = append(modes, modeNoEvents)
	}
	// Warm-up: connections, informers, apiserver caches; nothing recorded.
	for _, m := range modes {
		if _, err := b.runMode(ctx, m, 16, f.warmup); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	b.drainEvents(ctx)

	stopProfile, err := measure.CPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	results, acct, err := b.measureLevels(ctx, f, modes, srv.cache)
	if err != nil {
		return err
	}
	pprof.StopCPUProfile()

	printTable(results, f.noEvents)
	printAccounting(acct, modes)
	return b.verify(ctx)
}

// declareApps creates the namespaces of every mode and the operator's, and the apps of
// the two callback modes.
func declareApps(ctx context.Context, c client.Client) error {
	for _, ns := range []string{nsCallbacks, nsCreateStatus, nsCreateOnly, nsNoEvents, nsOperator} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	for ns, id := range map[string]int64{nsCallbacks: sdkAppID, nsNoEvents: sdkAppIDNoEvents} {
		if err := declareApp(ctx, c, ns, id); err != nil {
			return err
		}
	}
	return nil
}

// servers are the callback server under test and its diagnostic twin, on one manager.
type servers struct {
	withEvents, noEvents *webhookserver.Server
	cache                cache.Cache
	stopManager          context.CancelFunc
	done                 chan error
}

// startServers starts a manager as main.go builds it for --role=callback, without the
// lanes, with the server under test (recording Events, as main.go wires it) and a twin
// that records none, and waits until both listen.
func startServers(ctx context.Context, cfg *rest.Config, timeout time.Duration) (*servers, error) {
	mgr, err := ctrl.NewManager(rest.CopyConfig(cfg), manager.Options{
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  caches.CallbackServer(nsOperator),
	})
	if err != nil {
		return nil, err
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	newServer := func(replica string, recorder events.EventRecorder) (*webhookserver.Server, error) {
		store := roomstore.New(roomstore.Config{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			FieldOwner: webhookserver.FieldOwner, Recorder: recorder})
		// Creates only: the count lane is never written to.
		counts := audience.New(audience.Config{Log: logr.Discard()}, func(ns string, id int64) audience.Store { return store.ForApp(ns, id) })
		srv := webhookserver.New(webhookserver.Options{
			BindAddress: "127.0.0.1:0", OperatorNamespace: nsOperator, Replica: replica,
			Apps: mgr.GetCache(), Client: mgr.GetClient(), Timeout: timeout,
		}, store, counts, webhookserver.NewMetrics(prometheus.NewRegistry()), logr.Discard())
		return srv, mgr.Add(srv)
	}
	s := &servers{cache: mgr.GetCache(), done: make(chan error, 1)}
	if s.withEvents, err = newServer("bench-callbacks", mgr.GetEventRecorder(webhookserver.FieldOwner)); err != nil {
		return nil, err
	}
	// The diagnostic twin: same manager, client and cache, no Events; the bench sends it
	// the twin app's callbacks.
	if s.noEvents, err = newServer("bench-callbacks-noevents", nil); err != nil {
		return nil, err
	}
	mgrCtx, stopManager := context.WithCancel(ctx)
	s.stopManager = stopManager
	go func() { s.done <- mgr.Start(mgrCtx) }()
	if err := s.waitListening(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *servers) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for s.withEvents.Addr() == nil || s.noEvents.Addr() == nil || !s.cache.WaitForCacheSync(ctx) {
		select {
		case err := <-s.done:
			s.done <- err // for stop
			return fmt.Errorf("manager stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("callback server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// stop stops the manager and reports how it ended, unless it ended as asked.
func (s *servers) stop() {
	s.stopManager()
	if err := <-s.done; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "callbacks: manager:", err)
	}
}

func newBench(ctx context.Context, cfg *rest.Config, raw client.Client, srv *servers, maxConc int) (*bench, error) {
	b := &bench{
		url:     "http://" + srv.withEvents.Addr().String() + "/callback",
		urlNoEv: "http://" + srv.noEvents.Addr().String() + "/callback",
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConns: 4 * maxConc, MaxIdleConnsPerHost: 4 * maxConc, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		}, Timeout: 30 * time.Second},
		raw:        raw,
		createTime: time.Now().Unix(),
	}
	mcfg := rest.CopyConfig(cfg)
	mcfg.QPS, mcfg.Burst = -1, 0 // no client-side limit for the metrics scrape and the watch
	var err error
	if b.metricsCl, err = measure.MetricsClient(mcfg); err != nil {
		return nil, err
	}
	return b, b.countEvents(ctx, mcfg)
}

// measureLevels runs every level: per round, each mode on its share of the level's
// requests, in rotating order; every level but the last is cleaned up after.
func (b *bench) measureLevels(ctx context.Context, f *flags, modes []mode, c cache.Cache) ([]levelResult, [numModes]accounting, error) {
	var results []levelResult
	var acct [numModes]accounting
	for m := range numModes {
		acct[m].api = map[string]float64{}
		acct[m].cpu = map[string]float64{}
	}
	for li, conc := range f.levels {
		lr := levelResult{conc: conc}
		n := f.requests[li]
		levelCPU, levelStart := measure.CPUMillis(), time.Now()
		for r := range f.rounds {
			share := n / f.rounds
			if r == f.rounds-1 {
				share = n - share*(f.rounds-1)
			}
			for k := range modes {
				m := modes[(r+k)%len(modes)]
				res, err := b.measureRun(ctx, m, conc, share, &acct[m])
				if err != nil {
					return nil, acct, err
				}
				if f.verbose {
					printRun(conc, r, m, share, res)
				}
				lr.modes[m].add(res)
			}
		}
		lr.background = background(levelCPU, measure.CPUMillis(), time.Since(levelStart))
		results = append(results, lr)
		if li < len(f.levels)-1 {
			// Every level starts from empty namespaces, so the stored rooms do not pile up.
			if err := b.clean(ctx, c); err != nil {
				return nil, acct, err
			}
		}
	}
	return results, acct, nil
}

// measureRun runs mode m once and adds what it cost the API server and each process to
// acct.
func (b *bench) measureRun(ctx context.Context, m mode, conc, n int, acct *accounting) (runResult, error) {
	apiBefore, cpuBefore := measure.APIRequests(ctx, b.metricsCl, "liverooms", "events"), measure.CPUMillis()
	res, err := b.runMode(ctx, m, conc, n)
	if err != nil {
		return res, err
	}
	if m == modeCallback {
		// Its Events are written asynchronously: let them land (and be counted here)
		// before the next run starts.
		b.drainEvents(ctx)
	}
	cpuAfter, apiAfter := measure.CPUMillis(), measure.APIRequests(ctx, b.metricsCl, "liverooms", "events")
	acct.add(n, apiBefore, apiAfter, cpuBefore, cpuAfter)
	return res, nil
}

func printRun(conc, round int, m mode, n int, res runResult) {
	var one stats
	one.add(res)
	fmt.Printf("  c=%d round %d %-14s %5d in %7s: %7.1f/s p50 %8s p99 %8s errors %d\n", conc, round, modeNames[m], n,
		res.wall.Round(time.Millisecond), one.rate(), ms(one.pct(.5)), ms(one.pct(.99)), res.errs)
}

// runResult is one run of a mode: per-request latencies and the wall time.
type runResult struct {
	lat    []time.Duration
	errs   int
	wall   time.Duration
	sample error
}

// runMode sends n requests of mode m from conc workers and waits for all answers.
func (b *bench) runMode(ctx context.Context, m mode, conc, n int) (runResult, error) {
	// Everything a request needs is prepared before the clock starts.
	ids := make([]string, n)
	var objs []*livev1.LiveRoom
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", b.seq.Add(1))
	}
	if m == modeCreateStatus || m == modeCreateOnly {
		objs = make([]*livev1.LiveRoom, n)
		ns := nsCreateStatus
		if m == modeCreateOnly {
			ns = nsCreateOnly
		}
		for i, id := range ids {
			o, err := b.roomObject(id, ns)
			if err != nil {
				return runResult{}, err
			}
			objs[i] = o
		}
	}
	res := runResult{lat: make([]time.Duration, n)}
	failed := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				var err error
				switch m {
				case modeCallback:
					if err = b.callback(ctx, b.url, sdkAppID, ids[i]); err == nil {
						b.eventsOK.Add(1)
					}
				case modeNoEvents:
					err = b.callback(ctx, b.urlNoEv, sdkAppIDNoEvents, ids[i])
				case modeCreateStatus:
					err = b.createStatus(ctx, objs[i])
				case modeCreateOnly:
					err = b.raw.Create(ctx, objs[i])
				}
				res.lat[i] = time.Since(t0)
				failed[i] = err
			}
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	ok := res.lat[:0]
	for i, err := range failed {
		if err != nil {
			res.errs++
			res.sample = err
			continue
		}
		ok = append(ok, res.lat[i])
	}
	res.lat = ok
	return res, nil
}

// body is the Tencent create callback of a room, as server_test.go sends it.
func (b *bench) body(roomID string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":%q,"RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`,
		roomID, roomID, b.createTime)
}

func (b *bench) callback(ctx context.Context, target string, app int64, roomID string) error {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	q := url.Values{}
	q.Set("SdkAppid", strconv.FormatInt(app, 10))
	q.Set("CallbackCommand", tencent.CommandCreateRoom)
	q.Set("contenttype", "json")
	q.Set("ClientIP", "127.0.0.1")
	q.Set("OptPlatform", "RESTAPI")
	q.Set("RequestTime", rt)
	q.Set("Sign", webhookserver.Sign(token, rt))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"?"+q.Encode(), strings.NewReader(b.body(roomID)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(ans, []byte(`"ActionStatus":"OK"`)) {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(ans))
	}
	return nil
}

// declareApp declares the app of sdkAppID in ns as a user does (a LiveApp whose callback
// token is in a Secret beside it) and hands the token to the callback servers through a
// projection Secret, as the controller (which does not run here) does.
func declareApp(ctx context.Context, c client.Client, ns string, id int64) error {
	tokens := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-callback-tokens", Namespace: ns},
		StringData: map[string]string{apps.TokensKey: token + "\n"},
	}
	if err := c.Create(ctx, tokens); err != nil {
		return err
	}
	app := &livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: ns},
		Spec: livev1.LiveAppSpec{
			SDKAppID: id,
			Callback: livev1.LiveAppCallback{TokensSecretRef: &livev1.SecretKeyRef{Name: tokens.Name, Key: apps.TokensKey}},
		},
	}
	if err := c.Create(ctx, app); err != nil {
		return err
	}
	return c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: apps.ProjectionName(app.UID), Namespace: nsOperator,
			Labels: map[string]string{apps.ProjectionAppLabel: string(app.UID)},
			Annotations: map[string]string{
				apps.ProjectionAppAnnotation: ns + "/" + app.Name,
				apps.TokensHashAnnotation:    apps.TokensHash([]string{token}),
			},
		},
		Data: map[string][]byte{apps.TokensKey: []byte(token)},
	})
}

// roomObject is the LiveRoom the callback server stores for the room's create callback:
// the same decoder, mutation, labels and annotation, in another namespace.
func (b *bench) roomObject(roomID, ns string) (*livev1.LiveRoom, error) {
	cb, err := tencent.Decode([]byte(b.body(roomID)), tencent.CommandCreateRoom)
	if err != nil {
		return nil, err
	}
	room := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.RoomObjectName(roomID), Namespace: ns,
			Annotations: map[string]string{livev1.OriginAnnotation: livev1.OriginCallback},
		},
		Spec: livev1.LiveRoomSpec{RoomID: roomID, SDKAppID: sdkAppID},
	}
	if out := roomstate.ForCallback(cb, time.Now())(room); out != roomstate.Created {
		return nil, fmt.Errorf("unexpected outcome %s", out)
	}
	room.Labels = roomstate.Labels(&room.Spec)
	return room, nil
}

// createStatus stores a new room in two writes, as the callback path does: the object,
// then its status through the status subresource.
func (b *bench) createStatus(ctx context.Context, room *livev1.LiveRoom) error {
	st := room.Status.DeepCopy()
	if err := b.raw.Create(ctx, room); err != nil {
		return err
	}
	room.Status = *st
	return b.raw.Status().Update(ctx, room)
}

// clean deletes the rooms of every mode and waits until the API server and the
// manager's cache have none left.
func (b *bench) clean(ctx context.Context, c cache.Cache) error {
	nss := []string{nsCallbacks, nsCreateStatus, nsCreateOnly, nsNoEvents}
	for _, ns := range nss {
		if err := b.raw.DeleteAllOf(ctx, &livev1.LiveRoom{}, client.InNamespace(ns)); err != nil {
			return err
		}
	}
	for _, r := range []client.Reader{b.raw, c} {
		for _, ns := range nss {
			for {
				var list livev1.LiveRoomList
				if err := r.List(ctx, &list, client.InNamespace(ns), client.Limit(1)); err != nil {
					return err
				}
				if len(list.Items) == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	time.Sleep(time.Second)
	return nil
}

// verify checks that both paths stored the same rooms.
func (b *bench) verify(ctx context.Context) error {
	var cbRooms, bsRooms livev1.LiveRoomList // the create-only rooms have no status to compare
	if err := b.raw.List(ctx, &cbRooms, client.InNamespace(nsCallbacks)); err != nil {
		return err
	}
	if err := b.raw.List(ctx, &bsRooms, client.InNamespace(nsCreateStatus)); err != nil {
		return err
	}
	live := 0
	for i := range cbRooms.Items {
		if cbRooms.Items[i].Status.Phase == livev1.RoomPhaseLive {
			live++
		}
	}
	same := "no rooms to compare"
	if len(cbRooms.Items) > 0 && len(bsRooms.Items) > 0 {
		same = "identical"
		if d := compareRooms(&cbRooms.Items[0], &bsRooms.Items[0]); d != "" {
			same = "DIFFERENT: " + d
		}
	}
	fmt.Printf("last level stored: %d callback rooms (%d Live), %d create+status rooms; callback room vs baseline room (spec, labels, annotations, status): %s\n",
		len(cbRooms.Items), live, len(bsRooms.Items), same)
	return nil
}

func compareRooms(a, b *livev1.LiveRoom) string {
	norm := func(r *livev1.LiveRoom) *livev1.LiveRoom {
		r = r.DeepCopy()
		r.Spec.RoomID, r.Spec.RoomName = "", ""
		return r
	}
	a, b = norm(a), norm(b)
	switch {
	case !reflect.DeepEqual(a.Spec, b.Spec):
		return fmt.Sprintf("spec %+v vs %+v", a.Spec, b.Spec)
	case !reflect.DeepEqual(a.Labels, b.Labels):
		return fmt.Sprintf("labels %v vs %v", a.Labels, b.Labels)
	case !reflect.DeepEqual(a.Annotations, b.Annotations):
		return fmt.Sprintf("annotations %v vs %v", a.Annotations, b.Annotations)
	case !reflect.DeepEqual(a.Status, b.Status):
		return fmt.Sprintf("status %+v vs %+v", a.Status, b.Status)
	}
	return ""
}

// stats aggregates the runs of one mode at one level.
type stats struct {
	lat  []time.Duration
	wall time.Duration
	errs int
	last error
}

func (s *stats) add(r runResult) {
	s.lat = append(s.lat, r.lat...)
	s.wall += r.wall
	s.errs += r.errs
	if r.sample != nil {
		s.last = r.sample
	}
}

func (s *stats) rate() float64 { return float64(len(s.lat)) / s.wall.Seconds() }

func (s *stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	i := int(float64(len(s.lat))*p+0.999999) - 1
	return s.lat[max(0, min(i, len(s.lat)-1))]
}

type levelResult struct {
	conc       int
	modes      [numModes]stats
	background float64 // cores used by other processes during the level
}

// background is the average number of cores that processes other than this one,
// kube-apiserver and etcd kept busy between two cpuTicks samples.
func background(before, after map[string]float64, wall time.Duration) float64 {
	d := func(k string) float64 { return after[k] - before[k] }
	return max(0, d("machine")-d("self")-d("kube-apiserver")-d("etcd")) / float64(wall.Milliseconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func printTable(results []levelResult, noEvents bool) {
	fmt.Println()
	fmt.Printf("%4s | %9s %8s %8s | %9s %8s %8s | %9s %8s %8s | %6s %6s\n",
		"conc", "cb/s", "p50", "p99", "ops/s", "p50", "p99", "ops/s", "p50", "p99", "tput", "p99")
	fmt.Printf("%4s | %-28s | %-28s | %-28s | %s\n", "", "callbacks", "baseline: create+status", "baseline: create only", "cb / create+status")
	for _, r := range results {
		cb, cs, c := &r.modes[modeCallback], &r.modes[modeCreateStatus], &r.modes[modeCreateOnly]
		fmt.Printf("%4d | %9.1f %8s %8s | %9.1f %8s %8s | %9.1f %8s %8s | %6.2f %6.2f\n",
			r.conc, cb.rate(), ms(cb.pct(.5)), ms(cb.pct(.99)),
			cs.rate(), ms(cs.pct(.5)), ms(cs.pct(.99)),
			c.rate(), ms(c.pct(.5)), ms(c.pct(.99)),
			cb.rate()/cs.rate(), float64(cb.pct(.99))/float64(cs.pct(.99)))
	}
	fmt.Println()
	for _, r := range results {
		cb, cs := &r.modes[modeCallback], &r.modes[modeCreateStatus]
		tput, p99 := cb.rate()/cs.rate(), float64(cb.pct(.99))/float64(cs.pct(.99))
		verdict := "PASS"
		if tput < 0.8 || p99 > 1.5 {
			verdict = "FAIL"
		}
		fmt.Printf("c=%-3d %s  throughput ratio %.2f (target >= 0.80), p99 ratio %.2f (target <= 1.50); other processes busy %.2f cores\n",
			r.conc, verdict, tput, p99, r.background)
		for m := range numModes {
			if s := &r.modes[m]; s.errs > 0 {
				fmt.Printf("       %s: %d failed requests (excluded from latencies), e.g. %v\n", modeNames[m], s.errs, s.last)
			}
		}
	}
	if noEvents {
		fmt.Println()
		fmt.Println("diagnostic, same runs interleaved: callbacks to a twin server that records no Events")
		for _, r := range results {
			ne, cs := &r.modes[modeNoEvents], &r.modes[modeCreateStatus]
			fmt.Printf("c=%-3d %9.1f cb/s  p50 %8s  p99 %8s   vs create+status: throughput %.2f, p99 %.2f\n",
				r.conc, ne.rate(), ms(ne.pct(.5)), ms(ne.pct(.99)), ne.rate()/cs.rate(), float64(ne.pct(.99))/float64(cs.pct(.99)))
		}
	}
}

// accounting is what one mode cost over all measured runs: kube-apiserver requests and
// CPU time per process.
type accounting struct {
	n   int
	api map[string]float64
	cpu map[string]float64
}

func (a *accounting) add(n int, apiBefore, apiAfter, cpuBefore, cpuAfter map[string]float64) {
	a.n += n
	for k, v := range apiAfter {
		a.api[k] += v - apiBefore[k]
	}
	for k, v := range cpuAfter {
		a.cpu[k] += v - cpuBefore[k]
	}
}

// printAccounting shows, per request sent, the kube-apiserver requests each mode caused
// and the CPU it took in each process. Events are written asynchronously, so a few may
// be counted in the run that follows.
func printAccounting(acct [numModes]accounting, modes []mode) {
	fmt.Println()
	fmt.Println("per request sent, over the measured levels (apiserver_request_total; CPU from /proc):")
	for _, m := range modes {
		a := &acct[m]
		keys := make([]string, 0, len(a.api))
		for k, v := range a.api {
			if v/float64(a.n) >= 0.005 {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, a.api[k]/float64(a.n)))
		}
		fmt.Printf("  %-14s API: %s\n", modeNames[m], strings.Join(parts, ", "))
		fmt.Printf("  %-14s CPU ms: bench process (client+server) %.2f, kube-apiserver %.2f, etcd %.2f\n", "",
			a.cpu["self"]/float64(a.n), a.cpu["kube-apiserver"]/float64(a.n), a.cpu["etcd"]/float64(a.n))
	}
}

// drainEvents waits until the API server has an Event for every room the server created
// (the recorder writes them asynchronously), or no Event arrived for a second.
func (b *bench) drainEvents(ctx context.Context) {
	last, since := b.events.Load(), time.Now()
	for ctx.Err() == nil && time.Since(since) < time.Second {
		n := b.events.Load()
		if n >= b.eventsOK.Load() {
			return
		}
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countEvents counts the Events added in the callback namespace through a metadata watch.
func (b *bench) countEvents(ctx context.Context, cfg *rest.Config) error {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	res := mc.Resource(eventsv1.SchemeGroupVersion.WithResource("events")).Namespace(nsCallbacks)
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	b.events.Store(int64(len(list.Items)))
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if m, ok := ev.Object.(*metav1.PartialObjectMetadata); ok {
					rv = m.ResourceVersion
					if ev.Type == watch.Added {
						b.events.Add(1)
					}
				}
			}
		}
	}()
	return nil
}
