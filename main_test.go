package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// runManagerEnv makes the test binary run main() instead of the tests: each manager of
// a test is a process of its own, as in a cluster, with metrics registries of its own.
const runManagerEnv = "LIVEROOM_TEST_RUN_MANAGER"

func TestMain(m *testing.M) {
	if os.Getenv(runManagerEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestParseFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "liveroom-system")
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.operatorNamespace != "liveroom-system" || o.callbackBindAddress != ":8082" || o.callbackTimeout != 1500*time.Millisecond {
		t.Errorf("flags: %+v", o)
	}
	if o.role != roleAll || o.metricsBindAddress != ":8443" || !o.metricsSecure || o.enableHTTP2 || o.pprofBindAddress != "0" {
		t.Errorf("role, metrics and pprof defaults: role %q, metrics %q secure %v http2 %v pprof %q", o.role, o.metricsBindAddress, o.metricsSecure, o.enableHTTP2, o.pprofBindAddress)
	}
	if o.callbackMaxConns != webhookserver.DefaultMaxConnections || o.countBudget != 20 || o.countInterval != time.Second ||
		o.lifecycleConcurrent != webhookserver.DefaultLifecycleConcurrency {
		t.Errorf("callback server defaults: %+v", o)
	}
	for _, bad := range []string{"--callback-max-connections=0", "--callback-max-connections=-5", "--count-writes-per-second=0",
		"--count-write-interval=-1s", "--lifecycle-concurrency=0", "--lifecycle-api-qps=0"} {
		if _, err := parseFlags([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestRolesRefuseTheOtherRolesSettings: a flag or secret of one role given to a process of
// the other is an error at start, never silently ignored; the callback role in particular
// never gets to read the Tencent secret key.
func TestRolesRefuseTheOtherRolesSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "unknown role", args: []string{"--role=webhook"}, wantErr: `--role must be callback, controller or all, not "webhook"`},
		{name: "callback role with leader election", args: []string{"--role=callback", "--leader-elect"}, wantErr: "--leader-elect configures --role=controller"},
		{name: "controller role with the callback server's address", args: []string{"--role=controller", "--callback-bind-address=:9000"}, wantErr: "--callback-bind-address configures --role=callback"},
		{name: "controller role with the count budget", args: []string{"--role=controller", "--count-writes-per-second=50"}, wantErr: "--count-writes-per-second configures --role=callback"},
		{name: "plain metrics with a certificate", args: []string{"--metrics-secure=false", "--metrics-cert-path=/certs"}, wantErr: "--metrics-cert-path needs --metrics-secure"},
		{name: "callback role", args: []string{"--role=callback", "--callback-timeout=1s", "--lifecycle-concurrency=8", "--metrics-cert-path=/certs"}},
		{name: "controller role", args: []string{"--role=controller", "--leader-elect"}},
		{name: "all", args: []string{"--leader-elect", "--count-writes-per-second=5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestDeploymentsStartTheirRole parses the arguments each Deployment of config/manager
// gives the binary, with the environment it declares and config/default's values: each
// runs its role, and neither is given a flag or secret of the other.
func TestDeploymentsStartTheirRole(t *testing.T) {
	for file, want := range map[string]role{"callback_server.yaml": roleCallback, "controller_manager.yaml": roleController} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("config", "manager", file))
			if err != nil {
				t.Fatal(err)
			}
			var deploy appsv1.Deployment
			if err := yaml.UnmarshalStrict(b, &deploy); err != nil {
				t.Fatal(err)
			}
			c := deploy.Spec.Template.Spec.Containers[0]
			vars := map[string]string{}
			for _, env := range c.Env {
				if env.ValueFrom != nil && env.ValueFrom.FieldRef == nil {
					t.Errorf("%s comes from %+v: the Deployments take no Secret or ConfigMap, apps are LiveApps", env.Name, env.ValueFrom)
				}
				vars[env.Name] = "from-" + env.Name
				t.Setenv(env.Name, vars[env.Name])
			}
			args := make([]string, len(c.Args))
			for i, arg := range c.Args {
				args[i] = expandVars(arg, vars)
			}
			o, err := parseFlags(args)
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if o.role != want || o.metricsBindAddress != ":8443" || !o.metricsSecure {
				t.Errorf("role %q, metrics %q secure %v", o.role, o.metricsBindAddress, o.metricsSecure)
			}
			if len(deploy.Spec.Template.Spec.Volumes) > 0 {
				t.Errorf("volumes %v: nothing is mounted, apps' secrets are read from the API server", deploy.Spec.Template.Spec.Volumes)
			}
		})
	}
}

// expandVars replaces $(NAME) as the kubelet does in a container's arguments.
func expandVars(arg string, vars map[string]string) string {
	for name, value := range vars {
		arg = strings.ReplaceAll(arg, "$("+name+")", value)
	}
	return arg
}

// managerProcess is the test binary running main() with some flags.
type managerProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startManager(t *testing.T, args ...string) *managerProcess {
	t.Helper()
	m := &managerProcess{log: filepath.Join(t.TempDir(), "manager.log"), done: make(chan error, 1)}
	logFile, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(os.Args[0], args...)
	m.cmd.Env = append(os.Environ(), runManagerEnv+"=1")
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("manager %v:\n%s", args, b)
		}
	})
	return m
}

