// Package testenv starts the real etcd and kube-apiserver that integration tests run
// against, with the operator's CRDs installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the version of the control-plane binaries `make envtest` builds.
const K8sVersion = "1.37.2"

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts etcd and kube-apiserver with the CRDs of config/crd/bases. The binaries
// come from KUBEBUILDER_ASSETS (set by `make test`) or else bin/k8s/<version>, so a test
// run from an editor finds them too.
func Start() (*envtest.Environment, *rest.Config, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir := filepath.Join(RepoRoot(), "bin", "k8s", K8sVersion)
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
