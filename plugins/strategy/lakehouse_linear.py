"""Ansible's linear strategy, with each host's connection kept open by Mitogen.

Without it, every module call is a new connection (for a container host, a `docker exec`) and a
new Python interpreter on the host that unpacks and imports the module again: about 290 ms a call
on a sandbox host, against 80 ms with it. Mitogen (a pinned requirement) keeps one interpreter per
host for the run and sends each module to it; plays, results, check mode and `--diff` are
Ansible's own. Asynchronous tasks of collection modules can hang under it (Molecule's Docker
driver keeps the linear strategy for that reason); the project's playbooks have none.

`ANSIBLE_STRATEGY=linear` runs without it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lakehouse_linear
short_description: The linear strategy, with connections kept open by Mitogen
description:
  - Ansible's linear strategy through Mitogen's strategy mixin, which redirects the docker, ssh
    and local connections to Mitogen's, one persistent interpreter per host.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
