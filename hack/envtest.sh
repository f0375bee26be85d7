#!/usr/bin/env bash
# Builds the binaries that envtest and the local clusters use from the Go module proxy,
# through the wrapper modules under hack/. Nothing is downloaded as a binary.
# Usage: hack/envtest.sh OUT_DIR [component ...]; does nothing for components present.
# Components:
#   control plane   etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok
#   real node       kubelet kube-proxy containerd containerd-shim-runc-v2 ctr
#   CNI plugins     bridge host-local loopback portmap (into OUT_DIR/cni)
set -euo pipefail

out=${1:?usage: envtest.sh OUT_DIR [component ...]}
shift
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver)

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# module_version MODULE_DIR MODULE_PATH prints the version a wrapper module requires.
module_version() {
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

for c in "${components[@]}"; do
  dest=$out/$c
  module=k8s
  tags=
  ldflags='-s -w'
  case "$c" in
    etcd) pkg=./etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy)
      pkg=k8s.io/kubernetes/cmd/$c
      # Without the version the components report v0.0.0-master (the kubelet on its Node).
      v=$(module_version k8s k8s.io/kubernetes); minor=${v#v*.}; minor=${minor%%.*}
      ldflags+=" -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
      ;;
    kwok) pkg=sigs.k8s.io/kwok/cmd/kwok; module=kwok ;;
    containerd|containerd-shim-runc-v2|ctr)
      module=containerd
      pkg=github.com/containerd/containerd/v2/cmd/$c
      # No cgo: the snapshotters that need C libraries are left out (overlayfs is kept).
      tags='no_btrfs no_devmapper no_zfs'
      ldflags+=" -X github.com/containerd/containerd/v2/version.Version=$(module_version containerd github.com/containerd/containerd/v2)"
      ;;
    bridge|loopback) module=cni; pkg=github.com/containernetworking/plugins/plugins/main/$c; dest=$out/cni/$c ;;
    host-local) module=cni; pkg=github.com/containernetworking/plugins/plugins/ipam/$c; dest=$out/cni/$c ;;
    portmap) module=cni; pkg=github.com/containernetworking/plugins/plugins/meta/$c; dest=$out/cni/$c ;;
    *) echo "envtest.sh: unknown component $c" >&2; exit 2 ;;
  esac
  [ -x "$dest" ] && continue
  mkdir -p "$(dirname "$dest")"
  echo "building $c into $(dirname "$dest") (the first build of a Kubernetes component takes several minutes)" >&2
  start=$(date +%s)
  (cd "$here/$module" && CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dest.tmp" "$pkg")
  mv "$dest.tmp" "$dest"
  echo "built $c in $(( $(date +%s) - start ))s" >&2
done
