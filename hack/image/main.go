// Command image builds the operator's OCI image without Docker, from the same inputs as
// the Dockerfile: a static binary (CGO_ENABLED=0, -trimpath, -ldflags='-s -w') cross-compiled
// for each platform, on a distroless-like base (nonroot user 65532, CA roots), as an OCI
// index. It also builds the small images of the real-node end-to-end test.
//
//	image build -image manager -tag IMG -out FILE [-platforms linux/amd64,linux/arm64]
//	image push  -image manager -tag IMG [-platforms ...]
//
// build writes an OCI layout tarball that `ctr images import` accepts; push publishes to
// the registry of IMG with the default keychain (docker's config.json).
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "build" && args[0] != "push") {
		return fmt.Errorf("usage: image build|push -image NAME -tag REF [-out FILE] [-platforms LIST]")
	}
	verb := args[0]
	flags := flag.NewFlagSet(verb, flag.ContinueOnError)
	imageName := flags.String("image", "manager", "image to build: "+strings.Join(slices.Sorted(maps.Keys(Images)), ", "))
	tag := flags.String("tag", "", "image reference, e.g. ghcr.io/liveroom-io/liveroom-operator:v0.1.0")
	out := flags.String("out", "", "tarball to write (build)")
	platformList := flags.String("platforms", "linux/amd64,linux/arm64", "platforms of the index")
	root := flags.String("root", "../..", "repository root")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	spec, ok := Images[*imageName]
	if !ok {
		return fmt.Errorf("unknown image %q", *imageName)
	}
	if *tag == "" || (verb == "build" && *out == "") {
		return fmt.Errorf("%s needs -tag%s", verb, map[bool]string{true: " and -out"}[verb == "build"])
	}
	platforms, err := ParsePlatforms(*platformList)
	if err != nil {
		return err
	}
	rootDir, err := filepath.Abs(*root)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	index, err := BuildIndex(ctx, rootDir, spec, platforms)
	if err != nil {
		return err
	}
	digest, err := index.Digest()
	if err != nil {
		return err
	}
	if verb == "push" {
		if err := Push(ctx, index, *tag); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pushed %s@%s (%s) in %s\n", *tag, digest, *platformList, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := WriteArchive(index, *tag, *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "built %s (%s, %s) into %s in %s\n", *tag, digest, *platformList, *out, time.Since(start).Round(time.Millisecond))
	return nil
}
