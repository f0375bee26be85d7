# liveroom-operator

IMG ?= liveroom-operator:dev
# Platforms of the image index that `make image` and `make image-push` build.
PLATFORMS ?= linux/amd64,linux/arm64
# Kubernetes version of the control-plane binaries built for tests: the k8s.io/kubernetes
# version hack/k8s/go.mod requires, the one place it is written (go.mod's k8s.io/* follow it,
# internal/testenv checks).
K8S_VERSION ?= $(shell sed -n 's|^[[:space:]]*k8s.io/kubernetes v\([0-9.]*\)$$|\1|p' hack/k8s/go.mod)
CONTROLLER_TOOLS_VERSION ?= v0.23.0
# v5.8.1 is the newest kustomize that builds with Go 1.26.
KUSTOMIZE_VERSION ?= v5.8.1

LOCALBIN ?= $(shell pwd)/bin
K8S_BIN ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUSTOMIZE ?= $(LOCALBIN)/kustomize
KUBECTL ?= kubectl
IMAGE_DIR ?= $(LOCALBIN)/image
# The image builder (hack/image, a module of its own): no Docker engine needed.
IMAGE_TOOL = go -C hack/image run .
# The monitoring tests and promtool live in hack/monitoring, a module of its own, so that
# Prometheus' server and its dependencies stay out of the operator's go.mod.
MONITORING = go -C hack/monitoring
PROMTOOL ?= $(LOCALBIN)/promtool
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
GOLANGCI_LINT_VERSION ?= v2.15.0

# Two cores: keep go test's package parallelism to that.
GO_TEST_FLAGS ?= -p 2 -count=1
FUZZTIME ?= 30s

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the kubebuilder markers.
	@# Two identities, two ClusterRoles: the internet-facing callback server's from the
	@# markers of webhookserver/ alone; the controller's from those of the reconcilers and
	@# the resync.
	$(CONTROLLER_GEN) rbac:roleName=callback-role paths="./webhookserver/..." output:rbac:artifacts:config=config/rbac/callback
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/...;./internal/resync/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	@# RecordingPolicy embeds a whole Job template: without descriptions its CRD stays far
	@# below the 256 KiB that client-side `kubectl apply` can annotate.
	$(CONTROLLER_GEN) crd:maxDescLen=0 paths="./api/..." output:crd:artifacts:config=$(LOCALBIN)/crd-nodesc
	cp $(LOCALBIN)/crd-nodesc/live.liveroom.io_recordingpolicies.yaml config/crd/bases/

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods and the apply configurations (typed server-side apply).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml) on the operator's module and the hack/ modules.
	$(GOLANGCI_LINT) run ./...
	cd hack/image && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...
	cd hack/monitoring && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...

.PHONY: test
test: manifests generate fmt vet lint envtest ## Run unit and integration tests (real etcd + kube-apiserver), the image's tests, then the end-to-end tests (kwok, then a real node).
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/e2e) -coverprofile cover.out
	$(MAKE) test-image
	$(MAKE) test-monitoring
	$(MAKE) test-e2e
	$(MAKE) test-e2e-node

.PHONY: test-image
test-image: ## Test the image builder: the image matches the Dockerfile, pushes to a registry, imports into containerd.
	go -C hack/image vet ./...
	go -C hack/image test -count=1 ./...

.PHONY: test-monitoring
test-monitoring: promtool ## Test config/prometheus and config/grafana: promtool check and unit tests of every alert, every queried metric registered by the manager, the dashboard's PromQL, the components render.
	hack/envtest.sh $(K8S_BIN) kubectl
	$(MONITORING) vet ./...
	PROMTOOL="$(PROMTOOL)" KUBECTL_BIN="$(K8S_BIN)/kubectl" $(MONITORING) test -count=1 ./...

.PHONY: test-e2e
test-e2e: build cluster-bins ## Run the end-to-end tests: bin/manager on a local cluster with kwok nodes.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test -count=1 -timeout 20m ./test/e2e/ -v -args -root=$(CURDIR)

.PHONY: test-e2e-node
test-e2e-node: manifests node-bins image test-images ## Run the real-node end-to-end test (as root): the image of IMG on kubelet + containerd, installed with config/default.
	go test -count=1 -timeout 20m ./test/e2e-node/ -v -args -root=$(CURDIR) \
		-manager-image=$(IMAGE_DIR)/manager.tar -recorder-image=$(IMAGE_DIR)/recorder.tar -pause-image=$(IMAGE_DIR)/pause.tar

.PHONY: fuzz
fuzz: ## Fuzz the callback decoder and the whole callback handler, each for FUZZTIME.
	go test ./internal/tencent -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	go test ./webhookserver -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME)

##@ Benchmarks (each prints its figures against a baseline measured in the same run)

