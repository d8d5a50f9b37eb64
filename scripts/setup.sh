#!/usr/bin/env bash
# Prepares this machine as a lakehouse controller and test bench. Idempotent: every
# step checks before it acts, so both README commands run it first at no cost.
#   1. the Docker engine (installed if missing, started if not running)
#   2. the Debian 12 systemd test host image (rebuilt only when its recipe changes), in the
#      background while
#   3. the project virtual environment is created from the pinned requirements.txt (and, for
#      an inventory, the artifact cache is filled in the background)
#   4. the Helm CLI, the test Kubernetes control plane and the real test node's kubelet,
#      kube-proxy and CoreDNS, built from pinned Go modules, with the node's Debian packages;
#      for the test suite also OpenTofu with its providers and Flux's controllers
#      (scripts/tofu/build.sh, scripts/flux/build.sh)
# Heavy state lives under $LAKEHOUSE_CACHE (default ~/.cache/lakehouse), never in the repo.
# SETUP_INVENTORY (set by `make up`, `verify`, `status`, `down`) prepares only what that
# inventory's hosts need: step 4 only when one of them is delivered by Helm. Unset (`make
# test`), everything; SETUP_KUBERNETES_IN_BACKGROUND (`make test`) runs step 4's builds in
# the background.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}"
mkdir -p "$cache"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
# Each step that had work to do appends "<step><TAB><seconds>" to $cache/setup-timings (read by
# scripts/benchmark_up.py); the Kubernetes tooling's build records also a run that only checked it.
timings="$cache/setup-timings"
timed() { local step="$1" start=$SECONDS; shift; "$@"; printf '%s\t%s\n' "$step" $((SECONDS - start)) >>"$timings"; }

apt_get_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
apt_install() {
  local need=()
  for pkg in "$@"; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    timed "debian packages: ${need[*]}" apt_get_install "${need[@]}"
  fi
}

base=()
command -v dockerd >/dev/null || base+=(docker.io)
command -v debootstrap >/dev/null || base+=(debootstrap)
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || base+=(golang-go)
apt_install "${base[@]}"

# 1. Docker engine.
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine"
  mkdir -p /var/log
  setsid nohup dockerd >/var/log/lakehouse-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/lakehouse-dockerd.log"; exit 1; }
fi

# 2. Test host image, tagged by its recipe: built in the background while the Python
#    environment is created (both mostly wait on downloads).
image="lakehouse/testhost:$(sha256sum images/testhost/recipe.sh | cut -c1-12)"
image_build=""
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "building the test host image $image in the background (debootstrap, about a minute; log $cache/testhost-build.log)"
  timed "test host image" images/testhost/recipe.sh "$image" >"$cache/testhost-build.log" 2>&1 &
  image_build=$!
fi

# 3. Python environment, keyed by the requirements hash so fresh clones reuse it.
req_hash="$(sha256sum requirements.txt | cut -c1-12)"
venv="$cache/venv-$req_hash"
if [ ! -f "$venv/.complete" ]; then
  log "creating the Python environment $venv"
  create_venv() {
    rm -rf "$venv" && python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r requirements.txt
    touch "$venv/.complete"   # only a finished install counts
  }
  timed "python environment" create_venv
fi
ln -sfn "$venv" .venv

# 3b. An inventory's setup (`make up`): the artifact cache is filled in the background, niced,
#     while the test host image is built and the converge begins; the converge's own fetch of
#     an artifact waits for the fill's (one lock per artifact). Skipped once a fill of this
#     artifact table has finished.
table_hash="$(sha256sum roles/lakehouse/defaults/main/artifacts.yml | cut -c1-12)"
filled="$cache/artifacts/.filled-$table_hash"
if [ -n "${SETUP_INVENTORY:-}" ] && [ ! -f "$filled" ] && ! pgrep -f "playbooks/artifacts[.]yml" >/dev/null; then
  mkdir -p "$cache/artifacts"
  log "filling the artifact cache in the background (log $cache/artifacts-fill.log)"
  setsid nohup nice bash -c 'scripts/fill_artifacts.sh "$1" && touch "$2"' _ \
    "$SETUP_INVENTORY" "$filled" >"$cache/artifacts-fill.log" 2>&1 </dev/null &
fi

if [ -n "$image_build" ] && ! wait "$image_build"; then
  log "the test host image did not build; see $cache/testhost-build.log"
  exit 1
fi
echo "$image" > "$cache/testhost-image"

# 4. Helm, the test control plane (kube-apiserver, controller-manager, scheduler, kine, kwok) and
#    the real node's kubelet, kube-proxy and CoreDNS: for the test suite, or an inventory with
#    a host delivered by Helm.
ready="venv $venv, Docker $(docker version -f '{{.Server.Version}}'), image $image"
if [ -n "${SETUP_INVENTORY:-}" ]; then
  deliveries="$(.venv/bin/python -m lakehouse_cli.inventory deliveries "$SETUP_INVENTORY")"
  if ! grep -qx helm <<<"$deliveries"; then
    log "ready: $ready (no Kubernetes tooling: no host of $SETUP_INVENTORY is delivered by Helm)"
    exit 0
  fi
fi
# The real test node (tests/node.py): containerd and runc come with docker.io; CNI plugins in
# /usr/lib/cni; a static busybox is the pause image and the test images; kube-proxy drives nft.
# (busybox-static, not busybox: the image has no libc to link against.)
apt_install containernetworking-plugins busybox-static nftables iptables
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
tooling="$(scripts/controlplane/build.sh --print-env | sed -n 's/^BIN_DIR=//p')"
if [ -n "${SETUP_KUBERNETES_IN_BACKGROUND:-}" ]; then
  # `make test`: the Go builds run one at a time, niced, while the tiers that need none of them run;
  # a tier that needs one waits for its exit status (tests/controlplane.py). On a fresh machine:
  # OpenTofu and its providers about 4 min, the Kubernetes tooling about 18, Flux's controllers
  # (for the real node's GitOps test, the last tier) about 8.
  builds=(tofu controlplane flux)
  if pgrep -f 'scripts/(tofu|controlplane|flux)/build[.]sh' >/dev/null; then
    log "ready: $ready; the Go builds are still running (logs $cache/{tofu,controlplane,flux}-build.log)"
    exit 0
  fi
  for name in "${builds[@]}"; do rm -f "$cache/$name-build.rc"; : >"$cache/$name-build.log"; done
  setsid nohup bash -c 'cache="$1"; shift
    for name in "$@"; do scripts/$name/build.sh >"$cache/$name-build.log" 2>&1; echo $? >"$cache/$name-build.rc"; done' \
    _ "$cache" "${builds[@]}" </dev/null >/dev/null 2>&1 &
  log "ready: $ready; building ${builds[*]} in the background (logs $cache/<name>-build.log)"
  exit 0
fi
rm -f "$cache"/{tofu,controlplane,flux}-build.{log,rc}  # no background build to wait for
timed "kubernetes tooling" scripts/controlplane/build.sh
log "ready: $ready, Kubernetes tooling $tooling"
