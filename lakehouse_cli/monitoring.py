"""What Prometheus (the observability contract) says of every published metrics endpoint.

The expected targets are the contracts' own (module_utils/lakehouse_contract.py's metrics_targets,
which the prometheus role's scrape files are generated from), so a target Prometheus lacks is seen
as missing, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from lakehouse_cli import LakehouseError, probe
from lakehouse_cli.contracts import Contract
from module_utils import lakehouse_contract


def expected(contracts: Iterable[Contract]) -> dict[str, tuple[Contract, dict]]:
    """Every metrics endpoint of `contracts`, by URL: (its contract, its target)."""
    return {
        target["url"]: (contract, target)
        for contract in contracts
        for target in lakehouse_contract.metrics_targets(contract.data)
    }


def active_targets(prometheus: Contract, user: str, password: str) -> dict[str, dict]:
    """Prometheus's active targets by scrape URL, read once through its API."""
    headers = probe.basic_auth(user, password)
    reply, answer = probe.get_json(f"{prometheus.url}/api/v1/targets?state=active", prometheus.ca, headers)
    if answer is None:
        raise LakehouseError(f"Prometheus's targets API answered {reply.status or ''} {reply.detail}".strip())
    return {target["scrapeUrl"]: target for target in answer["data"]["activeTargets"]}


def describe(contract: Contract, target: dict, active: dict[str, dict]) -> tuple[str, str]:
    """(state, what Prometheus says) of one expected target. The state is up, down, pending (a
    target Prometheus was just given and has not scraped yet) or missing."""
    where = f"{contract.service} {target['component']} of {contract.host}"
    found = active.get(target["url"])
    if found is None:
        return "missing", f"{where}: not a target of Prometheus"
    if found["health"] == "up":
        return "up", f"{where}: up, scraped in {found['lastScrapeDuration'] * 1000:.0f} ms"
    if found["health"] == "down":
        return "down", f"{where}: down ({found.get('lastError') or 'no error given'})"
    return "pending", f"{where}: not scraped yet"
