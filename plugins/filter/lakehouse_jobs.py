"""Filters over the job specs (module_utils/lakehouse_jobs.py): load one, render them for an orchestrator."""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleFilterError

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils import lakehouse_jobs  # noqa: E402


def job_spec(path: str) -> dict:
    """One job spec file, checked, with its defaults applied."""
    try:
        return lakehouse_jobs.load_spec(path)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def job_files(specs: list[dict], orchestrator: str, context: dict) -> list[dict]:
    """The orchestrator's definitions of the jobs, as files of its config directory (jobs/...):
    one DAG file per spec for Airflow, one definitions module (a code location) for Dagster."""
    try:
        if orchestrator == "airflow":
            return [
                {
                    "path": f"jobs/{spec['name']}.py",
                    "content": lakehouse_jobs.render_airflow(spec, context),
                    "secret": False,
                }
                for spec in specs
            ]
        return [
            {"path": "jobs/definitions.py", "content": lakehouse_jobs.render_dagster(specs, context), "secret": False}
        ]
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def image_by_digest(built: dict) -> str:
    """The reference of a lakehouse_image result by digest (repository@sha256:...): in the registry
    it was pushed to, else as a runtime that loaded its archive names it."""
    image = built.get("pushed_reference") or built["image"]
    repository = image.split("@", 1)[0]
    repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else repository
    return f"{repository}@{built['digest']}"


class FilterModule:
    def filters(self):
        return {
            "lakehouse_job_spec": job_spec,
            "lakehouse_job_files": job_files,
            "lakehouse_image_by_digest": image_by_digest,
        }
