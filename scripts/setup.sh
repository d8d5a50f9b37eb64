#!/usr/bin/env bash
# Prepares this machine as a lakehouse controller and test bench. Idempotent: every
# step checks before it acts, so both README commands run it first at no cost.
#   1. the project virtual environment, from the pinned requirements.txt
#   2. the Docker engine (installed if missing, started if not running)
#   3. the Debian 12 systemd test host image (rebuilt only when its recipe changes)
#   4. the Helm CLI, the test Kubernetes control plane and the real test node's kubelet,
#      kube-proxy and CoreDNS, built from pinned Go modules
# Heavy state lives under $LAKEHOUSE_CACHE (default ~/.cache/lakehouse), never in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}"
mkdir -p "$cache"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || need_apt+=(golang-go)
# The real test node (tests/node.py): containerd and runc come with docker.io; CNI plugins in
# /usr/lib/cni; a static busybox is the pause image and the test images; kube-proxy drives nft.
# (busybox-static, not busybox: the image has no libc to link against.)
for pkg in containernetworking-plugins busybox-static nftables iptables; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The registry the image push is tested against: Debian's docker-registry, unpacked into the
# cache (never installed as a service).
registry_dir="$cache/tools/docker-registry"
if [ ! -x "$registry_dir/usr/bin/docker-registry" ]; then
  log "unpacking Debian's docker-registry into $registry_dir"
  debs="$(mktemp -d)"
  (cd "$debs" && { apt-get download -qq docker-registry 2>/dev/null || { apt-get update -qq && apt-get download -qq docker-registry; }; })
  mkdir -p "$registry_dir" && dpkg-deb -x "$debs"/docker-registry_*.deb "$registry_dir"
  rm -rf "$debs"
fi

# 1. Python environment, keyed by the requirements hash so fresh clones reuse it.
req_hash="$(sha256sum requirements.txt | cut -c1-12)"
venv="$cache/venv-$req_hash"
if [ ! -f "$venv/.complete" ]; then
  log "creating the Python environment $venv"
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r requirements.txt
  touch "$venv/.complete"   # only a finished install counts
fi
ln -sfn "$venv" .venv

# 2. Docker engine.
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine"
  mkdir -p /var/log
  setsid nohup dockerd >/var/log/lakehouse-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/lakehouse-dockerd.log"; exit 1; }
fi

# 3. Test host image, tagged by its recipe.
image="lakehouse/testhost:$(sha256sum images/testhost/recipe.sh | cut -c1-12)"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "building the test host image $image (debootstrap, about a minute)"
  images/testhost/recipe.sh "$image"
fi
echo "$image" > "$cache/testhost-image"

# 4. Helm, the test control plane (kube-apiserver, controller-manager, scheduler, kine, kwok) and
#    the real node's kubelet, kube-proxy and CoreDNS.
scripts/controlplane/build.sh
log "ready: venv $venv, Docker $(docker version -f '{{.Server.Version}}'), image $image"
