"""The orchestrator's API, as the orchestrator contract publishes it: a job of the job specs run for
one date, waited for until it finished. Airflow: a DAG run with that logical date through the REST
API (a bearer token from /auth/token). Dagster: a run of the job for that date's partition through
the GraphQL API (basic authentication at its proxy). Every request is bounded in time, every wait
in time and count."""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from lakehouse_cli import LakehouseError, probe
from lakehouse_cli.contracts import Contract

REQUEST_SECONDS = 30
POLL_SECONDS = 3
# The run states that end a run, and the ones of them that mean success.
AIRFLOW_DONE = {"success", "failed"}
DAGSTER_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
# Dagster's repository name for a code location of one Definitions object.
DAGSTER_REPOSITORY = "__repository__"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on RunNotFoundError { message } }
}"""


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer
    body: dict | None
    detail: str = ""


def call(
    url: str,
    contract: Contract,
    body: Mapping | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
) -> Answer:
    """One JSON request to the orchestrator, trusting only the contract's CA."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (the contract's https URL)
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", "Accept": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_SECONDS, context=probe.context(contract.ca)) as reply:  # noqa: S310
            return Answer(reply.status, json.loads(reply.read() or b"null"))
    except urllib.error.HTTPError as err:
        text = err.read(2000).decode("utf-8", "replace")
        return Answer(err.code, None, f"{err.reason}: {' '.join(text.split())[:300]}")
    except (urllib.error.URLError, OSError, ValueError) as err:
        return Answer(None, None, str(getattr(err, "reason", err)))


def airflow_token(contract: Contract, user: str, password: str) -> Answer:
    """POST /auth/token: a bearer token for the user, or the refusal."""
    return call(f"{contract.url}/auth/token", contract, {"username": user, "password": password})


def _airflow_headers(contract: Contract, user: str, password: str) -> dict[str, str]:
    answer = airflow_token(contract, user, password)
    if answer.status not in (200, 201) or not answer.body or "access_token" not in answer.body:
        raise LakehouseError(f"Airflow refused a token to {user}: {answer.status} {answer.detail}")
    return {"Authorization": f"Bearer {answer.body['access_token']}"}


def access(contract: Contract, user: str | None, password: str | None) -> tuple[str, Answer]:
    """(URL, answer) of one API request anonymously (user None) or with a credential: Airflow's
    DAG list, or a token for the user; Dagster's GraphQL API (basic authentication at its front)."""
    if contract.data["implementation"] == "airflow":
        if user is None:
            url = f"{contract.require('api')}/dags"
            return url, call(url, contract)
        return f"{contract.url}/auth/token", airflow_token(contract, user, password or "")
    headers = probe.basic_auth(user, password or "") if user is not None else {}
    return contract.require("api"), call(contract.require("api"), contract, {"query": "{ version }"}, headers)


def graphql(contract: Contract, query: str, variables: Mapping, headers: Mapping[str, str]) -> dict:
    answer = call(contract.require("api"), contract, {"query": query, "variables": dict(variables)}, headers)
    if answer.status != 200 or not answer.body or answer.body.get("errors"):
        errors = (answer.body or {}).get("errors") or answer.detail
        raise LakehouseError(f"Dagster's GraphQL API answered {answer.status}: {errors}")
    return answer.body["data"]


def run_job(contract: Contract, job: str, day: datetime.date, user: str, password: str, timeout: float) -> str:
    """Run `job` for `day` through the orchestrator and wait, bounded, until it finished; returns
    its final state and fails (LakehouseError) unless it succeeded."""
    if contract.data["implementation"] == "airflow":
        return _airflow_run(contract, job, day, _airflow_headers(contract, user, password), timeout)
    return _dagster_run(contract, job, day, probe.basic_auth(user, password), timeout)


def _wait(describe, done: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    for _ in range(int(timeout / POLL_SECONDS) + 1):
        state = describe()
        if state in done or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    return state


def _airflow_run(contract: Contract, job: str, day: datetime.date, headers: dict, timeout: float) -> str:
    """A DAG run of the day's interval. Airflow keeps one run per logical date: when the day has one
    already (an earlier trigger, or the scheduler's), that run is cleared, which runs it again."""
    api = contract.require("api")
    start = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    stamp = {
        "logical_date": _iso(start),
        "data_interval_start": _iso(start),
        "data_interval_end": _iso(start + datetime.timedelta(days=1)),
    }
    created = call(
        f"{api}/dags/{job}/dagRuns", contract, {"dag_run_id": f"lakehouse__{day.isoformat()}", **stamp}, headers
    )
    if created.status == 409:
        window = f"logical_date_gte={stamp['logical_date']}&logical_date_lte={stamp['logical_date']}"
        found = call(f"{api}/dags/{job}/dagRuns?{window}", contract, headers=headers)
        runs = (found.body or {}).get("dag_runs") or []
        if not runs:
            raise LakehouseError(
                f"Airflow has a run of {job} for {day} but did not list it: {found.status} {found.detail}"
            )
        run_id = runs[0]["dag_run_id"]
        cleared = call(f"{api}/dags/{job}/dagRuns/{run_id}/clear", contract, {"dry_run": False}, headers)
        if cleared.status != 200:
            raise LakehouseError(f"Airflow did not run {job} for {day} again: {cleared.status} {cleared.detail}")
    elif created.status in (200, 201):
        run_id = created.body["dag_run_id"]
    else:
        raise LakehouseError(f"Airflow did not start {job} for {day}: {created.status} {created.detail}")

    def describe() -> str:
        answer = call(f"{api}/dags/{job}/dagRuns/{run_id}", contract, headers=headers)
        return (answer.body or {}).get("state") or f"unknown ({answer.status} {answer.detail})"

    state = _wait(describe, AIRFLOW_DONE, timeout)
    if state != "success":
        raise LakehouseError(f"Airflow's run {run_id} of {job} ended {state}")
    return state


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _dagster_run(contract: Contract, job: str, day: datetime.date, headers: dict, timeout: float) -> str:
    params = {
        "selector": {
            "repositoryLocationName": contract.require("code_location"),
            "repositoryName": DAGSTER_REPOSITORY,
            "jobName": job,
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day.isoformat()}]},
    }
    launched = graphql(contract, LAUNCH, {"params": params}, headers)["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise LakehouseError(f"Dagster did not start {job} for {day}: {launched}")
    run_id = launched["run"]["runId"]

    def describe() -> str:
        found = graphql(contract, RUN, {"runId": run_id}, headers)["runOrError"]
        return found.get("status") or found.get("message") or found["__typename"]

    state = _wait(describe, DAGSTER_DONE, timeout)
    if state != "SUCCESS":
        raise LakehouseError(f"Dagster's run {run_id} of {job} ended {state}")
    return state
