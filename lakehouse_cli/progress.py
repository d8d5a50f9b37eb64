"""What the user sees while a playbook runs, fed by ansible-runner's event handler.

- compact (stdout is a TTY): one line, rewritten in place: playbook, play, task count, current
  task, hosts ok/changed/failed and the elapsed time;
- plain (no TTY, e.g. CI logs): one line per play and per task;
- verbose (-v): Ansible's own output (no_log results arrive censored from Ansible).

A task named "Report ..." (a debug message, such as what a restore filled) is shown in every mode:
its message follows the run's summary line.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TICK = 1.0  # seconds between two redraws of the compact line while a task runs


@dataclass
class Failure:
    task: str
    host: str
    message: str
    unreachable: bool = False


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure_message(res: dict) -> str:
    """The most telling message of a failed result; for a loop, that of the first failed item."""
    if not isinstance(res, dict):
        return ""
    if res.get("censored"):
        return "output hidden (no_log)"
    for item in res.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            found = _failure_message(item)
            if found:
                return found
    for key in ("msg", "message", "stderr", "reason"):
        if res.get(key):
            return str(res[key])
    if res.get("rc"):
        return f"exit code {res['rc']}"
    return ""


@dataclass
class Change:
    """A task that changed (in check mode: would change) something on a host."""

    host: str
    play: str
    task: str
    detail: str


def _change_detail(res: dict) -> str:
    """What a changed result changed, as briefly as it says: paths, loop items, or the diff's headers."""
    if res.get("censored"):
        return "hidden (no_log)"
    if res.get("changed_paths"):
        return ", ".join(res["changed_paths"])
    items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("changed")]
    if items:
        return ", ".join(str(r.get("_ansible_item_label", r.get("item", ""))) for r in items)
    diffs = res.get("diff") if isinstance(res.get("diff"), list) else [res.get("diff") or {}]
    headers = {d.get("after_header") or d.get("before_header") for d in diffs if isinstance(d, dict)}
    return ", ".join(sorted(str(h) for h in headers if h))


