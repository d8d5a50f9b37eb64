"""Lookup plugin: ansible.builtin.template's lookup, without a deep copy of every variable per file.

The core lookup deep-copies all of a task's variables (facts, the artifact table, every role's
defaults) for each file it renders, only to add a few keys on top: about a tenth of a no-op
converge's time went to those copies. This one hands it the variables under an empty layer
instead, which the added keys go into; the variables themselves are never changed. Everything
else, the search path, the options and the rendering, is the core lookup's.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lakehouse_template
author: Lakehouse bootstrap maintainers
short_description: Render template files with the task's variables (the core template lookup, lighter)
description:
  - Returns each term, a template file found as C(ansible.builtin.template) finds it (the role's
    C(templates/) first), rendered with the task's variables and O(template_vars).
  - The same as the C(ansible.builtin.template) lookup, except that the task's variables are layered
    under the keys it adds rather than deep-copied for each file.
options:
  _terms:
    description: Template files to render.
    required: true
  template_vars:
    description: Variables available to the templates only, on top of the task's.
    type: dict
    default: {}
  variable_start_string:
    description: What opens an expression to print.
    type: str
    default: "{{"
  variable_end_string:
    description: What closes an expression to print.
    type: str
    default: "}}"
  comment_start_string:
    description: What opens a comment.
    type: str
    default: "{#"
  comment_end_string:
    description: What closes a comment.
    type: str
    default: "#}"
  trim_blocks:
    description: Whether the first newline after a block tag is removed.
    type: bool
    default: true
"""

RETURN = r"""
_raw:
  description: The rendered files, in the order of the terms.
  type: list
  elements: raw
"""

from collections import ChainMap

from ansible.plugins.lookup.template import LookupModule as CoreTemplateLookup


class _Layered(ChainMap):
    """The task's variables; what the core lookup would copy deeply is this under an empty layer."""

    def __deepcopy__(self, memo):
        return ChainMap({}, *self.maps)


class LookupModule(CoreTemplateLookup):
    def run(self, terms, variables=None, **kwargs):
        return super().run(terms, _Layered(variables or {}), **kwargs)
