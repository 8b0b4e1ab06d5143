"""Secret keys from the environment or a secret file outside git: pseudonymisation keys per
jurisdiction, and the audit trail's MAC keys by key id."""

from __future__ import annotations

import hashlib
import hmac
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
AUDIT_KEY_ENV = "LAKEHOUSE_AUDIT_KEY"
AUDIT_KEY_ID_ENV = "LAKEHOUSE_AUDIT_KEY_ID"
MIN_KEY_BYTES = 32
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SecretError(ConfigError):
    """A secret key is missing or malformed; the message says which and where."""


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
    return _parse_key(f"pseudonymisation key for jurisdiction {jurisdiction!r} from {origin}", text)


def _parse_key(which: str, text: str) -> bytes:
    value = text.strip()
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
    found = _secret_data(project_root)
    if found is None:
        return {}
    path, data = found
    keys = data.get("pseudonym_keys")
    if not isinstance(keys, dict):
        raise SecretError(f"secret file {path} has no `pseudonym_keys:` mapping")
    return {str(k): str(v) for k, v in keys.items()}


def _secret_data(project_root: Path | None) -> tuple[Path, dict[str, object]] | None:
    """The secret file named by $LAKEHOUSE_SECRETS_FILE and its top-level mapping, or None."""
    name = os.environ.get(SECRETS_FILE_ENV)
    if not name:
        return None
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
    return path, data if isinstance(data, dict) else {}


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


# --------------------------------------------------------------------- audit keys


@dataclass(frozen=True)
class AuditKeys:
    """The audit trail's HMAC keys by key id (bytes; never printed) and the id new entries
    are MAC'd with. Keys of earlier ids stay here so that older entries keep verifying."""

    current: str
    by_id: Mapping[str, bytes]

    def __getitem__(self, key_id: str) -> bytes:
        return self.by_id[key_id]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.by_id

    def __repr__(self) -> str:  # keys must never reach a log
        return f"AuditKeys(current={self.current!r}, ids={sorted(self.by_id)})"


AUDIT_WHERE = (
    f"${AUDIT_KEY_ENV} (with ${AUDIT_KEY_ID_ENV} naming it) or `audit_keys: {{current: ID, "
    f"keys: {{ID: ...}}}}` in the file named by ${SECRETS_FILE_ENV}"
)


def key_fingerprint(key: bytes) -> str:
    """The id of a key given without one: a short HMAC of a fixed label (reveals nothing of
    the key, differs between keys, so a replaced key never passes for the old one)."""
    return "fp-" + hmac.new(key, b"medlake audit key id", hashlib.sha256).hexdigest()[:12]


def _key_id(text: object, origin: str) -> str:
    key_id = str(text).strip()
    if not _KEY_ID.match(key_id):
        raise SecretError(
            f"audit key id {key_id[:70]!r} from {origin} is not a valid id: use 1 to 64 "
            "letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 2026-01)"
        )
    return key_id


def _file_audit_keys(project_root: Path | None) -> tuple[str | None, dict[str, bytes], str]:
    """(current id or None, keys by id, where they came from) from the secret file."""
    found = _secret_data(project_root)
    if found is None:
        return None, {}, ""
    path, data = found
    section = data.get("audit_keys")
    if section is None:
        return None, {}, str(path)
    keys = section.get("keys") if isinstance(section, dict) else None
    if not isinstance(section, dict) or not isinstance(keys, dict) or not keys:
        raise SecretError(
            f"secret file {path}: `audit_keys:` must be a mapping `{{current: ID, keys: "
            f"{{ID: HEX, ...}}}}` with at least one key; {_HOW}"
        )
    parsed = {
        _key_id(k, str(path)): _parse_key(f"audit key {str(k)!r} in {path}", str(v))
        for k, v in keys.items()
    }
    current = section.get("current")
    if current is not None:
        current = _key_id(current, f"{path} (audit_keys.current)")
        if current not in parsed:
            raise SecretError(
                f"secret file {path}: audit_keys.current is {current!r}, which is not among "
                f"audit_keys.keys ({', '.join(sorted(parsed))}); add it there"
            )
    return current, parsed, str(path)


def load_audit_keys(project_root: Path | None = None) -> AuditKeys:
    """The audit MAC keys, or a `SecretError` saying what is missing or malformed and where.

    `$LAKEHOUSE_AUDIT_KEY` (hex, 32 bytes or more) is the current key when set, with id
    `$LAKEHOUSE_AUDIT_KEY_ID` (default: a fingerprint of the key); the secret file's
    `audit_keys: {current: ID, keys: {ID: HEX, ...}}` adds older keys (and the current one
    when the environment names none). Rotating = adding a new id and making it current;
    keep the old ones so that the entries MAC'd with them keep verifying.
    """
    current, keys, path = _file_audit_keys(project_root)
    env = os.environ.get(AUDIT_KEY_ENV)
    if env:
        key = _parse_key(f"audit key from ${AUDIT_KEY_ENV}", env)
        named = os.environ.get(AUDIT_KEY_ID_ENV)
        key_id = _key_id(named, f"${AUDIT_KEY_ID_ENV}") if named else key_fingerprint(key)
        if key_id in keys and not hmac.compare_digest(keys[key_id], key):
            raise SecretError(
                f"audit key id {key_id!r} names one key in ${AUDIT_KEY_ENV} and another in "
                f"{path}; give the new key a new id (${AUDIT_KEY_ID_ENV})"
            )
        keys[key_id] = key
        current = key_id
    if current is None:
        raise SecretError(
            "no audit key: expected "
            + (f"audit_keys.current in {path}, or " if keys else "")
            + f"{AUDIT_WHERE}; {_HOW}. Nothing was written"
        )
    return AuditKeys(current=current, by_id=keys)
