//go:build tools

// Package tools pins kwok, which simulates the nodes of the local demo and end-to-end
// cluster; hack/envtest.sh builds it. It has its own module because it follows an older
// Kubernetes release than hack/k8s.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
