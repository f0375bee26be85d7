package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
)

// startOnRealNode replaces the first three steps of the kwok demo: a cluster with a real
// node, config/default installed with the operator's image, its Pods Ready.
func (d *demo) startOnRealNode(ctx context.Context) error {
	if err := d.do("Starting a local cluster with a real node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, containerd, kube-proxy",
		"run `make image test-images node-bins` as root; see "+filepath.Join(d.work, "logs"), func() error { return d.startRealNode(ctx) }); err != nil {
		return err
	}
	if err := d.do("Installing config/default (the operator and the example app) with the operator's image (bin/image/manager.tar)",
		"check `kubectl kustomize config/default` renders", d.installImage(ctx)); err != nil {
		return err
	}
	return d.do("Waiting for the operator's Pods and its callback Service",
		"kubectl describe pods -n "+operatorNS, func() error { return d.waitOperatorPods(ctx) })
}

func (d *demo) image(name string) string { return filepath.Join(d.root, "bin", "image", name+".tar") }

// startRealNode starts a cluster with one real node and loads the operator's image and the
// recorder's into it.
func (d *demo) startRealNode(ctx context.Context) error {
	var err error
	d.cluster, err = localcluster.StartNode(ctx, localcluster.NodeOptions{
		BinDir: d.binDir, Dir: d.work, PauseImage: d.image("pause"),
		Logf: func(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"manager", "recorder"} {
		if err := d.cluster.ImportImage(ctx, d.image(name)); err != nil {
			return err
		}
	}
	return d.show(ctx, "get", "nodes", "-o", "wide")
}

// installImage installs config/default, the operator and the example app, through an
// overlay that only names the operator's image: the operator runs as Pods on the node.
func (d *demo) installImage(ctx context.Context) func() error {
	return func() error {
		overlay := filepath.Join(d.work, "overlay")
		if err := os.MkdirAll(overlay, 0o755); err != nil {
			return err
		}
		base, err := filepath.Rel(overlay, filepath.Join(d.root, "config", "default"))
		if err != nil {
			return err
		}
		image, err := localcluster.ArchiveImageName(d.image("manager"))
		if err != nil {
			return err
		}
		colon := strings.LastIndex(image, ":")
		name, tag := image[:colon], image[colon+1:]
		kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: ghcr.io/liveroom-io/liveroom-operator
  newName: %s
  newTag: %s
`, base, name, tag)
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
			return err
		}
		rendered, err := d.get(ctx, "kustomize", overlay)
		if err != nil {
			return err
		}
		fmt.Printf("    $ kubectl apply --server-side -k %s\n", overlay)
		out, err := d.apply(ctx, strings.Split(rendered, "\n---\n"))
		fmt.Print(indent(out))
		if err != nil {
			return err
		}
		return d.addMetricsReader(ctx)
	}
}

// waitOperatorPods waits for the operator's Deployments and for its callback Service to
// route, and sends the demo's callbacks there.
func (d *demo) waitOperatorPods(ctx context.Context) error {
	out, err := d.cluster.Kubectl(ctx, "", "get", "deployments", "-n", operatorNS, "-o", "name")
	if err != nil {
		return err
	}
	for _, deploy := range strings.Fields(out) {
		if err := d.show(ctx, "rollout", "status", "-n", operatorNS, deploy, "--timeout=3m"); err != nil {
			return err
		}
	}
	ip, err := d.cluster.Kubectl(ctx, "", "get", "service", "liveroom-callback", "-n", operatorNS, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return err
	}
	d.callbackURL = "http://" + ip + "/callback"
	replicas, err := d.get(ctx, "get", "deployment", "liveroom-callback-server", "-n", operatorNS, "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		return err
	}
	if d.callbackReplicas, err = strconv.Atoi(replicas); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "the callback Service routing", func() (bool, error) {
		resp, err := httpGet(ctx, d.callbackURL)
		return err == nil && resp > 0, nil
	}); err != nil {
		return err
	}
	return d.show(ctx, "get", "pods", "-n", operatorNS, "-o", "wide")
}

// policyFile is the RecordingPolicy the demo applies: the sample, or on a real node the
// same policy recording with the recorder image that the node holds.
func (d *demo) policyFile() (string, error) {
	sample := filepath.Join(d.root, "config/samples/live_v1alpha1_recordingpolicy.yaml")
	if !d.real {
		return sample, nil
	}
	recorder, err := localcluster.ArchiveImageName(d.image("recorder"))
	if err != nil {
		return "", err
	}
	policy := fmt.Sprintf(`apiVersion: live.liveroom.io/v1alpha1
kind: RecordingPolicy
metadata:
  name: record-all-live
spec:
  roomSelector:
    matchLabels:
      live.liveroom.io/room-type: Live
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: Never
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            seccompProfile: {type: RuntimeDefault}
          containers:
          - name: recorder
            image: %s
            imagePullPolicy: Never
            securityContext:
              allowPrivilegeEscalation: false
              readOnlyRootFilesystem: true
              capabilities: {drop: [ALL]}
`, recorder)
	path := filepath.Join(d.work, "recordingpolicy.yaml")
	return path, os.WriteFile(path, []byte(policy), 0o644)
}
