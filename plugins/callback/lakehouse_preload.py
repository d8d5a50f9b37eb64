"""Load every Jinja filter and test plugin once, in the controller's main process.

Ansible runs each task in a worker process forked from the main one. A worker that templates an
expression with a filter or a test first loads every filter (or test) plugin it can find, and
exits after the task: each of a converge's few hundred tasks paid that again. Loaded here, before
the first task, every worker inherits them.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lakehouse_preload
type: aggregate
short_description: Load the Jinja filter and test plugins once, before the first task
description:
  - Loads every filter and test plugin in the controller's main process when a playbook starts, so
    the worker process forked for each task inherits them instead of loading them again.
  - Prints nothing and changes no result.
"""

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lakehouse_preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        for loader in (filter_loader, test_loader):
            for _ in loader.all():
                pass
