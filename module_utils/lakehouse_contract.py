"""Contract schemas: the one shape every layer's contract has, checked where it is written and read.

The schemas are roles/lakehouse/files/contracts/<layer>.schema.json (JSON Schema 2020-12), the
common part in common.schema.json. The publishing role checks a contract before it is set as a
fact or written (the lakehouse_checked_contract filter); the lakehouse_contract lookup and
lakehouse_cli check what they read. This module is their one implementation: it runs on the
controller only and imports nothing from Ansible, so plugins and the CLI both load it.

Beyond the schema: the contract is the layer it is read for, `url` is the primary endpoint's, and
each endpoint's URL has the endpoint's scheme, host and port.

Problems are reported as "<field>: <reason>" and never repeat the value of a credential field.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "roles" / "lakehouse" / "files" / "contracts"
DEFAULT_PORTS = {"https": 443, "http": 80}
# Fields whose values are never echoed in a problem, even when they hold no reference.
SECRET_FIELDS = {"secret_ref", "user_ref"}
UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")


class ContractError(ValueError):
    """A contract that does not match its layer's schema: `field` (dotted, with [i]) and why."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


@functools.cache
def _schemas() -> tuple[dict[str, dict], Registry]:
    schemas, resources = {}, []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
        schemas[path.name.removesuffix(".schema.json")] = schema
    schemas.pop("common", None)
    return schemas, Registry().with_resources(resources)


def layers() -> list[str]:
    """The layers that have a schema."""
    return sorted(_schemas()[0])


@functools.cache
def _validator(layer: str) -> Draft202012Validator:
    schemas, registry = _schemas()
    return Draft202012Validator(schemas[layer], registry=registry)


def plain(value):
    """The contract as plain JSON types (Ansible hands over its own str/dict/list subclasses)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _field(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(contract)"


def _shown(path, value) -> str:
    """`value` for a message, unless it sits in a credential field or is not a short scalar."""
    if path and str(path[-1]) in SECRET_FIELDS:
        return ""
    if isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= 120):
        return f" (got {value!r})"
    return ""


def _describe(error) -> ContractError:
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    described = schema.get("description")
    kind = error.validator
    if kind == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return ContractError(_field([*path, *missing[:1]]), "is required")
    if kind in ("additionalProperties", "unevaluatedProperties"):
        match = UNEXPECTED.search(error.message)
        names = re.findall(r"'([^']*)'", match.group(1)) if match else []
        return ContractError(_field([*path, *names[:1]]), "is not a field of this contract")
    if kind is None:  # a `false` schema: a field another type or setting owns
        return ContractError(_field(path), "is not allowed here")
    if kind == "const":
        return ContractError(_field(path), f"must be {error.validator_value!r}{_shown(path, error.instance)}")
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        return ContractError(_field(path), f"must be one of {choices}{_shown(path, error.instance)}")
    if kind == "type":
        return ContractError(_field(path), f"must be of type {error.validator_value}")
    if kind == "not":
        reason = error.validator_value.get("description") or described
        return ContractError(_field(path), reason or "is not allowed")
    if described:
        return ContractError(_field(path), f"must be {described}{_shown(path, error.instance)}")
    return ContractError(_field(path), f"is invalid ({kind})")


def _consistency(contract: dict) -> ContractError | None:
    endpoints = contract["endpoints"]
    names = [endpoint["name"] for endpoint in endpoints]
    for index, endpoint in enumerate(endpoints):
        if names.index(endpoint["name"]) != index:
            return ContractError(f"endpoints[{index}].name", f"{endpoint['name']!r} names an earlier endpoint too")
        url = urlsplit(endpoint["url"])
        port = url.port or DEFAULT_PORTS.get(url.scheme)
        for part, found, expected in (
            ("scheme", url.scheme, endpoint["scheme"]),
            ("host", (url.hostname or "").lower(), endpoint["host"].lower()),
            ("port", port, endpoint["port"]),
        ):
            if found != expected:
                return ContractError(f"endpoints[{index}].url", f"has {part} {found!r}, the endpoint says {expected!r}")
    if contract["url"] != endpoints[0]["url"]:
        return ContractError("url", "must be endpoints[0].url, the primary endpoint's")
    return None


def endpoint(url: str, name: str) -> dict:
    """The endpoint `name` at `url`: {name, url, scheme, host, port}, the port the scheme's default if unsaid."""
    parts = urlsplit(str(url))
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    return {"name": str(name), "url": str(url), "scheme": parts.scheme, "host": parts.hostname or "", "port": port}


def credentials(users, secret_prefix: str, kind: str) -> dict:
    """{user: credential} for application users whose secrets are <secret_prefix><user>."""
    return {str(user): {"user": str(user), "secret_ref": f"{secret_prefix}{user}", "kind": str(kind)} for user in users}


def problem(contract, layer: str) -> ContractError | None:
    """What is wrong with `contract` as the `layer` contract (the first problem found), or None."""
    if layer not in _schemas()[0]:
        return ContractError("service", f"no contract schema for the layer {layer!r} (known: {', '.join(layers())})")
    data = plain(contract)
    if not isinstance(data, dict):
        return ContractError("(contract)", "must be an object")
    # The version says which schemas apply, so it is checked before any other field.
    if "schema_version" not in data:
        return ContractError("schema_version", "is required")
    if data["schema_version"] != SCHEMA_VERSION or isinstance(data["schema_version"], bool):
        return ContractError("schema_version", f"must be {SCHEMA_VERSION}{_shown([], data['schema_version'])}")
    if "service" in data and data["service"] != layer:
        return ContractError("service", f"is {data['service']!r}, expected {layer!r}")
    error = best_match(_validator(layer).iter_errors(data))
    if error is not None:
        return _describe(error)
    return _consistency(data)


def check(contract, layer: str) -> None:
    """Raise ContractError when `contract` is not a valid `layer` contract."""
    if (found := problem(contract, layer)) is not None:
        raise found


def metrics_targets(contract: Mapping) -> list[dict]:
    """Every endpoint a scraper reads for `contract`, one per `metrics` entry and, for a query
    contract, one per worker at the coordinator's port and path (workers publish no metrics of
    their own): [{metric (its index), component, scheme, address (host:port), path, url}]."""
    targets = []
    for index, metric in enumerate(contract.get("metrics") or []):
        parts = urlsplit(metric["url"])
        address, path = f"{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}", parts.path or "/metrics"
        hosts = [(metric["component"], address)]
        if contract.get("service") == "query":
            port = address.rsplit(":", 1)[1]
            hosts += [("worker", f"{worker}:{port}") for worker in contract.get("workers") or []]
        targets += [
            {
                "metric": index,
                "component": component,
                "scheme": parts.scheme,
                "address": host,
                "path": path,
                "url": f"{parts.scheme}://{host}{path}",
            }
            for component, host in hosts
        ]
    return targets
