// Command reconcile benchmarks the LiveRoom controller at a list of room counts. At each
// point it stores N live LiveRooms and one RecordingPolicy selecting them all in a fresh
// envtest control plane, then:
//
//   - cold start: it starts a manager wired as the controller role's (same cache options,
//     client QPS/burst) and measures the time until all N recording Jobs exist, and the
//     manager's heap per room once the controller has settled;
//   - steady state: it stops that manager and starts a fresh one on the same objects (every
//     Job exists, nothing is left to write), waits until it has synced and reconciled every
//     room, and measures its heap per room again. This is what a restarted or long-running
//     manager holds; the cold-start figure also holds the Event recorder's cache of every
//     Event sent in the last 6 to 12 minutes (one RecordingStarted per room here);
//   - the callback server's cache: a manager with the callback role's cache options and
//     room index, for its heap per room.
//
// At the point given by -time-at, a bare client-go loop also creates N equivalent Jobs
// (same template, labels, environment and owner reference; another namespace) at the same
// QPS and burst and the same concurrency as the controller's workers, once before the
// manager starts and once after it stopped, for the time comparison.
//
// Heap per room is HeapAlloc after a forced GC with the manager running, minus the same
// before the manager started, divided by N. The verdict on memory is the steady-state
// figure at the largest point.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/controllers"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	sdkAppID   = 1400000000
	nsRooms    = "bench-rooms"
	nsBare1    = "bench-bare-before"
	nsBare2    = "bench-bare-after"
	policyName = "record-all"
	// operatorNamespace is where the callback server would read its apps' token Secrets.
	operatorNamespace = "liveroom-system"
)

type flags struct {
	rooms        []int
	timeAt       int
	heapTarget   float64
	qps          float64
	burst        int
	workers      int
	setupQPS     float64
	setupWorkers int
	bareAfter    bool
	timeout      time.Duration
	cpuProfile   string
	heapProfile  string
	memRate      int
}

func parseFlags() (*flags, error) {
	f := &flags{}
	rooms := flag.String("rooms", "2000,10000", "comma-separated room counts (and so recording Jobs), one fresh control plane each")
	flag.IntVar(&f.timeAt, "time-at", 2000, "the room count at which the controller's time is compared with the bare loop's (0: nowhere)")
	flag.Float64Var(&f.heapTarget, "heap-target", 5, "most steady-state heap per room, in KiB, allowed at the largest room count")
	flag.Float64Var(&f.qps, "qps", 100, "client QPS of the manager and of the bare loop (main.go's --kube-api-qps default)")
	flag.IntVar(&f.burst, "burst", 200, "client burst of the manager and of the bare loop (main.go's --kube-api-burst default)")
	flag.IntVar(&f.workers, "workers", 1, "MaxConcurrentReconciles of the manager's controllers, and the bare loop's concurrency")
	flag.Float64Var(&f.setupQPS, "setup-qps", 5000, "client QPS used to create the rooms beforehand")
	flag.IntVar(&f.setupWorkers, "setup-workers", 32, "concurrency used to create the rooms beforehand")
	flag.BoolVar(&f.bareAfter, "bare-after", true, "run the bare loop a second time after the manager stopped")
	flag.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up waiting for the controller after this long")
	flag.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of each cold start to this file, suffixed .<rooms>")
	flag.StringVar(&f.heapProfile, "heapprofile", "", "write heap profiles taken at the heap measurements to this file, suffixed .<rooms>.cold and .<rooms>.steady")
	flag.IntVar(&f.memRate, "memprofilerate", 0, "runtime.MemProfileRate for -heapprofile (0: Go's default, 512 KiB; lower is finer and slower)")
	flag.Parse()
	for _, s := range strings.Split(*rooms, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-rooms: %q is not a positive number", s)
		}
		f.rooms = append(f.rooms, n)
	}
	if f.workers < 1 || f.burst < 1 || f.qps <= 0 {
		return nil, errors.New("-workers, -burst and -qps must be positive")
	}
	return f, nil
}

