"""Identity directories for tests: a real `Directory` file with one identity per role (named
like the role), an administrator and a user holding two roles; tokens issued by it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from medlake.config import DEFAULT_CONF_DIR
from medlake.governance.access import load_access
from medlake.governance.identity import (
    IDENTITIES_ENV,
    TOKEN_ENV,
    Directory,
    Identity,
    SignedIn,
    hash_password,
)

PASSWORD = "correct horse battery staple"
ADMIN = "ops.admin"  # an administrator holding data_steward
TWO_ROLES = "li.wei"  # a user holding analyst_cn and auditor, with PASSWORD


def as_role(role: str, name: str = "tester") -> SignedIn:
    """A caller that has already signed in (what a service hands `Lakehouse`)."""
    return SignedIn(Identity(name, "user", (role,)), role, name)


@dataclass
class Identities:
    directory: Directory

    @property
    def path(self) -> Path:
        return self.directory.path

    def token(self, name: str, hours: float = 1.0) -> str:
        return self.directory.issue(name, hours=hours)[0]

    def env(self, name: str | None) -> dict[str, str]:
        """The environment of a process signed in as `name` (None: not signed in)."""
        env = {IDENTITIES_ENV: str(self.path)}
        if name is not None:
            env[TOKEN_ENV] = self.token(name)
        return env

    def sign_in(self, monkeypatch: pytest.MonkeyPatch, name: str | None) -> None:
        for key, value in self.env(name).items():
            monkeypatch.setenv(key, value)
        if name is None:
            monkeypatch.delenv(TOKEN_ENV, raising=False)


def write_identities(folder: Path, conf_dir: Path = DEFAULT_CONF_DIR) -> Identities:
    """The directory file identities.yaml in `folder` (mode 0600)."""
    directory = Directory(folder / "identities.yaml", secrets.token_bytes(32), {})
    for role in load_access(conf_dir).roles:
        directory.put(Identity(role, "user", (role,)))
    directory.put(Identity(ADMIN, "user", ("data_steward",), admin=True))
    directory.put(
        Identity(TWO_ROLES, "user", ("analyst_cn", "auditor"), False, hash_password(PASSWORD))
    )
    directory.save()
    return Identities(directory)
