#!/usr/bin/env bash
# Builds the binaries of the test Kubernetes control plane (tests/controlplane.py) and of the
# real test node (tests/node.py) from the Go module proxy: no GitHub release downloads or
# container images are reachable here.
#   kube-apiserver, kube-controller-manager, kube-scheduler,
#   kubelet, kube-proxy                                      <- wrapper/ (k8s.io/kubernetes)
#   kine (etcd API on SQLite), kwok (fake nodes), helm,
#   coredns (cluster DNS of the real node)                   <- go install <module>@<pin>
# Output: ${LAKEHOUSE_CACHE:-~/.cache/lakehouse}/controlplane/<version-key>/bin/ plus
# kwok-stages.yaml beside it. The key holds every pin, so changing one builds into a fresh
# directory; whatever is already there is skipped.
# Usage: build.sh            build what is missing
#        build.sh --print-env print the pins and BIN_DIR as KEY=VALUE lines, build nothing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

HELM_VERSION=v3.19.0
KINE_VERSION=v0.17.5
KWOK_VERSION=v0.8.0
COREDNS_VERSION=v1.12.4
# The Kubernetes pin lives in wrapper/go.mod (with the matching v0.X.Y staging replaces).
K8S_VERSION="$(awk '{for (i = 1; i < NF; i++) if ($i == "k8s.io/kubernetes" && $(i+1) ~ /^v/) {print $(i+1); exit}}' "$here/wrapper/go.mod")"
[ -n "$K8S_VERSION" ] || { echo "build.sh: no k8s.io/kubernetes require in wrapper/go.mod" >&2; exit 1; }

key="k8s-${K8S_VERSION}_kine-${KINE_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_coredns-${COREDNS_VERSION}"
root="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}/controlplane/$key"
bin="$root/bin"

if [ "${1:-}" = "--print-env" ]; then
  printf '%s\n' "K8S_VERSION=$K8S_VERSION" "KINE_VERSION=$KINE_VERSION" "KWOK_VERSION=$KWOK_VERSION" \
    "HELM_VERSION=$HELM_VERSION" "COREDNS_VERSION=$COREDNS_VERSION" "BIN_DIR=$bin" "KWOK_STAGES=$root/kwok-stages.yaml"
  exit 0
fi

[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 1; }
mkdir -p "$bin"
log() { printf '\033[1m[controlplane]\033[0m %s\n' "$*" >&2; }
# Shared 2-core machine: build one binary at a time at low priority.
gogo() { nice -n 10 go "$@"; }

# build NAME COMMAND...: runs COMMAND (which writes $out/NAME) unless bin/NAME exists, then moves
# the result into place, so an interrupted build never leaves a binary that looks finished.
build() {
  local name="$1"; shift
  if [ -x "$bin/$name" ]; then log "$name: present, skipped"; return; fi
  out="$(mktemp -d)"
  local start=$SECONDS
  log "$name: building"
  "$@"
  mv "$out/$name" "$bin/$name"
  rm -rf "$out"
  log "$name: built in $((SECONDS - start))s"
}

total_start=$SECONDS
k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Without these the binaries report v0.0.0-master (the staging modules' placeholder).
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit="
done

k8s_build() { (cd "$here/wrapper" && CGO_ENABLED=0 gogo build -trimpath -ldflags "$k8s_ldflags" -o "$out/$1" "k8s.io/kubernetes/cmd/$1"); }
# go install pkg@version ignores the wrapper module and uses the tool's own go.mod.
go_install() { GOBIN="$out" gogo install -trimpath -ldflags "-s -w $2" "$1"; }

build helm go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# kine's SQLite driver is cgo (mattn/go-sqlite3); without cgo it builds a stub that refuses SQLite.
CGO_ENABLED=1 build kine go_install "github.com/k3s-io/kine@$KINE_VERSION" \
  "-X github.com/k3s-io/kine/pkg/version.Version=$KINE_VERSION"
CGO_ENABLED=0 build kwok go_install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
# The kwok binary has no built-in stages (only kwokctl embeds them): ship the "fast" node and pod
# stages of the pinned kwok release, taken from its module source.
if [ ! -s "$root/kwok-stages.yaml" ]; then
  kwok_src="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$kwok_src/kustomize/stage/$f"
  done > "$root/kwok-stages.yaml.tmp"
  mv "$root/kwok-stages.yaml.tmp" "$root/kwok-stages.yaml"
  log "kwok stages written to $root/kwok-stages.yaml"
fi
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  build "$cmd" k8s_build "$cmd"
done
CGO_ENABLED=0 build coredns go_install "github.com/coredns/coredns@$COREDNS_VERSION" \
  "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
log "all binaries in $bin ($((SECONDS - total_start))s)"
