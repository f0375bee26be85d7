package e2e

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gstruct"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
)

// tencentApp starts a fake Tencent REST API for a and puts a's secret key in a Secret of
// a's new namespace, as the LiveApp's api.secretKeyRef will name it.
func tencentApp(t *testing.T, a app) *faketencent.Server {
	t.Helper()
	key := "e2e-secret-key-" + a.name
	fake := faketencent.New(a.sdkAppID, "administrator", key)
	t.Cleanup(fake.Close)
	createNamespace(t, a.namespace)
	createSecret(t, a.namespace, a.name+"-tencent", "secretKey", key)
	return fake
}

// TestResyncAndDeclaredRoomsReachTencent points an app's REST API at a fake Tencent: rooms
// whose create callbacks never arrived appear from the resync alone, and a room declared
// in Git is created in Tencent with its metadata, which follows the spec's changes.
func TestResyncAndDeclaredRoomsReachTencent(t *testing.T) {
	g := NewWithT(t)
	a := app{namespace: "resync-live", name: "resync", sdkAppID: 1400000002, token: "e2e-token-resync"}
	fake := tencentApp(t, a)
	now := tencent.FlexInt(time.Now().Unix())
	fake.AddRoom(tencent.RoomInfo{RoomID: "lost-callback-1", RoomType: "Live", OwnerAccount: "user5", RoomName: new("Never called back"), CreateTime: now})
	fake.AddRoom(tencent.RoomInfo{RoomID: "Lost_Callback.2", RoomType: "Live", OwnerAccount: "user6", CreateTime: now})
	createSecret(t, a.namespace, a.name+"-callback-tokens", "tokens", a.token)
	applyLiveApp(t, a, fmt.Sprintf(`
api:
  host: %s
  secretKeyRef: {name: %s-tencent, key: secretKey}
callback:
  tokensSecretRef: {name: %s-callback-tokens, key: tokens}
rooms:
  resyncInterval: 2s`, fake.URL(), a.name, a.name))

	startController(t)
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "lost-callback-1", "-n", a.namespace, "--ignore-not-found", "-o", `jsonpath={.metadata.annotations.live\.liveroom\.io/origin}/{.status.phase}/{.spec.owner}/{.spec.roomName}`)
	}, timeout).Should(Equal("resync/Live/user5/Never called back"))
	g.Eventually(func() string {
		return kubectl(t, "get", "liverooms", "-n", a.namespace, "--field-selector", "spec.roomId=Lost_Callback.2", "-o", "jsonpath={.items[*].status.phase}")
	}, timeout).Should(Equal("Live"))

	// A room declared in Git is created in Tencent, with its metadata.
	declared := func(metadata string) string {
		return fmt.Sprintf(`apiVersion: live.liveroom.io/v1alpha1
kind: LiveRoom
metadata:
  name: from-git
  namespace: %s
spec:
  roomId: from-git
  sdkAppId: %d
  roomName: Declared in Git
  owner: gitops
  metadata: %s
`, a.namespace, a.sdkAppID, metadata)
	}
	kubectlApply(t, declared(`{topic: gitops, lang: en}`))
	g.Eventually(func() bool { _, ok := fake.Room("from-git"); return ok }, timeout).Should(BeTrue())
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "from-git", "-n", a.namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Synced")].status}`)
	}, timeout).Should(Equal("True"))
	g.Expect(fake.RoomMetadata("from-git")).To(Equal(map[string]string{"topic": "gitops", "lang": "en"}))

	// A key removed from Git is deleted in Tencent, a changed one updated.
	kubectlApply(t, declared(`{topic: changed-in-git}`))
	g.Eventually(func() map[string]string { return fake.RoomMetadata("from-git") }, timeout).
		Should(Equal(map[string]string{"topic": "changed-in-git"}))
}

