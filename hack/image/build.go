package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Spec describes one image: a static Go binary on a distroless-like base.
type Spec struct {
	// Package is the Go package of the binary, relative to the repository root.
	Package string
	// Binary is the path of the binary in the image; it is the entrypoint.
	Binary string
	// User runs the entrypoint ("uid:gid").
	User string
}

// Images are the images this tool builds: the manager (what the Dockerfile builds) and
// the small images of the real-node end-to-end test.
var Images = map[string]Spec{
	"manager":  {Package: ".", Binary: "/manager", User: "65532:65532"},
	"recorder": {Package: "./test/images/recorder", Binary: "/recorder", User: "65532:65532"},
	"pause":    {Package: "./test/images/pause", Binary: "/pause", User: "65535:65535"},
}

// GoBuildFlags are the flags of the Dockerfile's `go build`, with CGO_ENABLED=0.
var GoBuildFlags = []string{"-trimpath", "-ldflags=-s -w"}

// epoch is the time of every file and of the image config, so that the same sources give
// the same digests.
var epoch = time.Unix(0, 0).UTC()

const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// imageEnv is the environment of gcr.io/distroless/static.
var imageEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + caBundlePath,
}

// Platform is an os/arch pair such as linux/arm64.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatforms reads a comma-separated list of os/arch pairs.
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for _, item := range strings.Split(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(item), "/")
		if !ok || osName != "linux" || arch == "" {
			return nil, fmt.Errorf("platform %q: want linux/ARCH", item)
		}
		out = append(out, Platform{OS: osName, Arch: arch})
	}
	return out, nil
}

// HostPlatform is the platform this tool runs on.
func HostPlatform() Platform { return Platform{OS: "linux", Arch: runtime.GOARCH} }

// BuildIndex cross-compiles spec's binary for each platform in the repository at root and
// returns an OCI image index with one image per platform.
func BuildIndex(ctx context.Context, root string, spec Spec, platforms []Platform) (v1.ImageIndex, error) {
	base, err := baseLayer()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "liveroom-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		bin := filepath.Join(work, p.Arch, filepath.Base(spec.Binary))
		if err := goBuild(ctx, root, spec.Package, p, bin); err != nil {
			return nil, err
		}
		img, err := platformImage(spec, p, base, bin)
		if err != nil {
			return nil, err
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch}},
		})
	}
	return index, nil
}

// goBuild builds a static binary as the Dockerfile does.
func goBuild(ctx context.Context, root, pkg string, p Platform, out string) error {
	args := append([]string{"build"}, GoBuildFlags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w", pkg, p, err)
	}
	return nil
}

// platformImage is the base layer plus a layer with the binary, and the config the
// Dockerfile sets.
func platformImage(spec Spec, p Platform, base v1.Layer, bin string) (v1.Image, error) {
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	top, err := layer([]file{{path: spec.Binary, mode: 0o755, data: binary}})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, base, top); err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = p.OS, p.Arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{spec.Binary}
	cfg.Config.User = spec.User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = imageEnv
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: epoch})
}

// file is one entry of a layer; a nil data with a directory mode is a directory.
type file struct {
	path     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// BaseFiles are the files of gcr.io/distroless/static:nonroot that a static Go binary
// may use: users and groups (nonroot is 65532), name service order, CA roots for HTTPS
// (to Tencent's API), a temporary directory and nonroot's home.
func BaseFiles() ([]file, error) {
	roots, err := caBundle()
	if err != nil {
		return nil, err
	}
	return []file{
		{path: "/etc", mode: 0o755, dir: true},
		{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n")},
		{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "/etc/ssl", mode: 0o755, dir: true},
		{path: "/etc/ssl/certs", mode: 0o755, dir: true},
		{path: caBundlePath, mode: 0o644, data: roots},
		{path: "/home", mode: 0o755, dir: true},
		{path: "/home/nonroot", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{path: "/root", mode: 0o700, dir: true},
		{path: "/tmp", mode: 0o1777, dir: true},
	}, nil
}

func baseLayer() (v1.Layer, error) {
	files, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	return layer(files)
}

// caBundle is a PEM bundle of the Mozilla roots that Go's x509roots/fallback carries,
// without those that are trusted only under constraints a PEM file cannot express.
func caBundle() ([]byte, error) {
	var out bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(root.Certificate); err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}

// layer is a gzipped OCI layer of files, in path order, with fixed times.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	for _, f := range files {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(f.path, "/"),
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.dir {
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
