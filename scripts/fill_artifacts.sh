#!/usr/bin/env bash
# Fills the controller's artifact cache (playbooks/artifacts.yml) with two runs side by side: the
# downloads (Maven Central, PyPI) and the Go builds, so the network and the CPU are busy at once
# and what a converge needs first is not held back by a compile. The builds print as they go,
# the downloads once they are done. Exits non-zero when either run fails.
#   scripts/fill_artifacts.sh [INVENTORY]
set -euo pipefail
cd "$(dirname "$0")/.."
inventory="${1:-inventories/sandbox}"
fill() { .venv/bin/ansible-playbook -i "$inventory" playbooks/artifacts.yml -e "{\"artifacts_sources\": $1}"; }

downloads_log="$(mktemp)"
trap 'rm -f "$downloads_log"' EXIT
fill '["url", "pip"]' >"$downloads_log" 2>&1 &
downloads=$!
builds_status=0
fill '["go"]' || builds_status=$?
downloads_status=0
wait "$downloads" || downloads_status=$?
cat "$downloads_log"
exit $((builds_status || downloads_status))
