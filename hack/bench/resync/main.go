// Command resync benchmarks the resync against a real etcd and kube-apiserver (envtest)
// and the fake Tencent server holding 10,000 rooms. It runs two pairs of resyncs, each
// into a namespace of its own: one with get_room_list's rate limit lifted on the fake
// and the client, one with the documented 10 requests/s in force on both. The first run
// of a pair creates every room, the second finds nothing to change and must write
// nothing. Run it from the repository root:
//
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s/1.37.2 go run ./hack/bench/resync
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/internal/resync/resynctest"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	sdkAppID   = 1400000000
	adminUser  = "administrator"
	secretKey  = "bench-secret-key"
	fieldOwner = "liveroom-callback"
)

// run is one RunOnce and what it cost.
type run struct {
	pair, limits string
	n            int
	res          resync.Result
	err          error
	writes       int64
	listCalls    int
	infoCalls    int
}

func main() {
	rooms := flag.Int("rooms", 10000, "rooms in the fake Tencent server")
	workers := flag.Int("workers", resync.DefaultWorkers, "rooms handled concurrently by the resync")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if err := bench(*rooms, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func bench(rooms, workers int) error {
	total := time.Now()
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(livev1.AddToScheme(scheme))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(cfg, manager.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return errors.New("the cache did not sync")
	}

	fake := faketencent.New(sdkAppID, adminUser, secretKey)
	defer fake.Close()
	created := time.Now().Add(-time.Hour).Unix()
	for i := range rooms {
		fake.AddRoom(benchRoom(fmt.Sprintf("bench-room-%05d", i), created))
	}
	fmt.Printf("control plane up, %d rooms in the fake Tencent server, %d workers\n", rooms, workers)

	var runs []run
	pairs := []struct {
		name, ns, limits string
		fakeLimit        float64
		listRate, rate   float64
	}{
		{"unlimited", "bench-unlimited", "none", 0, -1, -1},
		{"documented", "bench-limited", "list 10/s, others 200/s", faketencent.DefaultListRate, 10, 200},
	}
	for _, p := range pairs {
		if err := mgr.GetClient().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.ns}}); err != nil {
			return err
		}
		fake.SetListRateLimit(p.fakeLimit)
		tc, err := tencent.NewClient(tencent.Config{
			BaseURL: fake.URL(), SDKAppID: sdkAppID, AdminUser: adminUser,
			SecretKey: func() (string, error) { return secretKey, nil },
			ListRate:  p.listRate, DefaultRate: p.rate,
		})
		if err != nil {
			return err
		}
		writes := resynctest.CountWrites(mgr.GetClient())
		r := &resync.Resyncer{
			Store: roomstore.New(roomstore.Config{
				Client: writes, APIReader: mgr.GetAPIReader(), CacheTrimsRooms: true,
				Namespace: p.ns, SDKAppID: sdkAppID, FieldOwner: fieldOwner,
			}),
			Reader: mgr.GetCache(), Tencent: resynctest.ListFieldsOnly(tc), Namespace: p.ns,
			Log: logr.Discard(), Workers: workers,
		}
		for n := 1; n <= 2; n++ {
			if n == 2 {
				// The second run must see the first one's writes in the cache, as it
				// would five minutes later.
				start := time.Now()
				if err := waitCached(ctx, mgr.GetCache(), p.ns, rooms); err != nil {
					return err
				}
				fmt.Printf("  cache caught up in %v\n", time.Since(start).Round(time.Millisecond))
			}
			writes.Reset()
			lists, infos := fake.Calls(tencent.RESTGetRoomList), fake.Calls(tencent.RESTGetRoomInfo)
			res, err := r.RunOnce(ctx)
			x := run{
				pair: p.name, limits: p.limits, n: n, res: res, err: err, writes: writes.Writes(),
				listCalls: fake.Calls(tencent.RESTGetRoomList) - lists, infoCalls: fake.Calls(tencent.RESTGetRoomInfo) - infos,
			}
			runs = append(runs, x)
			fmt.Printf("%s run %d: %v, %d writes, err=%v\n", p.name, n, res.Duration.Round(time.Millisecond), x.writes, err)
		}
	}
	select {
	case err := <-mgrErr:
		return fmt.Errorf("manager stopped: %w", err)
	default:
	}

	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "pair\trun\tlimits\tduration\tlisted\tcreated\tupdated\tended\tunchanged\terrors\tAPI writes\tlist calls\tget_room_info calls\t")
	for _, x := range runs {
		fmt.Fprintf(w, "%s\t%d\t%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", x.pair, x.n, x.limits,
			x.res.Duration.Round(time.Millisecond), x.res.Listed, x.res.Created, x.res.Updated, x.res.Ended,
			x.res.Unchanged, x.res.Errors, x.writes, x.listCalls, x.infoCalls)
	}
	_ = w.Flush()
	fmt.Println()

	ok := true
	verdict := ""
	for _, x := range runs {
		if x.err != nil {
			ok = false
			fmt.Printf("%s run %d failed: %v\n", x.pair, x.n, x.err)
		}
		if x.n == 2 {
			zero := x.writes == 0 && x.err == nil
			ok = ok && zero
			verdict += fmt.Sprintf(" %s: %s;", x.pair, yesNo(zero, x.writes))
		}
	}
	fmt.Printf("Second run of each pair made zero API-server writes:%s overall %s (total %v)\n",
		verdict, map[bool]string{true: "YES", false: "NO"}[ok], time.Since(total).Round(time.Second))
	if !ok {
		return errors.New("a run failed or a second run wrote")
	}
	return nil
}

func yesNo(zero bool, writes int64) string {
	if zero {
		return "yes (0 writes)"
	}
	return "NO (" + strconv.FormatInt(writes, 10) + " writes)"
}

// waitCached waits until the cache holds n rooms of ns, each with the status its
// creation wrote last.
func waitCached(ctx context.Context, c client.Reader, ns string, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var list livev1.LiveRoomList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, r := range list.Items {
			if r.Status.Phase != "" {
				ready++
			}
		}
		if ready == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cache shows %d of %d rooms of %s", ready, n, ns)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func benchRoom(id string, created int64) tencent.RoomInfo {
	name, cover := "Bench "+id, "https://example.com/covers/"+id+".png"
	return tencent.RoomInfo{
		RoomID: tencent.FlexString(id), RoomName: &name, RoomType: tencent.RoomTypeLive,
		OwnerAccount: "host-" + tencent.FlexString(id), MaxMemberCount: new(tencent.FlexInt(1000)),
		IsMessageDisabled: new(tencent.FlexBool(false)), IsSeatEnabled: new(tencent.FlexBool(true)),
		TakeSeatMode: tencent.SeatModeFreeToTake, MaxSeatCount: new(tencent.FlexInt(8)),
		CreateTime: tencent.FlexInt(created), IsPublicVisible: new(tencent.FlexBool(true)),
		CoverURL: &cover, Category: []tencent.FlexInt{3}, ActivityStatus: new(tencent.FlexInt(1)), ViewCount: 100,
	}
}
