"""Lookup plugin: a credential generated once on the controller, or supplied from outside."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lakehouse_secret
author: Lakehouse bootstrap maintainers
short_description: A credential from the lakehouse secret store, generated once on the controller
description:
  - Returns the credential stored under each term (a path such as C(minio/root_password)) in the
    controller's secret store, a directory outside the repository.
  - A missing credential is generated once (letters and digits) and written with mode 0600 in a
    0700 directory; later runs read the same value.
  - An environment variable C(LAKEHOUSE_SECRET_<TERM>) (the term upper-cased, C(/) and C(-) as C(_))
    takes precedence, so a CI system or an external secrets manager can supply every credential
    without the store. A variable can of course also be set to another lookup (vault, hashi_vault).
options:
  _terms:
    description:
      - Credential paths inside the store, or the references that contracts publish,
        C(lakehouse_secret:<path>).
    required: true
  store:
    description: Directory of the secret store.
    type: str
    default: ~/.local/share/lakehouse/secrets
    vars:
      - name: lakehouse_secrets_dir
    env:
      - name: LAKEHOUSE_SECRETS_DIR
  length:
    description: Length of a generated credential.
    type: int
    default: 40
"""

EXAMPLES = r"""
- name: Use the MinIO root password
  ansible.builtin.debug:
    msg: "{{ lookup('lakehouse_secret', 'minio/root_password') | length }}"
"""

RETURN = r"""
_raw:
  description: One credential per term.
  type: list
  elements: str
"""

import os
import re
import secrets
import string
import tempfile

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_ALPHABET = string.ascii_letters + string.digits
REF_PREFIX = "lakehouse_secret:"
_TERM = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


def env_name(term: str) -> str:
    return "LAKEHOUSE_SECRET_" + re.sub(r"[/.-]", "_", term).upper()


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        value = handle.read().strip()
    if not value:
        raise AnsibleLookupError(f"lakehouse_secret: {path} is empty; remove it to regenerate")
    return value


def read_or_create(store: str, term: str, length: int) -> str:
    """Read the credential at store/term, creating it atomically if it does not exist yet."""
    path = os.path.join(store, term)
    if os.path.exists(path):
        return _read(path)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # Written whole to a file of its own, then linked to its name: parallel forks (several hosts
    # asking for the same credential) race to link, exactly one wins, and no reader ever sees a
    # credential half written.
    value = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    fd, candidate = tempfile.mkstemp(prefix=".new-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        os.link(candidate, path)
        return value
    except FileExistsError:
        return _read(path)
    finally:
        os.unlink(candidate)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        # A store set through a variable may itself be a template (it usually derives from the site).
        store = os.path.expanduser(self._templar.template(self.get_option("store")))
        length = self.get_option("length")
        values = []
        for term in terms:
            term = term.removeprefix(REF_PREFIX)  # a contract's credential reference names the same path
            if not _TERM.match(term):
                raise AnsibleLookupError(f"lakehouse_secret: invalid credential path {term!r}")
            values.append(os.environ.get(env_name(term)) or read_or_create(store, term, length))
        return values