func main() {
	f, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reconcile:", err)
		os.Exit(2)
	}
	if f.memRate > 0 {
		runtime.MemProfileRate = f.memRate
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrl.SetLogger(logr.Discard())
	fmt.Printf("GOMAXPROCS=%d, NumCPU=%d: bench process (manager or bare loop), kube-apiserver and etcd share these cores.\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	results := make([]*result, 0, len(f.rooms))
	for _, n := range f.rooms {
		fmt.Printf("\n=== %d rooms\n", n)
		res, err := runPoint(ctx, f, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reconcile: setup failed:", err)
			os.Exit(1)
		}
		res.report()
		results = append(results, res)
	}
	summary(f, results)
}

// withQPS is cfg with its own client-side rate limit.
func withQPS(cfg *rest.Config, qps float64, burst int) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = float32(qps), burst
	return c
}

type phase struct {
	name string
	took time.Duration
	wall time.Duration // of the cpu and api samples
	cpu  map[string]float64
	api  map[string]float64
	errs int
}

// heap is a manager's heap: HeapAlloc before it started and once it settled.
type heap struct {
	before, after uint64
	settled       bool
}

func (h heap) perRoom(n int) float64 {
	return (float64(h.after) - float64(h.before)) / float64(n) / 1024
}

// result is what one point measured.
type result struct {
	rooms      int
	bares      []phase
	ctrl       phase
	finished   bool
	tFirst     time.Duration
	tSettled   time.Duration
	reconciles map[string]float64
	cold       heap
	steady     heap
	callback   heap
	steadyTook time.Duration
	steadyRun  phase
}

// point measures n rooms on a fresh API server.
type point struct {
	f      *flags
	n      int
	cfg    *rest.Config
	setup  client.Client
	scrape func() map[string]float64
	res    *result
}

func runPoint(ctx context.Context, f *flags, n int) (*result, error) {
	env, cfg, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	setup, err := client.New(withQPS(cfg, f.setupQPS, 2*int(f.setupQPS)), client.Options{Scheme: testenv.Scheme})
	if err != nil {
		return nil, err
	}
	metricsCl, err := measure.MetricsClient(cfg)
	if err != nil {
		return nil, err
	}
	p := &point{f: f, n: n, cfg: cfg, setup: setup, res: &result{rooms: n}, scrape: func() map[string]float64 {
		return measure.APIRequests(ctx, metricsCl, "jobs", "liverooms", "recordingpolicies", "events")
	}}
	withTime := n == f.timeAt
	fmt.Printf("%d rooms, client QPS/burst %g/%d, concurrency %d (controller MaxConcurrentReconciles = bare loop workers)\n", n, f.qps, f.burst, f.workers)

	pol, err := p.prepare(ctx, withTime)
	if err != nil {
		return nil, err
	}
	if err := p.coldStart(ctx); err != nil {
		return nil, err
	}
	if withTime && f.bareAfter {
		if err := p.bareAgain(ctx, pol); err != nil {
			return nil, err
		}
	}
	if err := p.steadyState(ctx); err != nil {
		return nil, err
	}
	return p.res, p.callbackCache(ctx)
}

// prepare creates the rooms, as the callback server stores them, and the policy; with
// withTime, it first measures the bare loop on them. The rooms are not kept: the heap
// measured next is the manager's.
func (p *point) prepare(ctx context.Context, withTime bool) (*livev1.RecordingPolicy, error) {
	for _, ns := range []string{nsRooms, nsBare1, nsBare2} {
		if err := p.setup.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
	}
	t := time.Now()
	rooms, err := createRooms(ctx, p.setup, p.n, p.f.setupWorkers)
	if err != nil {
		return nil, fmt.Errorf("creating rooms: %w", err)
	}
	pol := recordingPolicy()
	if err := p.setup.Create(ctx, pol); err != nil {
		return nil, err
	}
	fmt.Printf("setup: %d live rooms and 1 policy created in %s\n", len(rooms), time.Since(t).Round(time.Millisecond))
	if !withTime {
		return pol, nil
	}
	if err := p.bare(ctx, rooms, pol, nsBare1); err != nil {
		return nil, err
	}
	// The manager caches every Job with the room label: remove these before it starts.
	return pol, deleteJobs(ctx, p.setup, nsBare1)
}

// bare measures the bare client loop making the rooms' Jobs in namespace ns.
func (p *point) bare(ctx context.Context, rooms []*livev1.LiveRoom, pol *livev1.RecordingPolicy, ns string) error {
	api0, cpu0, t0 := p.scrape(), measure.CPUMillis(), time.Now()
	took, errs, err := bareLoop(ctx, withQPS(p.cfg, p.f.qps, p.f.burst), p.f.workers, rooms, pol, ns)
	if err != nil {
		return err
	}
	cpu := diff(cpu0, measure.CPUMillis())
	p.res.bares = append(p.res.bares, phase{name: "bare loop, " + strings.TrimPrefix(ns, "bench-"), took: took, errs: errs,
		wall: time.Since(t0), cpu: cpu, api: diff(api0, p.scrape())})
	return nil
}

