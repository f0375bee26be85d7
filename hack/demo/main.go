// Command demo runs the operator on a local cluster and walks through a room's life: it
// starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok nodes,
// installs the CRDs and RBAC from config/default, runs bin/manager twice as in production
// (--role=callback and --role=controller, each with its own ServiceAccount), sends signed
// Tencent callbacks and shows what the operator made of them. With --keep (or without
// --script) it leaves everything running until Ctrl-C.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	sdkAppID   = "1400000000"
	demoToken  = "demo-callback-token"
	roomNS     = "live"
	operatorNS = "liveroom-system"
	// metricsSA may read the metrics endpoints (ClusterRole liveroom-metrics-reader).
	metricsSA = "demo-metrics-reader"
)

type demo struct {
	root, work  string
	binDir      string
	real        bool
	cluster     *localcluster.Cluster
	managers    []*exec.Cmd
	callbackURL string
	metricsURLs []string // "role: URL"
	step, steps int
}

func main() {
	script := flag.Bool("script", true, "send the demo callbacks; with --script=false only start the cluster and the operator")
	keep := flag.Bool("keep", false, "keep everything running after the demo until Ctrl-C")
	root := flag.String("root", ".", "repository root")
	node := flag.String("node", "kwok", "kwok: simulated nodes, bin/manager on this host; real: a kubelet + containerd node running the operator's image as Pods (root; `make demo NODE=real`)")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &demo{root: *root, binDir: filepath.Join(*root, "bin", "k8s", testenv.K8sVersion()), steps: 4, real: *node == "real"}
	if *script {
		d.steps = 8
	}
	err := d.run(ctx, *script, *keep || !*script)
	d.stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\nFAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nStopped everything the demo started.")
}

// do runs one numbered step and says how to fix it when it fails.
func (d *demo) do(title, fix string, f func() error) error {
	d.step++
	fmt.Printf("\n==> [%d/%d] %s\n", d.step, d.steps, title)
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w\n    fix: %s", title, err, fix)
	}
	return nil
}

func (d *demo) run(ctx context.Context, script, keep bool) error {
	var err error
	if d.work, err = os.MkdirTemp("", "liveroom-demo-"); err != nil {
		return err
	}
	if d.real {
		if err := d.startOnRealNode(ctx); err != nil {
			return err
		}
	} else if err := d.do("Starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, 2 kwok nodes",
		"run `make cluster-bins` to build the components; see "+filepath.Join(d.work, "logs"), func() error {
			d.cluster, err = localcluster.Start(ctx, localcluster.Options{BinDir: d.binDir, Dir: d.work, Nodes: 2, Controllers: true})
			if err != nil {
				return err
			}
			return d.waitNodesReady(ctx)
		}); err != nil {
		return err
	} else if err := d.do("Installing CRDs, RBAC and configuration with kustomize (config/default, without the Deployment)",
		"check `kubectl kustomize config/default` renders", d.install(ctx)); err != nil {
		return err
	} else if err := d.do("Running bin/manager as in production: --role=callback as ServiceAccount liveroom-callback-server (signed callbacks), --role=controller as liveroom-controller-manager (leader election)",
		"run `make build`; the logs are "+filepath.Join(d.work, "logs", "callback.log")+" and controller.log", func() error { return d.startManagers(ctx) }); err != nil {
		return err
	}
	if script {
		if err := d.script(ctx); err != nil {
			return err
		}
	}
	return d.do("Ready to explore", "", func() error {
		fmt.Printf("    export KUBECONFIG=%s\n", d.cluster.Kubeconfig)
		fmt.Printf("    %s get liverooms -n %s\n", filepath.Join(d.binDir, "kubectl"), roomNS)
		fmt.Printf("    callbacks: %s (token %q, SdkAppid %s)\n", d.callbackURL, demoToken, sdkAppID)
		fmt.Printf("    metrics: curl -k -H \"Authorization: Bearer $(%s create token %s -n %s)\" URL\n", filepath.Join(d.binDir, "kubectl"), metricsSA, operatorNS)
		for _, url := range d.metricsURLs {
			fmt.Printf("      %s\n", url)
		}
		fmt.Printf("    logs: %s\n", filepath.Join(d.work, "logs"))
		if keep {
			fmt.Println("    Press Ctrl-C to stop everything.")
			<-ctx.Done()
			return nil
		}
		fmt.Println("    (the cluster stops now; `make demo DEMO_FLAGS=-keep` keeps it running until Ctrl-C)")
		return nil
	})
}