// stop ends the manager as the kubelet does and expects a clean exit.
func (m *managerProcess) stop(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(m.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	select {
	case err := <-m.done:
		g.Expect(err).NotTo(HaveOccurred(), "clean exit")
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop")
	}
}

func waitReady(g Gomega, probe string) {
	g.Eventually(func() int {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
}

// sendCreate sends a room create of app sdkAppID signed with token, and returns the status.
func sendCreate(callbackAddr string, sdkAppID int64, token, roomID string) (int, error) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("http://%s/callback?SdkAppid=%d&CallbackCommand=Live.CallbackAfterCreateRoom&contenttype=json&Sign=%s&RequestTime=%s",
		callbackAddr, sdkAppID, webhookserver.Sign(token, rt), rt)
	body := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":%q,"Owner_Account":"user3","CreateTime":%d}}`, roomID, time.Now().Unix())
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// liveApp declares a callback-only app in ns whose callbacks are signed with token.
func liveApp(g Gomega, k8s client.Client, ns string, sdkAppID int64, token string) *livev1.LiveApp {
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "callback-tokens"},
		StringData: map[string]string{"tokens": token + "\n"}})).To(Succeed())
	app := &livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: livev1.LiveAppSpec{SDKAppID: sdkAppID, Callback: livev1.LiveAppCallback{
			TokensSecretRef: &livev1.SecretKeyRef{Name: "callback-tokens", Key: "tokens"}}},
	}
	g.Expect(k8s.Create(ctx, app)).To(Succeed())
	return app
}

// reconciled reports whether the LiveRoom reconciler has set the room's Ready condition.
func reconciled(ctx context.Context, k8s client.Client, ns, name string) func() bool {
	return func() bool {
		var room livev1.LiveRoom
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &room); err != nil {
			return false
		}
		return meta.FindStatusCondition(room.Status.Conditions, livev1.ConditionReady) != nil
	}
}