// coldStart starts the manager on rooms without Jobs and measures it until all Jobs exist
// and it settled: time, CPU, API requests, reconciles and heap.
func (p *point) coldStart(ctx context.Context) error {
	f, n, res := p.f, p.n, p.res
	// Count the controller's Jobs through a watch started before the manager.
	counter, err := watchJobs(ctx, p.cfg, nsRooms, n)
	if err != nil {
		return err
	}
	// Heap before: everything the manager will add comes after this.
	res.cold.before = heapAlloc()
	stopProfile, err := measure.CPUProfile(suffixed(f.cpuProfile, n))
	if err != nil {
		return err
	}
	defer stopProfile()
	api0, cpu0 := p.scrape(), measure.CPUMillis()
	reconciles0 := reconcileCounts()
	start := time.Now()
	mgr, err := startManager(ctx, p.cfg, f)
	if err != nil {
		return err
	}
	defer mgr.stop()

	// Until all Jobs exist.
	res.finished = true
	select {
	case <-counter.done:
		res.ctrl.took = counter.last.Sub(start)
	case err := <-mgr.done:
		return fmt.Errorf("manager stopped: %v", err)
	case <-time.After(f.timeout):
		res.finished = false
		res.ctrl.took = time.Since(start)
	case <-ctx.Done():
		return ctx.Err()
	}
	res.tFirst = counter.firstAt().Sub(start)

	// Then until the controller settled: Jobs in its cache, every room's status showing
	// its recording, and no reconcile between two polls half a second apart.
	res.tSettled, res.cold.settled = mgr.settle(ctx, n, false, start)
	pprof.StopCPUProfile()
	res.ctrl = phase{name: "controller", took: res.ctrl.took, wall: time.Since(start), cpu: diff(cpu0, measure.CPUMillis()), api: diff(api0, p.scrape())}
	res.cold.after = heapAlloc()
	writeHeapProfile(f.heapProfile, n, "cold")
	res.reconciles = diff(reconciles0, reconcileCounts())
	return nil
}

// bareAgain measures the bare loop again, after the manager, on the rooms read back for
// their UIDs (the owner references).
func (p *point) bareAgain(ctx context.Context, pol *livev1.RecordingPolicy) error {
	var list livev1.LiveRoomList
	if err := p.setup.List(ctx, &list, client.InNamespace(nsRooms)); err != nil {
		return err
	}
	rooms := make([]*livev1.LiveRoom, len(list.Items))
	for i := range list.Items {
		rooms[i] = &list.Items[i]
	}
	slices.SortFunc(rooms, func(a, b *livev1.LiveRoom) int { return strings.Compare(a.Name, b.Name) })
	if err := p.bare(ctx, rooms, pol, nsBare2); err != nil {
		return err
	}
	return deleteJobs(ctx, p.setup, nsBare2)
}

// steadyState starts a fresh manager on the same objects and measures it until it settled.
func (p *point) steadyState(ctx context.Context) error {
	res := p.res
	res.steady.before = heapAlloc()
	api0, cpu0 := p.scrape(), measure.CPUMillis()
	start := time.Now()
	mgr, err := startManager(ctx, p.cfg, p.f)
	if err != nil {
		return err
	}
	defer mgr.stop()
	res.steadyTook, res.steady.settled = mgr.settle(ctx, p.n, true, start)
	res.steadyRun = phase{name: "steady state", took: res.steadyTook, wall: time.Since(start), cpu: diff(cpu0, measure.CPUMillis()), api: diff(api0, p.scrape())}
	res.steady.after = heapAlloc()
	writeHeapProfile(p.f.heapProfile, p.n, "steady")
	return nil
}

// callbackCache measures the callback server's cache of the same rooms, for comparison:
// whole LiveRooms and their spec.roomId index, nothing else.
func (p *point) callbackCache(ctx context.Context) error {
	p.res.callback.before = heapAlloc()
	mgr, err := startCallbackCache(ctx, p.cfg, p.f)
	if err != nil {
		return err
	}
	defer mgr.stop()
	p.res.callback.settled = mgr.GetCache().WaitForCacheSync(ctx)
	p.res.callback.after = heapAlloc()
	return nil
}

