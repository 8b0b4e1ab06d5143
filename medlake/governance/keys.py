"""Pseudonymisation keys per jurisdiction, from the environment or a secret file outside git."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from medlake.config import ConfigError

KEY_ENV = "LAKEHOUSE_PSEUDONYM_KEY_{}"  # formatted with the jurisdiction in upper case
SECRETS_FILE_ENV = "LAKEHOUSE_SECRETS_FILE"
MIN_KEY_BYTES = 32
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class SecretError(ConfigError):
    """A pseudonymisation key is missing or malformed; the message says which and where."""


@dataclass(frozen=True)
class Keys:
    """One secret HMAC key per jurisdiction (bytes; never printed)."""

    by_jurisdiction: Mapping[str, bytes]

    def __getitem__(self, jurisdiction: str) -> bytes:
        return self.by_jurisdiction[jurisdiction]

    def __repr__(self) -> str:  # keys must never reach a log
        return f"Keys({', '.join(sorted(self.by_jurisdiction))})"


def _where(jurisdiction: str) -> str:
    return (
        f"${KEY_ENV.format(jurisdiction.upper())} or `pseudonym_keys: {{{jurisdiction}: ...}}` "
        f"in the file named by ${SECRETS_FILE_ENV}"
    )


_HOW = (
    f"write {MIN_KEY_BYTES} or more random bytes as hex, two hex digits per byte "
    "(for example `python -c 'import secrets; print(secrets.token_hex(32))'`)"
)


def _parse(jurisdiction: str, text: str, origin: str) -> bytes:
    """The key's bytes, or a `SecretError` saying what is wrong with it (never the key)."""
    value = text.strip()
    which = f"pseudonymisation key for jurisdiction {jurisdiction!r} from {origin}"
    if not value:
        raise SecretError(f"{which} is empty; {_HOW}")
    if not _HEX.match(value):
        bad = [i for i, char in enumerate(value, start=1) if char not in string.hexdigits]
        prefix = " (drop the 0x prefix)" if value[:2].lower() == "0x" else ""
        raise SecretError(
            f"{which} is not hexadecimal: {len(bad)} of its {len(value)} characters "
            + (
                f"is a non-hex character (not 0-9, a-f), at position {bad[0]}"
                if len(bad) == 1
                else f"are non-hex characters (not 0-9, a-f), the first at position {bad[0]}"
            )
            + f"{prefix}; {_HOW}"
        )
    if len(value) % 2:
        raise SecretError(
            f"{which} has an odd number of hex digits ({len(value)}): each byte is two, so "
            f"an even count is needed, at least {2 * MIN_KEY_BYTES} ({MIN_KEY_BYTES} bytes); "
            "was a digit lost in copying? For a new key: "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    key = bytes.fromhex(value)
    if len(key) < MIN_KEY_BYTES:
        raise SecretError(f"{which} has {len(key)} bytes; at least {MIN_KEY_BYTES} are required")
    return key


def _secret_file(project_root: Path | None) -> dict[str, str]:
    name = os.environ.get(SECRETS_FILE_ENV)
    if not name:
        return {}
    path = Path(name).expanduser()
    if project_root is not None and (tree := _git_work_tree(path)) is not None:
        raise SecretError(
            f"${SECRETS_FILE_ENV} points at {path}, inside the git repository {tree}; keep "
            "secret files outside it (or under its git-ignored var/ folder for a local demo)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SecretError(f"${SECRETS_FILE_ENV} names {path}, which does not exist") from None
    except OSError as exc:
        raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # never echo the offending line: it may hold a key
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SecretError(f"secret file {path} is not valid YAML{where}: {problem}") from None
    keys = data.get("pseudonym_keys") if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise SecretError(f"secret file {path} has no `pseudonym_keys:` mapping")
    return {str(k): str(v) for k, v in keys.items()}


def _git_work_tree(path: Path) -> Path | None:
    """The git work tree that holds `path` (a folder with `.git` above it), unless the file is
    under that tree's `var/` (git-ignored, where the demo keeps its generated keys)."""
    resolved = path.resolve()
    for folder in resolved.parents:
        if (folder / ".git").exists():
            return None if resolved.is_relative_to(folder / "var") else folder
    return None


def load_keys(jurisdictions: Iterable[str], project_root: Path | None = None) -> Keys:
    """Every requested key, or a `SecretError` naming the first missing or malformed one.

    The environment wins over the secret file. Called before a job writes anything, so a
    missing key stops the run with nothing half-masked on disk. With `project_root` (jobs
    pass their home folder) a secret file inside a git work tree is refused: keys must not
    end up committed.
    """
    from_file = _secret_file(project_root)
    found: dict[str, bytes] = {}
    for jurisdiction in sorted(set(jurisdictions)):
        env = KEY_ENV.format(jurisdiction.upper())
        if os.environ.get(env):
            found[jurisdiction] = _parse(jurisdiction, os.environ[env], f"${env}")
        elif jurisdiction in from_file:
            found[jurisdiction] = _parse(
                jurisdiction, from_file[jurisdiction], os.environ[SECRETS_FILE_ENV]
            )
        else:
            raise SecretError(
                f"no pseudonymisation key for jurisdiction {jurisdiction!r}: expected in "
                f"{_where(jurisdiction)}; nothing was written"
            )
    return Keys(found)
