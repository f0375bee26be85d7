package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// The operator's k8s.io modules are the staging versions of the Kubernetes release the
// tests run against: written once, in hack/k8s/go.mod.
func TestKubernetesVersionWrittenOnce(t *testing.T) {
	version := K8sVersion()
	staging := "v0." + strings.SplitN(version, ".", 2)[1]
	for _, goMod := range []string{filepath.Join(RepoRoot(), "go.mod"), filepath.Join(RepoRoot(), "hack", "k8s", "go.mod")} {
		f := parseMod(t, goMod)
		for _, r := range f.Require {
			// v0.0.0 is how Kubernetes itself requires its staging modules; a replace
			// below says which version is built.
			if isStaging(r.Mod.Path) && r.Mod.Version != staging && r.Mod.Version != "v0.0.0" {
				t.Errorf("%s requires %s %s; Kubernetes %s goes with %s", goMod, r.Mod.Path, r.Mod.Version, version, staging)
			}
		}
		for _, r := range f.Replace {
			if isStaging(r.Old.Path) && r.New.Version != staging {
				t.Errorf("%s replaces %s with %s; Kubernetes %s goes with %s", goMod, r.Old.Path, r.New.Version, version, staging)
			}
		}
	}
}

// isStaging reports whether path is one of the modules published from Kubernetes' staging.
func isStaging(path string) bool {
	for _, m := range []string{"k8s.io/api", "k8s.io/apimachinery", "k8s.io/client-go", "k8s.io/apiserver", "k8s.io/apiextensions-apiserver", "k8s.io/component-base"} {
		if path == m {
			return true
		}
	}
	return false
}

func parseMod(t *testing.T, path string) *modfile.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(path, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