// TestManagedAppConfiguresTencentAndRotatesItsToken: with callback.manage the operator
// sets Tencent's callback URL, commands and a token it generates, corrects a change made
// behind its back, and rotates the token while callbacks signed as Tencent signs them
// flow without one refused; the old token is refused once its time is over.
func TestManagedAppConfiguresTencentAndRotatesItsToken(t *testing.T) {
	g := NewWithT(t)
	a := app{namespace: "managed-live", name: "managed", sdkAppID: 1400000003}
	fake := tencentApp(t, a)
	callbacks := []*manager{startCallback(t), startCallback(t)}
	controller := startController(t)
	url := "http://" + callbacks[0].callback + "/callback"
	const extra = "Live.CallbackAfterCreateBattle"
	// The old token stays accepted for maxSkew plus the controller's margin (10s).
	applyLiveApp(t, a, fmt.Sprintf(`
api:
  host: %s
  secretKeyRef: {name: %s-tencent, key: secretKey}
callback:
  url: %s
  manage: true
  extraCommands: [%s]
  tokenRotationPeriod: 12s
  maxSkew: 3s
  deletionPolicy: Remove`, fake.URL(), a.name, url, extra))

	g.Eventually(func() map[string]string {
		_, rows := table(kubectl(t, "get", "liveapps", "-n", a.namespace))
		return rows[a.name]
	}, timeout).Should(gstruct.MatchKeys(gstruct.IgnoreExtras, gstruct.Keys{
		"SDKAPPID": Equal(fmt.Sprint(a.sdkAppID)), "URL": Equal(url), "CALLBACKS": Equal("True"), "READY": Equal("True"),
	}))
	t.Logf("kubectl get liveapps -n %s:\n%s", a.namespace, kubectl(t, "get", "liveapps", "-n", a.namespace))

	// Tencent calls the app's URL for the operator's commands and the app's extra one, and
	// signs with the token the operator generated and keeps in the app's namespace.
	want := tencent.CallbackConfig{URL: url, Commands: slices.Sorted(slices.Values(append(tencent.OperatorCommands(), extra)))}
	g.Expect(heldConfig(fake)()).To(Equal(want))
	secret := kubectl(t, "get", "liveapp", a.name, "-n", a.namespace, "-o", "jsonpath={.status.tokenSecretName}")
	g.Expect(secret).To(Equal(a.name + "-callback-token"))
	first := secretValue(t, a.namespace, secret, "token")
	g.Expect(first).To(HaveLen(64))
	g.Expect(fake.CallbackToken()).To(Equal(faketencent.CallbackToken{Token: first, Enabled: true}))
	g.Expect(events(t, a.namespace, "LiveApp", a.name)).To(SatisfyAll(
		ContainSubstring("Normal CallbackConfigured: Configured Tencent to call "+url),
		ContainSubstring("Normal TokenSwitched: Tencent signs callbacks with the operator's token now; all 2 callback-server replica(s) accept it"),
	))

	// From now on, callbacks signed with the token Tencent holds, every 100 ms.
	l := startLoad(func(i int) (int, string, error) {
		signed := a
		signed.token = fake.CallbackToken().Token
		return send(callbacks[i%len(callbacks)], signed, "Live.CallbackAfterCreateRoom", createBody(fmt.Sprintf("managed-%d", i), "u", "Voice"))
	})

	// Someone changes the configuration in Tencent's console. The leader reads it back
	// every 10 minutes, and a new leader at once: restart the controller.
	fake.SetCallbackConfig(&tencent.CallbackConfig{URL: "https://elsewhere.example.com/callback", Commands: []string{tencent.CommandCreateRoom}})
	controller.stop()
	startController(t)
	g.Eventually(heldConfig(fake), timeout, 100*time.Millisecond).Should(Equal(want))
	g.Eventually(func() string { return events(t, a.namespace, "LiveApp", a.name) }, timeout).
		Should(ContainSubstring("Normal CallbackConfigured: Tencent's callback configuration differed (another URL, "))

	// The rotation: Tencent is switched to a new token once both replicas accept it.
	g.Eventually(func() string { return fake.CallbackToken().Token }, timeout, 100*time.Millisecond).ShouldNot(Equal(first))
	for _, m := range callbacks {
		status, answer, err := sendSigned(m, a.sdkAppID, first, probeCommand, `{"CallbackCommand":"`+probeCommand+`"}`)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(status).To(Equal(http.StatusOK), "%s still accepts the old token after the switch: %s", m.name, answer)
	}
	g.Eventually(func() string { return secretValue(t, a.namespace, secret, "previousToken") }, timeout).Should(Equal(first))
	g.Expect(events(t, a.namespace, "LiveApp", a.name)).To(SatisfyAll(
		ContainSubstring("Normal TokenRotationStarted: "),
		ContainSubstring("Normal TokenSwitched: Tencent signs callbacks with the new token now; the previous one stays accepted for 13s"),
	))

	// Once maxSkew and the margin are over, the old token is refused.
	for _, m := range callbacks {
		g.Eventually(func() (int, error) {
			status, _, err := sendSigned(m, a.sdkAppID, first, probeCommand, `{"CallbackCommand":"`+probeCommand+`"}`)
			return status, err
		}, timeout, 200*time.Millisecond).Should(Equal(http.StatusUnauthorized), "%s refuses the old token", m.name)
	}
	sent := l.finish(t, "callbacks signed with Tencent's token through the rotation")
	t.Logf("%d callbacks signed with Tencent's current token, all accepted", sent)
	g.Expect(sent).To(BeNumerically(">", 50))

	// Deleting the app (deletionPolicy Remove) removes Tencent's callback configuration.
	kubectl(t, "delete", "liveapp", a.name, "-n", a.namespace, "--wait=true", "--timeout=60s")
	_, configured := fake.CallbackConfig()
	g.Expect(configured).To(BeFalse())
}

// heldConfig returns Tencent's callback configuration, its commands sorted, or an error
// when Tencent holds none.
func heldConfig(fake *faketencent.Server) func() (tencent.CallbackConfig, error) {
	return func() (tencent.CallbackConfig, error) {
		cfg, ok := fake.CallbackConfig()
		if !ok {
			return cfg, errors.New("Tencent holds no callback configuration")
		}
		slices.Sort(cfg.Commands)
		return cfg, nil
	}
}

// secretValue reads one key of a Secret, "" when it has none.
func secretValue(t *testing.T, namespace, name, key string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(kubectl(t, "get", "secret", name, "-n", namespace, "-o", "jsonpath={.data."+key+"}"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