func suffixed(path string, n int) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf("%s.%d", path, n)
}

func writeHeapProfile(path string, n int, phase string) {
	if path == "" {
		return
	}
	if hf, err := os.Create(fmt.Sprintf("%s.%d.%s", path, n, phase)); err == nil {
		_ = pprof.WriteHeapProfile(hf)
		hf.Close()
	}
}

// deleteJobs deletes the Jobs of a namespace and waits until they are gone.
func deleteJobs(ctx context.Context, c client.Client, ns string) error {
	if err := c.DeleteAllOf(ctx, &batchv1.Job{}, client.InNamespace(ns), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		return err
	}
	for {
		var jobs metav1.PartialObjectMetadataList
		jobs.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
		if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(jobs.Items) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchManager is a running manager of the controller role.
type benchManager struct {
	manager.Manager
	done   chan error
	cancel context.CancelFunc
}

// startManager starts a manager wired as the controller role's.
func startManager(ctx context.Context, cfg *rest.Config, f *flags) (*benchManager, error) {
	mgr, err := ctrl.NewManager(withQPS(cfg, f.qps, f.burst), manager.Options{
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The steady-state manager registers the same controllers again in this process.
		Controller: config.Controller{MaxConcurrentReconciles: f.workers, SkipNameValidation: new(true)},
		Cache:      caches.Controller(), // as the controller role
	})
	if err != nil {
		return nil, err
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	if err := (&controllers.LiveRoomReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder(controllers.FieldOwner), Apps: benchApp{},
	}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controllers.RecordingPolicyReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	m := &benchManager{Manager: mgr, done: make(chan error, 1), cancel: cancel}
	go m.run(mctx)
	return m, nil
}

// startCallbackCache starts a manager with the callback server's cache and room index
// only: the callback server's memory that grows with the rooms.
func startCallbackCache(ctx context.Context, cfg *rest.Config, f *flags) (*benchManager, error) {
	mgr, err := ctrl.NewManager(withQPS(cfg, f.qps, f.burst), manager.Options{
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  caches.CallbackServer(operatorNamespace), // as the callback role
	})
	if err != nil {
		return nil, err
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	m := &benchManager{Manager: mgr, done: make(chan error, 1), cancel: cancel}
	go m.run(mctx)
	return m, nil
}

// run starts the manager; done gets its error, then closes.
func (m *benchManager) run(ctx context.Context) {
	m.done <- m.Start(ctx)
	close(m.done)
}

// stop stops the manager and waits until it has; it may have stopped on its own.
func (m *benchManager) stop() {
	m.cancel()
	if err, ok := <-m.done; ok && err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
}

// settle waits until the manager's cache holds n Jobs and n rooms showing their
// recording and, with everyRoom, it has reconciled n rooms since settle was called; then
// until no reconcile runs between two polls half a second apart, for at most two minutes.
// It returns when the first condition held, from start, and whether the second followed.
func (m *benchManager) settle(ctx context.Context, n int, everyRoom bool, start time.Time) (time.Duration, bool) {
	if !m.GetCache().WaitForCacheSync(ctx) {
		return time.Since(start), false
	}
	base := reconcileCounts()["liveroom"]
	var ready time.Time
	lastTotal := -1.0
	for ctx.Err() == nil && (ready.IsZero() || time.Since(ready) < 2*time.Minute) {
		time.Sleep(500 * time.Millisecond)
		jobs, recorded := cacheState(ctx, m.GetCache())
		counts := reconcileCounts()
		total := counts["liveroom"] + counts["recordingpolicy"]
		reconciled := !everyRoom || counts["liveroom"]-base >= float64(n)
		if jobs >= n && recorded >= n && reconciled {
			if ready.IsZero() {
				ready = time.Now()
			}
			if total == lastTotal {
				return ready.Sub(start), true
			}
		}
		lastTotal = total
	}
	if ready.IsZero() {
		return time.Since(start), false
	}
	return ready.Sub(start), false
}

// reconcileCounts reads the controllers' reconcile counters: the number, the errors and
// the seconds spent, per controller.
func reconcileCounts() map[string]float64 {
	out := map[string]float64{}
	for _, c := range []string{"liveroom", "recordingpolicy"} {
		out[c] = sumMetric("controller_runtime_reconcile_total", c)
		out[c+" errors"] = sumMetric("controller_runtime_reconcile_errors_total", c)
		out[c+" seconds"] = sumMetric("controller_runtime_reconcile_time_seconds", c)
	}
	return out
}

// createRooms stores rooms the way the callback server does (object, then status) and
// returns them in name order.
func createRooms(ctx context.Context, c client.Client, n, workers int) ([]*livev1.LiveRoom, error) {
	rooms := make([]*livev1.LiveRoom, n)
	created := time.Now().Add(-time.Minute).Unix()
	for i := range rooms {
		id := fmt.Sprintf("room-%06d", i)
		body := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":%q,"RoomType":"Live","Owner_Account":"user%d","MaxMemberCount":300,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"Category":[1,2]}}`,
			id, "Room "+id, i%100, created)
		cb, err := tencent.Decode([]byte(body), tencent.CommandCreateRoom)
		if err != nil {
			return nil, err
		}
		room := &livev1.LiveRoom{
			ObjectMeta: metav1.ObjectMeta{Name: naming.RoomObjectName(id), Namespace: nsRooms,
				Annotations: map[string]string{livev1.OriginAnnotation: livev1.OriginCallback}},
			Spec: livev1.LiveRoomSpec{RoomID: id, SDKAppID: sdkAppID},
		}
		roomstate.ForCallback(cb, time.Now())(room)
		room.Labels = roomstate.Labels(&room.Spec)
		rooms[i] = room
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(rooms) || ctx.Err() != nil {
					return
				}
				room := rooms[i]
				st := room.Status.DeepCopy()
				err := c.Create(ctx, room)
				if err == nil {
					room.Status = *st
					err = c.Status().Update(ctx, room)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return rooms, firstErr
}

// recordingPolicy selects every room (all are of type Live) with a small Job template.
func recordingPolicy() *livev1.RecordingPolicy {
	return &livev1.RecordingPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName, Namespace: nsRooms},
		Spec: livev1.RecordingPolicySpec{
			RoomSelector: &metav1.LabelSelector{MatchLabels: map[string]string{livev1.RoomTypeLabel: "Live"}},
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "record", Image: "registry.example.com/recorder:1.0",
						Args: []string{"--out", "s3://recordings/"}, Env: []corev1.EnvVar{{Name: "FORMAT", Value: "mp4"}}}},
				}},
			}},
		},
	}
}