func (d *demo) script(ctx context.Context) error {
	if err := d.do("Applying the sample RecordingPolicy (records every room of type Live)",
		"see config/samples/live_v1alpha1_recordingpolicy.yaml", func() error {
			policy, err := d.policyFile()
			if err != nil {
				return err
			}
			return d.show(ctx, "apply", "-n", roomNS, "-f", policy)
		}); err != nil {
		return err
	}
	now := time.Now().Unix()
	if err := d.do("Sending signed create callbacks: the seed sample room, a RoomId that is no DNS name, and a third room",
		"the callback server's log says why a callback was refused", func() error {
			for _, body := range []string{
				fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":"tandy-test-rest","RoomName":"tandy-test-rest","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`, now),
				fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"Room_ABC.01","RoomName":"Evening show","RoomType":"Live","Owner_Account":144115216631667826,"TakeSeatMode":2,"MaxSeatCount":8,"CreateTime":%d,"Category":[3]}}`, now),
				fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"karaoke-7","RoomName":"Karaoke","RoomType":"Live","Owner_Account":"user9","CreateTime":%d}}`, now),
			} {
				if err := d.callback(ctx, "Live.CallbackAfterCreateRoom", body); err != nil {
					return err
				}
			}
			if err := d.callback(ctx, "Live.CallbackAfterMemberStateChanged", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"tandy-test-rest","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":%d}`, time.Now().UnixMilli())); err != nil {
				return err
			}
			return d.callback(ctx, "Mic.CallbackAfterSeatInfoChanged", fmt.Sprintf(`{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"tandy-test-rest","SeatList":[{"Index":0,"Member_Account":"user3"},{"Index":1,"Member_Account":"jared"},{"Index":2}],"EventTime":%d}`, time.Now().UnixMilli()))
		}); err != nil {
		return err
	}
	if err := d.do("Rooms, recording Jobs and their pods (kwok runs the pods)",
		"check the controller log and `kubectl describe liveroom tandy-test-rest -n live`", func() error {
			if err := d.waitFor(ctx, "recording pod of tandy-test-rest Running", func() (bool, error) {
				out, err := d.cluster.Kubectl(ctx, "", "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "jsonpath={.items[*].status.phase}")
				return strings.Contains(out, "Running"), err
			}); err != nil {
				return err
			}
			if err := d.waitFor(ctx, "rooms reconciled", func() (bool, error) {
				out, err := d.cluster.Kubectl(ctx, "", "get", "liverooms", "-n", roomNS, "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Recording")].status}`)
				return strings.Count(out, "True") == 3, err
			}); err != nil {
				return err
			}
			for _, args := range [][]string{
				{"get", "liverooms", "-n", roomNS, "-o", "wide"},
				{"get", "recordingpolicies", "-n", roomNS},
				{"get", "jobs,pods", "-n", roomNS, "-o", "wide"},
			} {
				if err := d.show(ctx, args...); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
		return err
	}
	return d.do("Sending the destroy callback of tandy-test-rest: the room ends, its recording stops",
		"check the callback server's and the controller's logs", func() error {
			if err := d.callback(ctx, "Live.CallbackAfterDestroyRoom", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"admin","RoomId":"tandy-test-rest","EventType":"DestroyByUser","EventTime":%d,"Statistic":{"TotalViewers":2,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":5}}`, time.Now().UnixMilli())); err != nil {
				return err
			}
			if err := d.waitFor(ctx, "recording of tandy-test-rest Stopped and its pods gone", func() (bool, error) {
				phase, err := d.cluster.Kubectl(ctx, "", "get", "liveroom", "tandy-test-rest", "-n", roomNS, "-o", "jsonpath={.status.recordings[*].phase}")
				if err != nil {
					return false, err
				}
				pods, err := d.cluster.Kubectl(ctx, "", "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room=tandy-test-rest", "-o", "name")
				return phase == "Stopped" && strings.TrimSpace(pods) == "", err
			}); err != nil {
				return err
			}
			for _, args := range [][]string{
				{"get", "liverooms", "-n", roomNS},
				{"get", "jobs", "-n", roomNS, "-o", "custom-columns=JOB:.metadata.name,ROOM:.metadata.labels.live\\.liveroom\\.io/room,SUSPENDED:.spec.suspend,ACTIVE:.status.active"},
				{"get", "liveroom", "tandy-test-rest", "-n", roomNS, "-o", "jsonpath={.status.phase} {.status.endReason} viewers={.status.statistics.totalViewers} recording={.status.recordings[0].phase}{\"\\n\"}"},
			} {
				if err := d.show(ctx, args...); err != nil {
					return err
				}
			}
			return nil
		})
}

