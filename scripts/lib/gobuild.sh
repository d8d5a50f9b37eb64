# Shared by scripts/*/build.sh (sourced): build Go programs from the Go module proxy's sources,
# one at a time and at low priority (a shared 2-core machine), each moved into place only when
# finished so an interrupted build never leaves a program that looks done.
# The caller sets `build_tag` (its log prefix).

[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
# One toolchain, so a build is the same bytes on every machine: the providers' hashes recorded in
# terraform/*/.terraform.lock.hcl hold (the go command fetches this version if it has another).
export GOTOOLCHAIN=go1.26.8
command -v go >/dev/null || { echo "${build_tag:-build}: Go is not installed" >&2; exit 1; }

log() { printf '\033[1m[%s]\033[0m %s\n' "$build_tag" "$*" >&2; }
gogo() { nice -n 10 go "$@"; }

# module_dir MODULE@VERSION: the module's source in the module cache (read-only).
module_dir() { gogo mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# writable_copy MODULE@VERSION: a writable copy of the module's source, for go.mod edits.
writable_copy() {
  local copy
  copy="$(mktemp -d)"
  cp -r "$(module_dir "$1")/." "$copy" && chmod -R u+w "$copy"
  echo "$copy"
}

# build TARGET DIR PACKAGE LDFLAGS: builds PACKAGE of the module source in DIR into TARGET
# unless TARGET exists. The source builds as its own main module, with its own go.sum.
build() {
  local target="$1" dir="$2" package="$3" ldflags="$4" start=$SECONDS
  if [ -x "$target" ]; then log "$(basename "$target"): present, skipped"; return; fi
  log "$(basename "$target"): building"
  mkdir -p "$(dirname "$target")"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod gogo build -trimpath -ldflags "-s -w $ldflags" -o "$target.tmp" "$package")
  mv "$target.tmp" "$target"
  log "$(basename "$target"): built in $((SECONDS - start))s"
}