// bareJob is the Job the controller makes for room and policy (controllers/recording.go),
// in namespace ns; its owner reference names the room in its own namespace.
func bareJob(room *livev1.LiveRoom, p *livev1.RecordingPolicy, ns string) *batchv1.Job {
	tmpl := p.Spec.JobTemplate.DeepCopy()
	lbl := func() map[string]string {
		return map[string]string{livev1.RoomLabel: naming.LabelValue(room.Name), livev1.PolicyLabel: naming.LabelValue(p.Name)}
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.JobName(room.Name, p.Name), Namespace: ns, Labels: lbl(),
			Annotations: map[string]string{livev1.PolicyLabel: p.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: livev1.GroupVersion.String(), Kind: "LiveRoom",
				Name: room.Name, UID: room.UID, Controller: new(true), BlockOwnerDeletion: new(true)}},
		},
		Spec: tmpl.Spec,
	}
	job.Spec.Template.Labels = lbl()
	env := []corev1.EnvVar{
		{Name: controllers.EnvRoomID, Value: room.Spec.RoomID},
		{Name: controllers.EnvSDKAppID, Value: strconv.FormatInt(room.Spec.SDKAppID, 10)},
		{Name: controllers.EnvOwner, Value: room.Spec.Owner},
		{Name: controllers.EnvRoomName, Value: room.Spec.RoomName},
	}
	for i := range job.Spec.Template.Spec.Containers {
		c := &job.Spec.Template.Spec.Containers[i]
		c.Env = append(c.Env, env...)
	}
	return job
}

// bareLoop creates one Job per room with a plain client-go clientset from workers
// goroutines and returns the time until the last create returned.
func bareLoop(ctx context.Context, cfg *rest.Config, workers int, rooms []*livev1.LiveRoom, p *livev1.RecordingPolicy, ns string) (time.Duration, int, error) {
	jobs := make([]*batchv1.Job, len(rooms))
	for i, room := range rooms {
		jobs[i] = bareJob(room, p, ns)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, 0, err
	}
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				if _, err := cs.BatchV1().Jobs(ns).Create(ctx, jobs[i], metav1.CreateOptions{}); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), int(errs.Load()), ctx.Err()
}