// install applies everything config/default renders except the Deployments and the
// PodDisruptionBudget: the demo runs the manager binary itself. It adds a ServiceAccount
// allowed to read metrics, as one would bind Prometheus'.
func (d *demo) install(ctx context.Context) func() error {
	return func() error {
		rendered, err := d.cluster.Kubectl(ctx, "", "kustomize", filepath.Join(d.root, "config/default"))
		if err != nil {
			return err
		}
		var keep []string
		for _, doc := range strings.Split(rendered, "\n---\n") {
			if strings.Contains(doc, "\nkind: Deployment\n") || strings.Contains(doc, "\nkind: PodDisruptionBudget\n") {
				continue
			}
			keep = append(keep, doc)
		}
		if _, err := d.cluster.Kubectl(ctx, strings.Join(keep, "\n---\n"), "apply", "--server-side", "-f", "-"); err != nil {
			return err
		}
		for _, args := range [][]string{
			{"create", "namespace", roomNS},
			{"create", "serviceaccount", metricsSA, "-n", operatorNS},
			{"create", "clusterrolebinding", metricsSA, "--clusterrole=liveroom-metrics-reader", "--serviceaccount=" + operatorNS + ":" + metricsSA},
		} {
			if _, err := d.cluster.Kubectl(ctx, "", args...); err != nil {
				return err
			}
		}
		if err := d.show(ctx, "api-resources", "--api-group=live.liveroom.io"); err != nil {
			return err
		}
		return d.show(ctx, "get", "serviceaccounts,roles,rolebindings", "-n", operatorNS)
	}
}

// startManagers runs the callback server and the controller, each with its
// ServiceAccount's token, as their Deployments do.
func (d *demo) startManagers(ctx context.Context) error {
	tokens := filepath.Join(d.work, "callback-tokens")
	if err := os.WriteFile(tokens, []byte(demoToken+"\n"), 0o600); err != nil {
		return err
	}
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		return err
	}
	callbackAddr := "127.0.0.1:" + ports[0]
	if err := d.startManager(ctx, "callback", "liveroom-callback-server",
		"--callback-token-file="+tokens, "--callback-bind-address="+callbackAddr); err != nil {
		return err
	}
	d.callbackURL = "http://" + callbackAddr + "/callback"
	return d.startManager(ctx, "controller", "liveroom-controller-manager",
		"--leader-elect", "--leader-election-namespace="+operatorNS, "--ended-room-ttl=1h")
}

// startManager runs bin/manager in role as ServiceAccount sa and waits until it is ready.
func (d *demo) startManager(ctx context.Context, role, sa string, roleArgs ...string) error {
	kubeconfig := filepath.Join(d.work, role+".kubeconfig")
	if err := d.cluster.ServiceAccountKubeconfig(ctx, operatorNS, sa, kubeconfig); err != nil {
		return err
	}
	ports, err := localcluster.FreePorts(2)
	if err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(d.work, "logs", role+".log"))
	if err != nil {
		return err
	}
	args := append([]string{
		"--role=" + role, "--kubeconfig=" + kubeconfig, "--sdk-app-id=" + sdkAppID, "--room-namespace=" + roomNS,
		"--metrics-bind-address=127.0.0.1:" + ports[0], "--health-probe-bind-address=127.0.0.1:" + ports[1],
	}, roleArgs...)
	cmd := exec.Command(filepath.Join(d.root, "bin", "manager"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.managers = append(d.managers, cmd)
	d.metricsURLs = append(d.metricsURLs, role+": https://127.0.0.1:"+ports[0]+"/metrics")
	return d.waitFor(ctx, role+" ready", func() (bool, error) {
		resp, err := http.Get("http://127.0.0.1:" + ports[1] + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// callback POSTs a callback signed with the demo token, as Tencent would.
func (d *demo) callback(ctx context.Context, command, body string) error {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("%s?SdkAppid=%s&CallbackCommand=%s&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI&Sign=%s&RequestTime=%s",
		d.callbackURL, sdkAppID, command, webhookserver.Sign(demoToken, rt), rt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	fmt.Printf("    POST %-38s -> %d %s\n", command, resp.StatusCode, strings.TrimSpace(answer.String()))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", command, resp.StatusCode)
	}
	return nil
}

func (d *demo) show(ctx context.Context, args ...string) error {
	fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
	out, err := d.cluster.Kubectl(ctx, "", args...)
	fmt.Print(indent(out))
	return err
}

func (d *demo) waitNodesReady(ctx context.Context) error {
	return d.waitFor(ctx, "kwok nodes Ready", func() (bool, error) {
		out, err := d.cluster.Kubectl(ctx, "", "get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
		return strings.Count(out, "True") == 2, err
	})
}

func (d *demo) waitFor(ctx context.Context, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		done, err := ok()
		if done {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out waiting for %s (last error: %v)", what, last)
}

func (d *demo) stop() {
	for _, m := range d.managers {
		_ = m.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range d.managers {
		done := make(chan struct{})
		go func() { _ = m.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = m.Process.Kill()
		}
	}
	if d.cluster != nil {
		_ = d.cluster.Stop()
	}
	if d.work != "" {
		_ = os.RemoveAll(d.work)
	}
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
