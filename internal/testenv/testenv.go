// Package testenv starts the real etcd and kube-apiserver that integration tests run
// against, with the operator's CRDs installed.
package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// K8sVersion is the version of the control-plane binaries `make envtest` builds: the
// k8s.io/kubernetes version hack/k8s/go.mod requires, the one place it is written.
func K8sVersion() string {
	version, err := KubernetesVersion(filepath.Join(RepoRoot(), "hack", "k8s", "go.mod"))
	if err != nil {
		panic(err)
	}
	return version
}

// KubernetesVersion reads the k8s.io/kubernetes version a go.mod requires, without the v.
func KubernetesVersion(goMod string) (string, error) {
	b, err := os.ReadFile(goMod)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes v(\d+\.\d+\.\d+)\s*$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s requires no k8s.io/kubernetes version", goMod)
	}
	return string(m[1]), nil
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts etcd and kube-apiserver with the CRDs of config/crd/bases. The binaries
// come from KUBEBUILDER_ASSETS (set by `make test`) or else bin/k8s/<version>, so a test
// run from an editor finds them too.
func Start() (*envtest.Environment, *rest.Config, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir := filepath.Join(RepoRoot(), "bin", "k8s", K8sVersion())
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
			return nil, nil, fmt.Errorf("no control-plane binaries: run `make envtest` (or `make test`) first")
		}
		os.Setenv("KUBEBUILDER_ASSETS", dir)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the test control plane: %w", err)
	}
	// Tests create objects in bursts; do not let client-side throttling slow them.
	cfg.QPS, cfg.Burst = 1000, 2000
	return env, cfg, nil
}

// Scheme holds the built-in kinds and the operator's, for the tests' clients and managers.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(livev1.AddToScheme(s))
	return s
}()

// Suite is the control plane one test package shares.
type Suite struct {
	Config *rest.Config
	// Client talks to the API server directly, without a cache.
	Client client.Client
	env    *envtest.Environment
}

// StartSuite starts the control plane for a test package and silences controller-runtime's
// log, which would otherwise drown the test output.
func StartSuite() (*Suite, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, cfg, err := Start()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Suite{Config: cfg, Client: c, env: env}, nil
}

// NewManager returns a manager on the suite's control plane, its metrics server off,
// caching as the production role whose cache options are given (see internal/caches).
func (s *Suite) NewManager(cacheOpts cache.Options) (manager.Manager, error) {
	return ctrl.NewManager(s.Config, manager.Options{Scheme: Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: cacheOpts})
}

// Stop stops the control plane.
func (s *Suite) Stop() { _ = s.env.Stop() }
