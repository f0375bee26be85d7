package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// demoApp is a LiveApp the demo sends callbacks for, signed as Tencent signs them: with
// the token Tencent holds for the app.
type demoApp struct {
	name, namespace string
	sdkAppID        int64
	token           string
}

// exampleApp is config/app's LiveApp, with the token the demo sets in its Secret.
func exampleApp() *demoApp {
	return &demoApp{name: "example", namespace: roomNS, sdkAppID: 1400000000, token: "demo-callback-token"}
}

// exampleTokensSecret is the Secret config/app generates with a placeholder token.
const exampleTokensSecret = "example-callback-tokens"

// The second app: managed by the operator through a fake Tencent REST API.
const (
	shopApp       = "shop"
	shopSDKAppID  = 1400000001
	shopSecretKey = "demo-secret-key-of-shop"
	// lostRoom is in Tencent's room list, but its create callback never reached the
	// operator: the app's resync finds it.
	lostRoom = "lost-callback"
)

// setExampleToken shows that the example app refuses callbacks while its Secret holds
// config/app's placeholder token, puts the demo's token into the Secret as the README
// tells users to, and waits until every callback server accepts it.
func (d *demo) setExampleToken(ctx context.Context) error {
	app := d.example
	if err := d.waitFor(ctx, "the callback server refusing the example app's callbacks (placeholder token)", func() (bool, error) {
		status, _, err := d.post(ctx, app, probeCommand, probeBody())
		return status == http.StatusUnauthorized, err
	}); err != nil {
		return err
	}
	if err := d.callbackRefused(ctx, app); err != nil {
		return err
	}
	if err := d.showApps(ctx); err != nil {
		return err
	}
	secret, err := d.get(ctx, "create", "secret", "generic", exampleTokensSecret, "-n", app.namespace,
		"--from-literal=tokens="+app.token, "--dry-run=client", "-o", "yaml")
	if err != nil {
		return err
	}
	fmt.Printf("    $ kubectl create secret generic %s -n %s --from-literal=tokens=%s --dry-run=client -o yaml | kubectl apply --server-side -f -\n",
		exampleTokensSecret, app.namespace, app.token)
	out, err := d.cluster.Kubectl(ctx, secret, "apply", "--server-side", "-f", "-")
	fmt.Print(indent(out))
	if err != nil {
		return err
	}
	fmt.Println("    (the controller reads the Secret again within a minute and hands the token to the callback servers)")
	start := time.Now()
	if err := d.waitServed(ctx, app); err != nil {
		return err
	}
	fmt.Printf("    every callback server accepts the token after %s:\n", time.Since(start).Round(time.Second))
	return d.show(ctx, "get", "leases", "-n", operatorNS, "-l", apps.ReplicaLabel,
		"-o", `custom-columns=CALLBACK SERVER:.metadata.name,LOADED TOKENS (LIVEAPP UID -> HASH):.metadata.annotations.live\.liveroom\.io/loaded-tokens`)
}

// The probe is a callback the operator only acknowledges (no room exists to change).
const probeCommand = "Live.CallbackAfterMemberStateChanged"

func probeBody() string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"no-such-room","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"probe"}],"EventTime":%d}`,
		time.Now().UnixMilli())
}

// callbackRefused shows a signed callback of app refused: the app has no token yet.
func (d *demo) callbackRefused(ctx context.Context, app *demoApp) error {
	status, answer, err := d.post(ctx, app, probeCommand, probeBody())
	if err != nil {
		return err
	}
	fmt.Printf("    POST %-38s SdkAppid=%d -> %d %s   (config/app's placeholder token is refused)\n", probeCommand, app.sdkAppID, status, answer)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("%s answered %d, not 401", probeCommand, status)
	}
	return nil
}

func (d *demo) showApps(ctx context.Context) error {
	return d.show(ctx, "get", "liveapps", "-A")
}

// waitServed waits until app is Ready and every callback-server replica's Lease says it
// holds the app's tokens. The controller reads a changed token Secret again within
// controllers.DefaultSecretPoll (a minute): it does not watch Secrets.
func (d *demo) waitServed(ctx context.Context, app *demoApp) error {
	return d.waitUpTo(ctx, 3*time.Minute, "LiveApp "+app.namespace+"/"+app.name+" Ready and its tokens loaded by every callback server", func() (bool, error) {
		out, err := d.get(ctx, "get", "liveapp", app.name, "-n", app.namespace, "-o",
			`jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}`)
		uid, ready, _ := strings.Cut(strings.TrimSpace(out), " ")
		if err != nil || ready != "True" {
			return false, err
		}
		leases, err := d.get(ctx, "get", "leases", "-n", operatorNS, "-l", apps.ReplicaLabel, "-o",
			`jsonpath={range .items[*]}{.metadata.annotations.live\.liveroom\.io/loaded-tokens}{"\n"}{end}`)
		loaded := strings.Fields(leases)
		if err != nil || len(loaded) < d.callbackReplicas {
			return false, err
		}
		for _, l := range loaded {
			if !strings.Contains(l, `"`+uid+`":`) {
				return false, nil
			}
		}
		return true, nil
	})
}

