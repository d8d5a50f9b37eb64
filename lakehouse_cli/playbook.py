"""Run one of the project's playbooks through ansible-runner, exactly as plain ansible-playbook would.

The command line is the one a user would type in the repository (same cwd, so the same
ansible.cfg); ansible-runner only adds its event callback. Its private data directory is a fresh
0700 temporary directory, removed afterwards: runner keeps the command and environment there.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ansible_runner

from lakehouse_cli import REPO, LakehouseError
from lakehouse_cli.env import ansible_env, mask_extra_var
from lakehouse_cli.progress import Failure, Progress


@dataclass
class Invocation:
    playbook: str  # relative to the repository, e.g. playbooks/site.yml
    inventory: str
    limit: str | None = None
    extra_vars: tuple[str, ...] = ()
    check: bool = False
    diff: bool = False
    verbosity: int = 0

    def arguments(self, mask: bool = False) -> list[str]:
        args = ["-i", self.inventory]
        if self.limit:
            args += ["--limit", self.limit]
        for value in self.extra_vars:
            args += ["-e", mask_extra_var(value) if mask else value]
        if self.check:
            args.append("--check")
        if self.diff:
            args.append("--diff")
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        return args

    def command_line(self) -> str:
        """The equivalent plain command (run in the repository), secrets masked."""
        inventory = Path(self.inventory)
        shown = str(inventory.relative_to(REPO)) if inventory.is_relative_to(REPO) else self.inventory
        args = self.arguments(mask=True)
        args[1] = shown
        return shlex.join(["ansible-playbook", *args, self.playbook])


@dataclass
class Outcome:
    status: str  # successful | failed | canceled | timeout
    rc: int
    failure: Failure | None
    errors: list[str]

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def run(invocation: Invocation, progress: Progress) -> Outcome:
    interrupted = False

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True

    private = Path(tempfile.mkdtemp(prefix="lakehouse-runner-"))
    previous = signal.signal(signal.SIGINT, on_sigint)
    progress.start(Path(invocation.playbook).name)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(REPO),
            playbook=invocation.playbook,
            cmdline=shlex.join(invocation.arguments()),
            envvars=ansible_env(color=progress.out.isatty()),
            event_handler=progress,
            cancel_callback=lambda: interrupted,
            quiet=True,
            suppress_env_files=True,
            settings={"suppress_output_file": True},
        )
        status, rc = runner.status, runner.rc
    finally:
        signal.signal(signal.SIGINT, previous)
        shutil.rmtree(private, ignore_errors=True)
    progress.finish(status)
    return Outcome(status, rc if rc is not None else 1, progress.failure, progress.errors)


def failure_reason(invocation: Invocation, outcome: Outcome) -> str:
    """One line saying why a playbook run failed."""
    name = invocation.playbook
    if outcome.status == "canceled":
        return f"{name} interrupted"
    if outcome.status == "timeout":
        return f"{name} timed out"
    failure = outcome.failure
    if failure and failure.unreachable:
        detail = f": {failure.message}" if failure.message else ""
        return f'host {failure.host} unreachable in task "{failure.task}" of {name}{detail}'
    if failure:
        detail = f": {failure.message}" if failure.message else ""
        return f'task "{failure.task}" failed on {failure.host} in {name}{detail}'
    if outcome.rc == 127:
        return "ansible-playbook not found (is the project environment .venv complete?)"
    if outcome.errors:
        return f"{name}: {outcome.errors[0]}"
    return f"{name} failed (ansible-playbook exit code {outcome.rc})"


def run_or_raise(invocation: Invocation, progress: Progress) -> None:
    progress.out.write(f"» {invocation.command_line()}\n")
    progress.out.flush()
    outcome = run(invocation, progress)
    if not outcome.ok:
        raise LakehouseError(failure_reason(invocation, outcome), code=130 if outcome.status == "canceled" else 1)
