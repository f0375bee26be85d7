package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

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
	if o.roomNamespace != "liveroom-system" || o.callbackMaxSkew != 30*time.Second || o.endedRoomTTL != 24*time.Hour || o.callbackBindAddress != ":8082" {
		t.Errorf("flags: %+v", o)
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

// TestManagerStartsAndServes runs main's run() against a real API server: it becomes
// ready, turns a signed create callback into a LiveRoom, and stops cleanly.
func TestManagerStartsAndServes(t *testing.T) {
	g := NewWithT(t)
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
	g.Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"}})).To(Succeed())

	probe, callbackAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--kubeconfig=" + kubeconfigPath, "--sdk-app-id=1400000000", "--room-namespace=live",
			"--metrics-bind-address=0", "--health-probe-bind-address=" + probe,
			"--callback-bind-address=" + callbackAddr, "--callback-token-file=" + tokenPath,
			"--leader-elect", "--leader-election-namespace=live",
		})
	}()
	g.Eventually(func() int {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))

	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("http://%s/callback?SdkAppid=1400000000&CallbackCommand=Live.CallbackAfterCreateRoom&contenttype=json&Sign=%s&RequestTime=%s",
		callbackAddr, webhookserver.Sign("demo-token", rt), rt)
	body := `{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"tandy-test-rest","Owner_Account":"user3","CreateTime":1703589922}}`
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var room livev1.LiveRoom
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: "live", Name: "tandy-test-rest"}, &room)).To(Succeed())
	g.Expect(room.Spec.Owner).To(Equal("user3"))

	cancel()
	select {
	case err := <-done:
		g.Expect(err).NotTo(HaveOccurred())
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop")
	}
}

func TestSecretKeyRereadFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := secretKey(path)
	if k, err := key(); err != nil || k != "first" {
		t.Fatalf("got %q %v", k, err)
	}
	// A rotated Secret is seen on the next read, without a restart.
	if err := os.WriteFile(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := key(); err != nil || k != "second" {
		t.Fatalf("after rotation got %q %v", k, err)
	}
	t.Setenv("LIVEROOM_TENCENT_SECRET_KEY", "from-env")
	if k, _ := secretKey("")(); k != "from-env" {
		t.Fatalf("env key %q", k)
	}
	t.Setenv("LIVEROOM_TENCENT_SECRET_KEY", "")
	if secretKey("") != nil {
		t.Fatal("no key must mean callback-only")
	}
}
