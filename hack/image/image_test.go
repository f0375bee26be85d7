package main

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var repoRoot = func() string {
	root, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return root
}()

var (
	managerOnce  sync.Once
	managerIndex v1.ImageIndex
	managerErr   error
)

// builtManager is the manager image index as `make image` builds it, for both platforms.
func builtManager(t *testing.T) v1.ImageIndex {
	t.Helper()
	managerOnce.Do(func() {
		platforms, _ := ParsePlatforms("linux/amd64,linux/arm64")
		managerIndex, managerErr = BuildIndex(context.Background(), repoRoot, Images["manager"], platforms)
	})
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return managerIndex
}

// TestImageMatchesDockerfile keeps the image built without Docker equal to what the
// Dockerfile describes: entrypoint, user, working directory, build flags, and the files:
// the base's and the one COPY of the final stage, nothing else.
func TestImageMatchesDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	final := df.stages[len(df.stages)-1]
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") || !strings.Contains(final.from, "nonroot") {
		t.Fatalf("the Dockerfile's final stage is FROM %s; BaseFiles emulates gcr.io/distroless/static:nonroot: update both together", final.from)
	}
	builderRun := strings.Join(df.stages[0].run, "\n")
	for _, want := range append([]string{"CGO_ENABLED=0"}, dockerfileFlags(GoBuildFlags)...) {
		if !strings.Contains(builderRun, want) {
			t.Errorf("the Dockerfile's go build lacks %s (GoBuildFlags has it)", want)
		}
	}
	copies := final.copies
	if len(copies) != 1 || copies[0].from != df.stages[0].name {
		t.Fatalf("final stage copies %+v; want exactly the manager binary from the builder", copies)
	}
	binary := copies[0].dest

	index := builtManager(t)
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range manifest.Manifests {
		platforms = append(platforms, desc.Platform.OS+"/"+desc.Platform.Architecture)
		img, err := index.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Config.Entrypoint, final.entrypoint) {
			t.Errorf("%s: entrypoint %q, Dockerfile %q", desc.Platform, cfg.Config.Entrypoint, final.entrypoint)
		}
		if cfg.Config.User != final.user {
			t.Errorf("%s: user %q, Dockerfile %q", desc.Platform, cfg.Config.User, final.user)
		}
		if cfg.Config.WorkingDir != final.workdir {
			t.Errorf("%s: workdir %q, Dockerfile %q", desc.Platform, cfg.Config.WorkingDir, final.workdir)
		}
		if cfg.Architecture != desc.Platform.Architecture || cfg.OS != "linux" {
			t.Errorf("%s: config says %s/%s", desc.Platform, cfg.OS, cfg.Architecture)
		}

		files := imageFiles(t, img)
		base, err := BaseFiles()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{binary}
		for _, f := range base {
			want = append(want, f.path)
		}
		slices.Sort(want)
		if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
			t.Errorf("%s: files %q, want the base's and %s: %q", desc.Platform, got, binary, want)
		}
		checkBinary(t, desc.Platform.Architecture, files[binary])
		checkUser(t, files["/etc/passwd"], final.user)
		checkCABundle(t, files[caBundlePath])
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms %q", platforms)
	}
}

// dockerfileFlags spells go build flags as the Dockerfile's shell does.
func dockerfileFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if k, v, ok := strings.Cut(f, "="); ok && strings.Contains(v, " ") {
			f = k + "='" + v + "'"
		}
		out = append(out, f)
	}
	return out
}

// TestDockerfileCopiesBuildSources: every file the manager's build reads (the packages of
// this module it depends on, their embedded files, go.mod and go.sum) is COPied into the
// builder stage and not excluded by .dockerignore.
func TestDockerfileCopiesBuildSources(t *testing.T) {
	df := parseDockerfile(t)
	var sources []string
	for _, c := range df.stages[0].copies {
		sources = append(sources, c.sources...)
	}
	ignore := parseDockerignore(t)

	needed := []string{"go.mod", "go.sum"}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", ".")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var pkg struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || !pkg.Module.Main {
			continue
		}
		dir, err := filepath.Rel(repoRoot, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(pkg.GoFiles, pkg.EmbedFiles...) {
			needed = append(needed, path.Join(filepath.ToSlash(dir), f))
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %q", needed)
	}
	for _, f := range needed {
		if !slices.ContainsFunc(sources, func(src string) bool { return coveredBy(f, src) }) {
			t.Errorf("the manager's build needs %s, which no COPY of the Dockerfile's builder stage brings", f)
		}
		if ignore.excludes(f) {
			t.Errorf("the manager's build needs %s, which .dockerignore excludes", f)
		}
	}
}

