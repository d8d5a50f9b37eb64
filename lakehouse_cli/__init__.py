"""The `lakehouse` command: a thin layer over the project's playbooks, run through ansible-runner.

Everything it does stays doable with plain `ansible-playbook`: it runs the same playbooks with the
same inventory and extra variables, and reads only what the roles publish (contracts on the
controller, credentials in the secret store).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class LakehouseError(Exception):
    """A failure reported to the user as one line, `lakehouse: <reason>`, with a non-zero exit."""

    def __init__(self, reason: str, code: int = 1):
        super().__init__(" ".join(str(reason).split()))
        self.code = code