// jobCounter counts distinct Jobs added in a namespace through a metadata-only watch.
type jobCounter struct {
	done  chan struct{}
	first atomic.Int64 // UnixNano of the first Job seen
	last  time.Time    // when the want-th Job was seen; valid once done is closed
}

func (c *jobCounter) firstAt() time.Time { return time.Unix(0, c.first.Load()) }

func watchJobs(ctx context.Context, cfg *rest.Config, ns string, want int) (*jobCounter, error) {
	mc, err := metadata.NewForConfig(withQPS(cfg, -1, 0))
	if err != nil {
		return nil, err
	}
	res := mc.Resource(batchv1.SchemeGroupVersion.WithResource("jobs")).Namespace(ns)
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, j := range list.Items {
		seen[j.Name] = true
	}
	c := &jobCounter{done: make(chan struct{})}
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				m, ok := ev.Object.(*metav1.PartialObjectMetadata)
				if !ok {
					continue
				}
				rv = m.ResourceVersion
				if ev.Type != watch.Added || seen[m.Name] {
					continue
				}
				seen[m.Name] = true
				c.first.CompareAndSwap(0, time.Now().UnixNano())
				if len(seen) == want {
					c.last = time.Now()
					close(c.done)
					w.Stop()
					return
				}
			}
		}
	}()
	return c, nil
}

// cacheState counts, in the manager's cache, the recording Jobs and the rooms whose
// status lists a recording.
func cacheState(ctx context.Context, c cache.Cache) (jobs, recorded int) {
	var jl batchv1.JobList
	if err := c.List(ctx, &jl, client.InNamespace(nsRooms), client.UnsafeDisableDeepCopy); err == nil {
		jobs = len(jl.Items)
	}
	var rl livev1.LiveRoomList
	if err := c.List(ctx, &rl, client.InNamespace(nsRooms), client.UnsafeDisableDeepCopy); err == nil {
		for i := range rl.Items {
			if len(rl.Items[i].Status.Recordings) > 0 {
				recorded++
			}
		}
	}
	return jobs, recorded
}

