#!/usr/bin/env bash
# Builds the Flux controllers that reconcile a rendered GitOps tree (lakehouse render) in the
# tests, from the Go module proxy (no release downloads or images are reachable here), and keeps
# their CustomResourceDefinitions beside them:
#   <root>/bin/{source-controller,kustomize-controller,helm-controller}
#   <root>/crds/*.yaml
# <root> is ${LAKEHOUSE_CACHE:-~/.cache/lakehouse}/flux/<version-key>; the key holds every pin.
# Each controller's module replaces its api module with ./api, which a module-proxy build cannot
# follow: the replace is dropped, so the api module of the same release comes from the proxy.
# Usage: build.sh             build what is missing
#        build.sh --print-env  print the pins and BIN_DIR, CRD_DIR as KEY=VALUE lines
set -euo pipefail

FLUX_VERSION=v2.9.5  # the distribution these controller releases belong to
SOURCE_CONTROLLER=v1.9.5
KUSTOMIZE_CONTROLLER=v1.9.5
HELM_CONTROLLER=v1.6.4
# source-controller v1.9.5 asks for fluxcd/pkg/artifact v0.18.3, which the proxy here refuses.
ARTIFACT_PKG=v0.18.0

key="flux-${FLUX_VERSION}_source-${SOURCE_CONTROLLER}_kustomize-${KUSTOMIZE_CONTROLLER}_helm-${HELM_CONTROLLER}"
root="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}/flux/$key"

if [ "${1:-}" = "--print-env" ]; then
  printf '%s\n' "FLUX_VERSION=$FLUX_VERSION" "BIN_DIR=$root/bin" "CRD_DIR=$root/crds"
  exit 0
fi

build_tag=flux
# shellcheck source=../lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"

total_start=$SECONDS
for controller in source-controller="$SOURCE_CONTROLLER" kustomize-controller="$KUSTOMIZE_CONTROLLER" \
  helm-controller="$HELM_CONTROLLER"; do
  name="${controller%%=*}" version="${controller#*=}" module="github.com/fluxcd/${controller%%=*}"
  if [ -x "$root/bin/$name" ] && [ -d "$root/crds/$name" ]; then log "$name: present, skipped"; continue; fi
  src="$(writable_copy "$module@$version")"
  (cd "$src" && go mod edit -dropreplace "$module/api")
  if [ "$name" = source-controller ]; then
    (cd "$src" && go mod edit -require "github.com/fluxcd/pkg/artifact@$ARTIFACT_PKG")
  fi
  build "$root/bin/$name" "$src" . ""
  mkdir -p "$root/crds/$name.tmp"
  cp "$src"/config/crd/bases/*.yaml "$root/crds/$name.tmp/"
  rm -rf "$root/crds/$name" && mv "$root/crds/$name.tmp" "$root/crds/$name"
  rm -rf "$src"
done
log "Flux controllers in $root ($((SECONDS - total_start))s)"