// TestManagerRoles runs the binary's main() against a real API server: --role=all serves
// a LiveApp's callbacks and reconciles in one process; --role=callback serves callbacks
// but never reconciles, and --role=controller reconciles the rooms the callback process
// stored. Metrics answer only to a token authorized for GET /metrics.
func TestManagerRoles(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	env, cfg, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()

	user, err := env.AddUser(envtest.User{Name: "operator", Groups: []string{"system:masters"}}, cfg)
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	g.Expect(os.WriteFile(kubeconfigPath, kubeconfig, 0o600)).To(Succeed())

	k8s, err := client.New(cfg, client.Options{Scheme: newScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{"operator", "live", "split"} {
		g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	common := []string{"--kubeconfig=" + kubeconfigPath, "--operator-namespace=operator"}

	t.Run("all", func(t *testing.T) {
		g := NewWithT(t)
		liveApp(g, k8s, "live", 1400000000, "live-token")
		probe, callbackAddr := freePort(t), freePort(t)
		m := startManager(t, append(common, "--metrics-bind-address=0", "--health-probe-bind-address="+probe,
			"--callback-bind-address="+callbackAddr, "--leader-elect", "--leader-election-namespace=operator")...)
		waitReady(g, probe)
		// The controller hands the app's token to the callback server, which then accepts it.
		g.Eventually(func() (int, error) { return sendCreate(callbackAddr, 1400000000, "live-token", "tandy-test-rest") }, 30*time.Second).
			Should(Equal(http.StatusOK))
		var room livev1.LiveRoom
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "live", Name: "tandy-test-rest"}, &room)).To(Succeed())
		g.Expect(room.Spec.Owner).To(Equal("user3"))
		g.Eventually(reconciled(ctx, k8s, "live", "tandy-test-rest"), 30*time.Second).Should(BeTrue())
		m.stop(t)
	})

	t.Run("callback and controller", func(t *testing.T) {
		g := NewWithT(t)
		app := liveApp(g, k8s, "split", 1400000001, "split-token")
		// No controller runs yet: hand the callback server the tokens as the controller would.
		g.Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "operator", Name: apps.ProjectionName(app.UID),
				Labels: map[string]string{apps.ProjectionAppLabel: string(app.UID)}},
			StringData: map[string]string{apps.TokensKey: "split-token\n"},
		})).To(Succeed())
		callbackProbe, callbackAddr, metricsAddr := freePort(t), freePort(t), freePort(t)
		callback := startManager(t, append(common, "--role=callback",
			"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+callbackProbe,
			"--callback-bind-address="+callbackAddr)...)
		waitReady(g, callbackProbe)
		g.Eventually(func() (int, error) { return sendCreate(callbackAddr, 1400000001, "split-token", "split-room") }, 30*time.Second).
			Should(Equal(http.StatusOK))
		g.Expect(sendCreate(callbackAddr, 1400000001, "live-token", "wrong-token-room")).To(Equal(http.StatusUnauthorized), "one app's token is not another's")
		g.Consistently(reconciled(ctx, k8s, "split", "split-room"), 2*time.Second, 200*time.Millisecond).Should(BeFalse(),
			"the callback role runs no reconciler")

		controllerProbe := freePort(t)
		controller := startManager(t, append(common, "--role=controller",
			"--metrics-bind-address=0", "--health-probe-bind-address="+controllerProbe,
			"--leader-elect", "--leader-election-namespace=operator")...)
		waitReady(g, controllerProbe)
		g.Eventually(reconciled(ctx, k8s, "split", "split-room"), 30*time.Second).Should(BeTrue())

		// Metrics: HTTPS with a self-signed certificate, for authorized tokens only.
		metricsURL := "https://" + metricsAddr + "/metrics"
		g.Eventually(func() (int, error) { return metricsStatus(metricsURL, "") }, 10*time.Second).Should(Equal(http.StatusUnauthorized))
		g.Expect(metricsStatus(metricsURL, serviceAccountToken(t, cfg, "split", "stranger", false))).To(Equal(http.StatusForbidden))
		g.Expect(metricsStatus(metricsURL, serviceAccountToken(t, cfg, "split", "prometheus", true))).To(Equal(http.StatusOK))

		callback.stop(t)
		controller.stop(t)
	})
}

// metricsStatus GETs the metrics endpoint with a bearer token ("" for none).
func metricsStatus(url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The certificate is self-signed: this checks authorization, not the server's identity.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// serviceAccountToken creates a ServiceAccount, allowed to GET /metrics if reader, and
// returns a token of it.
func serviceAccountToken(t *testing.T, cfg *rest.Config, ns, name string, reader bool) string {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if reader {
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-metrics-reader"},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		}
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}
