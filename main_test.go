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
	if _, err := parseFlags(nil); err == nil {
		t.Error("--sdk-app-id must be required")
	}
	t.Setenv("POD_NAMESPACE", "liveroom-system")
	o, err := parseFlags([]string{"--sdk-app-id=1400000000", "--callback-max-skew=30s"})
	if err != nil {
		t.Fatal(err)
	}
	if o.roomNamespace != "liveroom-system" || o.callbackMaxSkew != 30*time.Second || o.callbackBindAddress != ":8082" {
		t.Errorf("flags: %+v", o)
	}
	if o.role != roleAll || o.metricsBindAddress != ":8443" || !o.metricsSecure || o.enableHTTP2 {
		t.Errorf("role and metrics defaults: role %q, metrics %q secure %v http2 %v", o.role, o.metricsBindAddress, o.metricsSecure, o.enableHTTP2)
	}
	if o.allowUnsigned || o.callbackMaxConns != webhookserver.DefaultMaxConnections {
		t.Errorf("unsigned callbacks and the connection limit must default to off and %d: %+v", webhookserver.DefaultMaxConnections, o)
	}
	if o, err := parseFlags([]string{"--sdk-app-id=1400000000", "--callback-max-skew=1h"}); err != nil || o.callbackMaxSkew != time.Hour {
		t.Errorf("a skew of 1h: %v", err)
	}
	for _, bad := range []string{"--callback-max-skew=-1s", "--callback-max-skew=0", "--callback-max-skew=61m", "--callback-max-skew=2562047h",
		"--callback-max-connections=0", "--callback-max-connections=-5"} {
		if _, err := parseFlags([]string{"--sdk-app-id=1400000000", bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestRefusesToStartWithoutCallbackToken: a configured token source must hold a real
// token, and without any source only --callback-allow-unsigned lets the manager start.
func TestRefusesToStartWithoutCallbackToken(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return "--callback-token-file=" + path
	}
	cases := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no token", nil, "", "--callback-allow-unsigned"},
		{"empty file", []string{file("empty", "")}, "", "holds no token"},
		{"comment-only file", []string{file("comments", "# put the token here\n\n")}, "", "holds no token"},
		{"missing file", []string{"--callback-token-file=" + filepath.Join(dir, "missing")}, "", "reading callback tokens"},
		{"placeholder file", []string{file("placeholder", "liveroom-demo-token-change-me\n")}, "", "placeholder"},
		{"comment-only environment", nil, "# none\n", "LIVEROOM_CALLBACK_TOKENS holds no token"},
		{"placeholder environment", nil, "liveroom-demo-token-change-me", "placeholder"},
		{"empty file despite --callback-allow-unsigned", []string{file("empty", ""), "--callback-allow-unsigned"}, "", "holds no token"},
		// Past the token check, run fails on the missing kubeconfig.
		{"unsigned allowed", []string{"--callback-allow-unsigned"}, "", "loading kubeconfig"},
		{"signed", []string{file("good", "a-real-token\n")}, "", "loading kubeconfig"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("LIVEROOM_CALLBACK_TOKENS", c.env)
			args := append([]string{"--sdk-app-id=1400000000", "--kubeconfig=" + filepath.Join(dir, "no-kubeconfig")}, c.args...)
			err := run(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestRolesRefuseTheOtherRolesSettings: a flag or secret of one role given to a process of
// the other is an error at start, never silently ignored; the callback role in particular
// never gets to read the Tencent secret key.
func TestRolesRefuseTheOtherRolesSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "unknown role", args: []string{"--role=webhook"}, wantErr: `--role must be callback, controller or all, not "webhook"`},
		{name: "callback role with leader election", args: []string{"--role=callback", "--leader-elect"}, wantErr: "--leader-elect configures --role=controller"},
		{name: "controller role with the callback tokens", args: []string{"--role=controller", "--callback-token-file=/tokens"}, wantErr: "--callback-token-file configures --role=callback"},
		{name: "controller role with tokens in its environment", args: []string{"--role=controller"}, env: map[string]string{"LIVEROOM_CALLBACK_TOKENS": "token"}, wantErr: "LIVEROOM_CALLBACK_TOKENS is set, but --role=controller has no use for it"},
		{name: "controller role with the fan-out", args: []string{"--role=controller", "--forward-url=http://backend"}, wantErr: "--forward-url configures --role=callback"},
		{name: "plain metrics with a certificate", args: []string{"--metrics-secure=false", "--metrics-cert-path=/certs"}, wantErr: "--metrics-cert-path needs --metrics-secure"},
		{name: "callback role", args: []string{"--role=callback", "--callback-token-file=/tokens", "--forward-url=http://backend", "--metrics-cert-path=/certs"}},
		{name: "controller role", args: []string{"--role=controller", "--leader-elect"}},
		{name: "all", args: []string{"--leader-elect", "--callback-token-file=/tokens"}, env: map[string]string{"LIVEROOM_CALLBACK_TOKENS": "token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LIVEROOM_TENCENT_SECRET_KEY", "")
			t.Setenv("LIVEROOM_CALLBACK_TOKENS", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := parseFlags(append([]string{"--sdk-app-id=1400000000"}, tc.args...))
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
	config := defaultConfig(t)
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
			t.Setenv("LIVEROOM_TENCENT_SECRET_KEY", "")
			t.Setenv("LIVEROOM_CALLBACK_TOKENS", "")
			c := deploy.Spec.Template.Spec.Containers[0]
			vars := map[string]string{}
			for _, env := range c.Env {
				switch from := env.ValueFrom; {
				case from == nil:
					vars[env.Name] = env.Value
				case from.ConfigMapKeyRef != nil:
					value, ok := config[from.ConfigMapKeyRef.Key]
					if !ok {
						t.Fatalf("%s: config/default's ConfigMap has no key %s", env.Name, from.ConfigMapKeyRef.Key)
					}
					vars[env.Name] = value
				default:
					vars[env.Name] = "from-" + env.Name
				}
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
		})
	}
}

// defaultConfig is the ConfigMap that config/default generates, key by key.
func defaultConfig(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("config", "default", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		ConfigMapGenerator []struct {
			Name     string   `json:"name"`
			Literals []string `json:"literals"`
		} `json:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	config := map[string]string{}
	for _, gen := range k.ConfigMapGenerator {
		for _, literal := range gen.Literals {
			key, value, _ := strings.Cut(literal, "=")
			config[key] = value
		}
	}
	return config
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

func sendCreate(g Gomega, callbackAddr, roomID string) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("http://%s/callback?SdkAppid=1400000000&CallbackCommand=Live.CallbackAfterCreateRoom&contenttype=json&Sign=%s&RequestTime=%s",
		callbackAddr, webhookserver.Sign("demo-token", rt), rt)
	body := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":%q,"Owner_Account":"user3","CreateTime":%d}}`, roomID, time.Now().Unix())
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
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
// callbacks and reconciles in one process; --role=callback serves callbacks but never
// reconciles, and --role=controller reconciles the rooms the callback process stored.
// Metrics answer only to a token authorized for GET /metrics.
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
	tokenPath := filepath.Join(dir, "tokens")
	g.Expect(os.WriteFile(tokenPath, []byte("demo-token\n"), 0o600)).To(Succeed())

	k8s, err := client.New(cfg, client.Options{Scheme: newScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{"live", "split"} {
		g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	common := []string{"--kubeconfig=" + kubeconfigPath, "--sdk-app-id=1400000000"}

	t.Run("all", func(t *testing.T) {
		g := NewWithT(t)
		probe, callbackAddr := freePort(t), freePort(t)
		m := startManager(t, append(common, "--room-namespace=live",
			"--metrics-bind-address=0", "--health-probe-bind-address="+probe,
			"--callback-bind-address="+callbackAddr, "--callback-token-file="+tokenPath,
			"--leader-elect", "--leader-election-namespace=live")...)
		waitReady(g, probe)
		sendCreate(g, callbackAddr, "tandy-test-rest")
		var room livev1.LiveRoom
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "live", Name: "tandy-test-rest"}, &room)).To(Succeed())
		g.Expect(room.Spec.Owner).To(Equal("user3"))
		g.Eventually(reconciled(ctx, k8s, "live", "tandy-test-rest"), 30*time.Second).Should(BeTrue())
		m.stop(t)
	})

	t.Run("callback and controller", func(t *testing.T) {
		g := NewWithT(t)
		callbackProbe, callbackAddr, metricsAddr := freePort(t), freePort(t), freePort(t)
		callback := startManager(t, append(common, "--role=callback", "--room-namespace=split",
			"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+callbackProbe,
			"--callback-bind-address="+callbackAddr, "--callback-token-file="+tokenPath)...)
		waitReady(g, callbackProbe)
		sendCreate(g, callbackAddr, "split-room")
		g.Consistently(reconciled(ctx, k8s, "split", "split-room"), 2*time.Second, 200*time.Millisecond).Should(BeFalse(),
			"the callback role runs no reconciler")

		controllerProbe := freePort(t)
		controller := startManager(t, append(common, "--role=controller", "--room-namespace=split",
			"--metrics-bind-address=0", "--health-probe-bind-address="+controllerProbe,
			"--leader-elect", "--leader-election-namespace=split")...)
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