// addShopApp starts a fake Tencent REST API for a second app and declares the app as a
// user would for a real one: its secret key in a Secret, `callback.manage: true`. The
// controller then configures Tencent's callback URL and commands with a token it
// generates, and the app's resync stores the room Tencent lists.
func (d *demo) addShopApp(ctx context.Context) error {
	apiURL, err := d.startFakeTencent()
	if err != nil {
		return err
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: Secret
metadata:
  name: %[1]s-tencent
  namespace: %[1]s
stringData:
  secretKey: %[2]s
---
apiVersion: live.liveroom.io/v1alpha1
kind: LiveApp
metadata:
  name: %[1]s
  namespace: %[1]s
spec:
  sdkAppId: %[3]d
  api:
    host: %[4]s
    secretKeyRef: {name: %[1]s-tencent, key: secretKey}
  callback:
    url: %[5]s
    manage: true
  rooms:
    resyncInterval: 30s
`, shopApp, shopSecretKey, shopSDKAppID, apiURL, d.callbackURL)
	fmt.Print(indent("$ kubectl apply --server-side -f - <<EOF\n" + manifest + "EOF"))
	if _, err := d.cluster.Kubectl(ctx, manifest, "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "Tencent (the fake) calling the operator with a token the operator generated", func() (bool, error) {
		out, err := d.get(ctx, "get", "liveapp", shopApp, "-n", shopApp, "-o", `jsonpath={.status.conditions[?(@.type=="CallbackConfigured")].status}`)
		return out == "True" && d.tencent.CallbackToken().Enabled, err
	}); err != nil {
		return err
	}
	d.shop = &demoApp{name: shopApp, namespace: shopApp, sdkAppID: shopSDKAppID, token: d.tencent.CallbackToken().Token}
	if err := d.waitServed(ctx, d.shop); err != nil {
		return err
	}
	return d.showShop(ctx)
}

// showShop shows what the operator did in Tencent and what the resync found there.
func (d *demo) showShop(ctx context.Context) error {
	if err := d.showApps(ctx); err != nil {
		return err
	}
	cfg, _ := d.tencent.CallbackConfig()
	fmt.Printf("    The fake Tencent now calls %s for %d commands, signing with the token the operator keeps in Secret %s/%s\n",
		cfg.URL, len(cfg.Commands), shopApp, apps.TokenSecretName(shopApp))
	if err := d.waitFor(ctx, "the resync storing room "+lostRoom, func() (bool, error) {
		out, err := d.get(ctx, "get", "liveroom", lostRoom, "-n", shopApp, "--ignore-not-found", "-o", "jsonpath={.status.phase}")
		return out == "Live", err
	}); err != nil {
		return err
	}
	return d.show(ctx, "get", "liverooms", "-n", shopApp, "-o", "wide")
}

// startFakeTencent serves a fake Tencent REST API for the shop app where the controller
// can reach it (on a real node, the node's address, which Pods route to) and returns its
// URL.
func (d *demo) startFakeTencent() (string, error) {
	d.tencent = faketencent.New(shopSDKAppID, "administrator", shopSecretKey)
	d.tencent.AddRoom(tencent.RoomInfo{
		RoomID: lostRoom, RoomType: "Live", OwnerAccount: "user5", RoomName: new("Never called back"),
		CreateTime: tencent.FlexInt(time.Now().Unix()),
	})
	host := "127.0.0.1"
	if d.real {
		host = localcluster.NodeIP
	}
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: d.tencent, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	d.tencentStop = func() {
		_ = srv.Close()
		d.tencent.Close()
	}
	return "http://" + l.Addr().String(), nil
}

// callback POSTs a callback of app signed with the app's token, as Tencent would, and
// expects it accepted.
func (d *demo) callback(ctx context.Context, app *demoApp, command, body string) error {
	status, answer, err := d.post(ctx, app, command, body)
	if err != nil {
		return err
	}
	fmt.Printf("    POST %-38s SdkAppid=%d -> %d %s\n", command, app.sdkAppID, status, answer)
	if status != http.StatusOK {
		return fmt.Errorf("%s answered %d", command, status)
	}
	return nil
}

// post sends a callback of app signed with the app's token and returns the answer.
func (d *demo) post(ctx context.Context, app *demoApp, command, body string) (int, string, error) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("%s?SdkAppid=%d&CallbackCommand=%s&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI&Sign=%s&RequestTime=%s",
		d.callbackURL, app.sdkAppID, command, webhookserver.Sign(app.token, rt), rt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(answer.String()), nil
}