.PHONY: bench-callbacks
bench-callbacks: envtest ## Signed create callbacks vs. raw API-server writes at concurrency 1, 16, 64.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/bench/callbacks

.PHONY: bench-load
bench-load: build envtest ## Open-loop member churn over 1,500 rooms at 500, 2,000 and 5,000 callbacks/s for 60 s each with a create every 250 ms, against bin/manager --role=callback; idle creates as the baseline.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/bench/load -manager bin/manager $(BENCH_LOAD_FLAGS)

.PHONY: bench-reconcile
bench-reconcile: envtest ## 2,000 and 10,000 live rooms: time to all Jobs vs. a bare client loop (2,000); heap per room at cold start and steady state (<= 5 KiB at 10,000).
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/bench/reconcile -rooms 2000,10000 -time-at 2000

.PHONY: bench-resync
bench-resync: envtest ## Resync of 10,000 rooms against the fake Tencent API, with and without its list rate limit.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/bench/resync

.PHONY: bench-forward
bench-forward: ## Latency the operator adds to blocking callbacks; after-event throughput with a slow backend.
	go run ./hack/bench/forward

.PHONY: bench
bench: bench-callbacks bench-load bench-reconcile bench-resync bench-forward ## All benchmarks.

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build bin/manager.
	CGO_ENABLED=0 go build -trimpath -o bin/manager .

# make demo NODE=real: the operator's image as Pods on a real kubelet + containerd node (root).
NODE ?= kwok

.PHONY: demo
demo: build cluster-bins $(if $(filter real,$(NODE)),node-bins image test-images) ## Local cluster + operator + fake Tencent API: two apps (one managed by the operator), rooms from create to destroy callback; exits when done (NODE=real: real Pods).
	go run ./hack/demo -root=$(CURDIR) -node=$(NODE) $(DEMO_FLAGS)

.PHONY: run
run: build cluster-bins ## Run the operator on a local cluster until Ctrl-C (no scripted callbacks).
	go run ./hack/demo -root=$(CURDIR) -script=false

.PHONY: image
image: ## Build the manager's OCI image (an index of PLATFORMS) without Docker into bin/image/manager.tar, named IMG.
	$(IMAGE_TOOL) build -root $(CURDIR) -image manager -tag $(IMG) -platforms $(PLATFORMS) -out $(IMAGE_DIR)/manager.tar

.PHONY: image-push
image-push: ## Build the manager's image and push it to IMG without Docker (credentials of docker's config.json).
	$(IMAGE_TOOL) push -root $(CURDIR) -image manager -tag $(IMG) -platforms $(PLATFORMS)

.PHONY: test-images
test-images: ## Build the real-node test's recorder and Pod sandbox (pause) images for this machine.
	$(IMAGE_TOOL) build -root $(CURDIR) -image recorder -tag liveroom-recorder:e2e -platforms linux/$$(go env GOARCH) -out $(IMAGE_DIR)/recorder.tar
	$(IMAGE_TOOL) build -root $(CURDIR) -image pause -tag liveroom-pause:e2e -platforms linux/$$(go env GOARCH) -out $(IMAGE_DIR)/pause.tar

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs (and every LiveRoom and RecordingPolicy) from the cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator with config/default, image IMG.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -
	kubectl wait --for condition=Established crd/liveapps.live.liveroom.io crd/liverooms.live.liveroom.io crd/recordingpolicies.live.liveroom.io
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator deployed with config/default.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

.PHONY: envtest
envtest: ## Build etcd and kube-apiserver for tests into bin/k8s/K8S_VERSION (from the Go module proxy).
	hack/envtest.sh $(K8S_BIN) etcd kube-apiserver

.PHONY: cluster-bins
cluster-bins: envtest ## Build kube-controller-manager, kube-scheduler, kubectl and kwok for the local cluster.
	hack/envtest.sh $(K8S_BIN) kube-controller-manager kube-scheduler kubectl kwok

.PHONY: node-bins
node-bins: envtest ## Build the real-node cluster's parts: control plane, kubelet, kube-proxy, containerd (shim, ctr), CNI plugins.
	hack/envtest.sh $(K8S_BIN) kube-controller-manager kube-scheduler kubectl kubelet kube-proxy \
		containerd containerd-shim-runc-v2 ctr bridge host-local loopback portmap

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/ from the Go module proxy.
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: promtool
promtool: $(PROMTOOL) ## Build promtool into bin/ from the Go module proxy (the version hack/monitoring/go.mod pins).
$(PROMTOOL): hack/monitoring/go.mod hack/monitoring/go.sum
	$(MONITORING) build -o $(PROMTOOL) -ldflags "-X github.com/prometheus/common/version.Version=$$($(MONITORING) list -m -f '{{.Version}}' github.com/prometheus/prometheus)" github.com/prometheus/prometheus/cmd/promtool

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/.
$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