// TestPushPublishesIndex pushes an index as `make image-push` does to a registry served
// in the test and reads it back.
func TestPushPublishesIndex(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/liveroom/recorder:test"

	platforms, _ := ParsePlatforms("linux/amd64,linux/arm64")
	index, err := BuildIndex(context.Background(), repoRoot, Images["recorder"], platforms)
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(context.Background(), index, ref); err != nil {
		t.Fatal(err)
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(parsed)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := index.Digest()
	got, _ := pulled.Digest()
	if got != want {
		t.Errorf("registry holds %s, pushed %s", got, want)
	}
	manifest, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 2 {
		t.Errorf("pulled index has %d manifests", len(manifest.Manifests))
	}
}

// TestArchiveNamesImageForContainerd: the tarball is an OCI layout whose index names the
// image as containerd and the kubelet normalise it.
func TestArchiveNamesImageForContainerd(t *testing.T) {
	index, err := BuildIndex(context.Background(), repoRoot, Images["pause"], []Platform{HostPlatform()})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "pause.tar")
	if err := WriteArchive(index, "liveroom-pause:test", archive); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar(t, archive, dir)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests", len(manifest.Manifests))
	}
	if got := manifest.Manifests[0].Annotations[containerdImageName]; got != "docker.io/library/liveroom-pause:test" {
		t.Errorf("%s = %q", containerdImageName, got)
	}
	want, _ := index.Digest()
	if manifest.Manifests[0].Digest != want {
		t.Errorf("index.json points at %s, want the built index %s", manifest.Manifests[0].Digest, want)
	}
}

func TestNormalizedName(t *testing.T) {
	for ref, want := range map[string]string{
		"liveroom-operator:dev":                         "docker.io/library/liveroom-operator:dev",
		"liveroom-operator":                             "docker.io/library/liveroom-operator:latest",
		"example/liveroom:v1":                           "docker.io/example/liveroom:v1",
		"ghcr.io/liveroom-io/liveroom-operator:v0.1.0":  "ghcr.io/liveroom-io/liveroom-operator:v0.1.0",
		"localhost:5000/liveroom-operator:e2e":          "localhost:5000/liveroom-operator:e2e",
		"registry.example.com/team/liveroom-operator:1": "registry.example.com/team/liveroom-operator:1",
	} {
		got, err := NormalizedName(ref)
		if err != nil || got != want {
			t.Errorf("NormalizedName(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

// imageFiles reads every regular file and directory of an image, by absolute path.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimSuffix(hdr.Name, "/")] = data
		}
		rc.Close()
	}
	return files
}

// checkBinary: a stripped static executable for the platform, as -ldflags='-s -w' and
// CGO_ENABLED=0 give.
func checkBinary(t *testing.T, arch string, data []byte) {
	t.Helper()
	f, err := elf.NewFile(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("%s binary: %v", arch, err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine {
		t.Errorf("%s binary is for %s", arch, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s binary is dynamically linked", arch)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s binary keeps its symbol table: not built with -s", arch)
	}
}

// checkUser: the image's user exists in its /etc/passwd, as distroless' nonroot does.
func checkUser(t *testing.T, passwd []byte, user string) {
	t.Helper()
	uid, _, _ := strings.Cut(user, ":")
	sc := bufio.NewScanner(strings.NewReader(string(passwd)))
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); len(fields) > 3 && fields[2] == uid {
			return
		}
	}
	t.Errorf("no user %s in /etc/passwd", uid)
}

func checkCABundle(t *testing.T, data []byte) {
	t.Helper()
	n := 0
	for len(data) > 0 {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatalf("CA bundle: %v", err)
		}
		n++
	}
	if n < 100 {
		t.Errorf("CA bundle holds %d certificates", n)
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
