#!/usr/bin/env bash
# Builds OpenTofu and the providers that the terraform/ modules pin, from the Go module proxy
# (the Terraform registry and GitHub downloads are not reachable here). The providers land in a
# filesystem mirror that tofu reads through the CLI configuration written beside it:
#   <root>/bin/tofu
#   <root>/plugins/registry.opentofu.org/<namespace>/<type>/<version>/linux_amd64/terraform-provider-<type>_v<version>
#   <root>/tofurc                (TF_CLI_CONFIG_FILE: the mirror, and nothing from the network)
# <root> is ${LAKEHOUSE_CACHE:-~/.cache/lakehouse}/tofu/<version-key>; the key holds every pin, so
# changing one builds into a fresh directory; whatever is already there is skipped.
# Usage: build.sh             build what is missing
#        build.sh --print-env  print the pins, BIN_DIR and TF_CLI_CONFIG_FILE as KEY=VALUE lines
set -euo pipefail

TOFU_VERSION=v1.10.10
# namespace/type=go-module@version: one line per provider the modules' required_providers name.
PROVIDERS=(
  "gavinbunney/kubectl=github.com/gavinbunney/terraform-provider-kubectl@v1.19.0"
  "terraform-provider-openstack/openstack=github.com/terraform-provider-openstack/terraform-provider-openstack/v3@v3.4.0"
)

key="tofu-${TOFU_VERSION}"
for p in "${PROVIDERS[@]}"; do key+="_${p%%=*}-${p##*@}"; done
key="${key//\//-}"
root="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}/tofu/$key"
bin="$root/bin"

if [ "${1:-}" = "--print-env" ]; then
  printf '%s\n' "TOFU_VERSION=$TOFU_VERSION" "BIN_DIR=$bin" "TF_CLI_CONFIG_FILE=$root/tofurc"
  exit 0
fi

build_tag=tofu
# shellcheck source=../lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"

total_start=$SECONDS
# `go install` refuses OpenTofu's replace directives: build it from its module source instead.
build "$bin/tofu" "$(module_dir "github.com/opentofu/opentofu@$TOFU_VERSION")" ./cmd/tofu \
  "-X github.com/opentofu/opentofu/version.dev=no"
for p in "${PROVIDERS[@]}"; do
  address="${p%%=*}" module="${p#*=}"
  version="${module##*@v}" type="${address##*/}"
  build "$root/plugins/registry.opentofu.org/$address/$version/linux_amd64/terraform-provider-${type}_v$version" \
    "$(module_dir "$module")" . "-X main.version=$version"
done

cat > "$root/tofurc.tmp" <<RC
# Written by scripts/tofu/build.sh: providers come from this mirror only.
provider_installation {
  filesystem_mirror {
    path    = "$root/plugins"
    include = ["registry.opentofu.org/*/*"]
  }
  direct {
    exclude = ["registry.opentofu.org/*/*"]
  }
}
RC
mv "$root/tofurc.tmp" "$root/tofurc"
log "tofu and ${#PROVIDERS[@]} providers in $root ($((SECONDS - total_start))s)"