@dataclass
class Progress:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    mode: str = "compact"  # compact | plain | verbose
    playbook: str = ""
    play: str = ""
    task: str = ""
    tasks: int = 0
    hosts: dict[str, str] = field(default_factory=dict)  # host -> ok | changed | failed
    failure: Failure | None = None
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # "host: message" of the "Report ..." tasks
    errors: list[str] = field(default_factory=list)  # Ansible's own ERROR lines (parse errors...)
    started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ticker: threading.Thread | None = None
    _last: str = ""
    _explain: bool = False

    @classmethod
    def for_stream(cls, out: TextIO, verbose: bool) -> Progress:
        if verbose:
            return cls(out=out, mode="verbose")
        return cls(out=out, mode="compact" if out.isatty() else "plain")

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, playbook: str) -> None:
        self.playbook, self.play, self.task, self.tasks = playbook, "", "", 0
        self.hosts, self.failure, self.errors, self.changes, self.notes = {}, None, [], [], []
        self.started = time.monotonic()
        self._last = ""
        if self.mode == "compact":
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def finish(self, status: str) -> None:
        if self._ticker:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
        word = {"successful": "done", "failed": "FAILED", "canceled": "interrupted", "timeout": "timed out"}
        line = (
            f"{self.playbook}: {word.get(status, status)}, {self.tasks} tasks, {self._hosts_text()}, {self._elapsed()}"
        )
        with self._lock:
            if self.mode == "compact":
                self.out.write("\r\x1b[K")
            self.out.write(line + "\n")
            if self.mode != "verbose":  # Ansible's own output showed them
                self.out.writelines(f"  {note}\n" for note in self.notes)
            self.out.flush()

    # --- ansible-runner event handler ----------------------------------------------------

    def __call__(self, event: dict) -> bool:
        """Handle one event; False tells ansible-runner not to keep it on disk."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if self.mode == "verbose" and event.get("stdout"):
            with self._lock:
                self.out.write(event["stdout"].replace("\r\n", "\n") + "\n")
                self.out.flush()
        if kind == "playbook_on_play_start":
            self.play = data.get("play") or data.get("name") or ""
            self._plain(f"play: {self.play}")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.tasks += 1
            self.task = data.get("task") or data.get("name") or data.get("task_action") or ""
            self._plain(f"  task {self.tasks}: {self.task}")
        elif kind == "runner_on_ok":
            host = data.get("host", "")
            res = data.get("res") or {}
            changed = bool(res.get("changed"))
            self._mark(host, "changed" if changed else "ok")
            if changed:
                self.changes.append(Change(host, self.play, self.task, _one_line(_change_detail(res), limit=200)))
            if self.task.startswith("Report ") and isinstance(res.get("msg"), str):
                self.notes.append(f"{host}: {_one_line(res['msg'], limit=1000)}")
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self._failed(data, unreachable=False)
        elif kind == "runner_on_unreachable":
            self._failed(data, unreachable=True)
        elif kind == "verbose" and event.get("stdout"):
            self._error_lines(ANSI.sub("", event["stdout"]).splitlines())
        self._draw()
        return False

    def _error_lines(self, lines: list[str]) -> None:
        """Collect Ansible's error titles, each with the line that explains it (output comes a line per event)."""
        for line in lines:
            if line.startswith(("ERROR!", "[ERROR]")):
                self.errors.append(_one_line(line))
                self._explain = True
            elif self._explain:
                if line.strip() and not line.startswith(("Origin:", "<<<", "[")):
                    self.errors[-1] = _one_line(f"{self.errors[-1]} {line}")
                self._explain = False

    def _failed(self, data: dict, unreachable: bool) -> None:
        host = data.get("host", "")
        self._mark(host, "failed")
        # Long enough for a service's own last log lines, which the engine reports when it fails.
        message = _one_line(_failure_message(data.get("res") or {}), limit=1500)
        # The last failure is the one that stopped the run: an earlier one may have been rescued
        # (the engine's health gate fails the start, restores, then fails with the reason).
        self.failure = Failure(self.task or data.get("task", ""), host, message, unreachable)
        what = "UNREACHABLE" if unreachable else "FAILED"
        self._plain(f"  {what}: {host}: {message}")

    def _mark(self, host: str, state: str) -> None:
        rank = {"ok": 0, "changed": 1, "failed": 2}
        if rank[state] >= rank.get(self.hosts.get(host, "ok"), 0):
            self.hosts[host] = state

    # --- output --------------------------------------------------------------------------

    def _hosts_text(self) -> str:
        counts = {state: sum(1 for s in self.hosts.values() if s == state) for state in ("ok", "changed", "failed")}
        return f"hosts ok={counts['ok']} changed={counts['changed']} failed={counts['failed']}"

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def _plain(self, line: str) -> None:
        if self.mode == "plain":
            self.out.write(line + "\n")
            self.out.flush()

    def _draw(self) -> None:
        if self.mode != "compact":
            return
        tail = f" | {self._hosts_text()} | {self._elapsed()}"
        width = max(40, shutil.get_terminal_size((100, 24)).columns - 1)
        task = f": {self.task}" if self.task else ": starting"
        # On a narrow terminal the play's name goes first, then the task's name is shortened.
        for parts in ((self.playbook, self.play, f"task {self.tasks}"), (self.playbook, f"task {self.tasks}")):
            head = " | ".join(part for part in parts if part)
            room = width - len(head) - len(tail)
            if room >= min(len(task), 30):
                break
        if len(task) > room:
            task = task[: max(0, room - 1)] + "…" if room > 3 else ""
        line = (head + task + tail)[:width]
        with self._lock:
            if line != self._last:
                self.out.write("\r\x1b[K" + line)
                self.out.flush()
                self._last = line

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            self._draw()
