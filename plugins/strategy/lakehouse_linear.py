"""Ansible's linear strategy, with each host's connection kept open by Mitogen.

Without it, every module call is a new connection (for a container host, a `docker exec`) and a
new Python interpreter on the host that unpacks and imports the module again: about 290 ms a call
on a sandbox host, against 80 ms with it. Mitogen (a pinned requirement) keeps one interpreter per
host for the run and sends each module to it; plays, results, check mode and `--diff` are
Ansible's own. The module imports of asynchronous tasks can hang under it (Molecule's Docker
driver creates and removes its hosts with them), so a play with an asynchronous task runs with
the plain linear strategy; the project's own playbooks have none.

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

from ansible.playbook.block import Block
from ansible_mitogen.plugins.strategy.mitogen_linear import Base
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule as MitogenLinear


def _tasks(blocks):
    for item in blocks:
        if isinstance(item, Block):
            yield from _tasks(item.block + item.rescue + item.always)
        else:
            yield item


def has_async_task(play) -> bool:
    """Whether a task of the play (as written, before any include runs) is asynchronous."""
    return any(task.async_val for task in _tasks(play.compile()))


class StrategyModule(MitogenLinear):
    def run(self, iterator, play_context, result=0):
        if has_async_task(iterator._play):
            return Base.run(self, iterator, play_context)
        return super().run(iterator, play_context, result)
