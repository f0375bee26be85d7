#!/usr/bin/env bash
# Builds the control-plane binaries that envtest and the local cluster use (etcd,
# kube-apiserver and, when asked, kube-controller-manager and kube-scheduler) from the Go
# module proxy, through the wrapper module in hack/k8s. Nothing is downloaded as a binary.
# Usage: hack/envtest.sh OUT_DIR [component ...]; does nothing for components present.
# Components: etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok.
set -euo pipefail

out=${1:?usage: envtest.sh OUT_DIR [etcd kube-apiserver kube-controller-manager kube-scheduler]}
shift
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver)

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

for c in "${components[@]}"; do
  [ -x "$out/$c" ] && continue
  module=k8s
  case "$c" in
    etcd) pkg=./etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) pkg=k8s.io/kubernetes/cmd/$c ;;
    kwok) pkg=sigs.k8s.io/kwok/cmd/kwok; module=kwok ;;
    *) echo "envtest.sh: unknown component $c" >&2; exit 2 ;;
  esac
  echo "building $c into $out (the first build of a Kubernetes component takes several minutes)" >&2
  start=$(date +%s)
  (cd "$here/$module" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/$c.tmp" "$pkg")
  mv "$out/$c.tmp" "$out/$c"
  echo "built $c in $(( $(date +%s) - start ))s" >&2
done
