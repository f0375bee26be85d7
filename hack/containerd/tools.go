//go:build tools

// Package tools pins containerd, its runc shim and ctr, which hack/envtest.sh builds for
// the real-node cluster.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