// sumMetric sums a controller-runtime counter (or a histogram's sample sum) for one
// controller, or for all with controller "".
func sumMetric(name, controller string) float64 {
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := controller == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == "controller" && l.GetValue() == controller)
			}
			if !match {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				total += h.GetSampleSum()
			} else {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func diff(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// report prints one point's measurements.
func (r *result) report() {
	n := float64(r.rooms)
	fmt.Println()
	fmt.Printf("%-22s | %12s %7s | %-s\n", "", "time to Jobs", "Jobs/s", "per Job: kube-apiserver requests; CPU ms (bench process / kube-apiserver / etcd); other processes' load")
	row := func(p phase, note string) {
		other := max(0, p.cpu["machine"]-p.cpu["self"]-p.cpu["kube-apiserver"]-p.cpu["etcd"]) / float64(p.wall.Milliseconds())
		fmt.Printf("%-22s | %12s %7.1f | %s; CPU %.2f / %.2f / %.2f; other %.2f cores%s\n", p.name, p.took.Round(time.Millisecond), n/p.took.Seconds(),
			apiSummary(p.api, n), p.cpu["self"]/n, p.cpu["kube-apiserver"]/n, p.cpu["etcd"]/n, other, note)
	}
	for _, b := range r.bares {
		note := ""
		if b.errs > 0 {
			note = fmt.Sprintf(" (%d creates failed)", b.errs)
		}
		row(b, note)
	}
	note := ""
	if !r.finished {
		note = " (DID NOT FINISH)"
	}
	row(r.ctrl, note)
	fmt.Printf("%-22s   first Job after %s; all rooms' status showing their recording after %s\n", "",
		r.tFirst.Round(time.Millisecond), r.tSettled.Round(time.Millisecond))
	for _, name := range []string{"liveroom", "recordingpolicy"} {
		rc := r.reconciles
		fmt.Printf("%-22s   %s reconciles: %.0f (%.0f errors), %.1fs in Reconcile in total, %.2fms mean\n", "", name,
			rc[name], rc[name+" errors"], rc[name+" seconds"], 1000*rc[name+" seconds"]/max(1, rc[name]))
	}
	fmt.Printf("%-22s | %12s %7s | requests per room: %s\n", "restarted manager", r.steadyTook.Round(time.Millisecond), "",
		orNone(apiSummary(r.steadyRun.api, n)))
	fmt.Printf("%-22s   (time until synced and every room reconciled; Jobs all exist, nothing to write)\n", "")

	fmt.Println()
	for _, h := range []struct {
		name string
		heap
	}{{"cold start", r.cold}, {"steady state", r.steady}} {
		note := ""
		if !h.settled {
			note = " (had not settled)"
		}
		fmt.Printf("%-28s %6.1f MiB before start, %6.1f MiB settled -> %5.2f KiB per room%s\n", "controller, "+h.name+":",
			mib(h.before), mib(h.after), h.perRoom(r.rooms), note)
	}
	fmt.Printf("%-28s %6.1f MiB before start, %6.1f MiB synced  -> %5.2f KiB per room\n", "callback server's cache:",
		mib(r.callback.before), mib(r.callback.after), r.callback.perRoom(r.rooms))
	fmt.Println("  (HeapAlloc after forced GC: the LiveRoom, Job and RecordingPolicy caches, their namespace and")
	fmt.Println("   spec.roomId indexes, workqueues; at cold start also the Event recorder's cache of the Events sent")
	fmt.Println("   in the last 6 to 12 minutes, one RecordingStarted per room here, which a restarted manager has not;")
	fmt.Println("   the callback server caches whole LiveRooms with their spec.roomId index, and no Jobs)")
}

// summary prints the figures of every point and the verdicts.
func summary(f *flags, results []*result) {
	fmt.Println()
	fmt.Println("=== summary")
	fmt.Printf("%8s | %s\n", "rooms", "heap per room, KiB: controller cold start / steady state (difference); callback server cache")
	for _, r := range results {
		c, s := r.cold.perRoom(r.rooms), r.steady.perRoom(r.rooms)
		fmt.Printf("%8d | %5.2f / %5.2f (%+.2f); %5.2f\n", r.rooms, c, s, c-s, r.callback.perRoom(r.rooms))
	}
	if len(results) > 1 {
		lo, hi := results[0], results[len(results)-1]
		marginal := (float64(hi.steady.after-hi.steady.before) - float64(lo.steady.after-lo.steady.before)) / float64(hi.rooms-lo.rooms) / 1024
		fixed := float64(hi.steady.after-hi.steady.before)/(1<<20) - marginal*float64(hi.rooms)/1024
		fmt.Printf("steady state, from %d to %d rooms: %.2f KiB per added room, plus %.1f MiB whatever the rooms\n", lo.rooms, hi.rooms, marginal, fixed)
	}
	fmt.Println()
	for _, r := range results {
		if len(r.bares) == 0 {
			continue
		}
		var sum time.Duration
		for _, b := range r.bares {
			sum += b.took
		}
		mean := sum / time.Duration(len(r.bares))
		ratio := r.ctrl.took.Seconds() / mean.Seconds()
		fmt.Printf("%s  controller time %.2f x bare loop at %d rooms (mean %s; target <= 1.25)\n", verdict(r.finished && ratio <= 1.25), ratio, r.rooms, mean.Round(time.Millisecond))
	}
	last := results[len(results)-1]
	perRoom := last.steady.perRoom(last.rooms)
	fmt.Printf("%s  steady-state heap per room %.2f KiB at %d rooms (target <= %g KiB)\n", verdict(last.steady.settled && perRoom <= f.heapTarget), perRoom, last.rooms, f.heapTarget)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// apiSummary lists the writes (and any non-watch reads) per Job, "VERB resource code n".
func apiSummary(api map[string]float64, n float64) string {
	keys := make([]string, 0, len(api))
	for k, v := range api {
		if v/n >= 0.005 && !strings.HasPrefix(k, "WATCH") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, api[k]/n))
	}
	return strings.Join(parts, ", ")
}

// benchApp is the app of the bench's rooms: a callback-only app, no LiveApp needed.
type benchApp struct{}

func (benchApp) AppFor(_ string) (apps.App, bool) {
	return apps.App{SDKAppID: sdkAppID, EndedRoomTTL: 24 * time.Hour}, true
}

// Changes never fires: the bench's app never changes.
func (benchApp) Changes() <-chan event.GenericEvent { return make(chan event.GenericEvent) }
