"""Who is asking: identities, the roles each holds, and how they prove it.

Roles are never claimed: every governed interface (`lakehouse query`, `metrics query`,
`what-if`, `governance reidentify|erase`, `audit show`, `Lakehouse.open()`) first calls
`sign_in`, which takes the identity from a signed token and checks that the identity holds
the role it asks for. On the embedded default the identities live in a *directory file* in
the secret store, named by `$LAKEHOUSE_IDENTITIES` (mode 0600, outside git):

    signing_key: <64 hex digits>           # signs the tokens; never leaves the secret store
    identities:
      li.wei:
        kind: user                         # a person: signs in with a password
        roles: [analyst_cn]
        password: scrypt$15$8$1$<salt>$<hash>
      svc-lakehouse:
        kind: service                      # the nightly DAG: a token issued by an operator
        roles: [data_steward]
      ops.admin:
        kind: user
        roles: [data_steward, auditor]
        admin: true                        # may act for another identity (--as), audited

Passwords are stored as scrypt hashes (`hashlib.scrypt`, OpenSSL's implementation: memory-hard,
salted, parameters kept in the hash so they can be raised later). A token is
`mlk1.<payload>.<signature>`: the identity's name, issue and expiry times, HMAC-SHA256 signed
with the directory's key; the roles are looked up when the token is used, so a role taken
away applies at once, and `lakehouse identity revoke` refuses every token issued before it.
A group with an identity provider replaces the directory through `IdentitySource` (see
docs/security.md: OIDC claims or LDAP groups mapped to roles in config).

Every refusal (unknown identity, wrong password, bad or expired token, a role not held, an
impersonation by a non-administrator, `$LAKEHOUSE_PRINCIPAL`) is written to the audit trail
before it is raised.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from medlake import client
from medlake.config import ConfigError, Settings
from medlake.governance.access import AccessDenied, AccessPolicy, UnknownRoleError, load_access
from medlake.governance.audit import AuditEvent, AuditTrail

IDENTITIES_ENV = "LAKEHOUSE_IDENTITIES"
TOKEN_ENV = client.TOKEN_ENV
TOKEN_FILE_ENV = client.TOKEN_FILE_ENV
PRINCIPAL_VAR = "LAKEHOUSE_PRINCIPAL"  # no longer honoured: refused and audited when set
TOKEN_PREFIX = "mlk1"
DEFAULT_TOKEN_HOURS = 10.0
MAX_LOGIN_HOURS = 24.0  # a person's sign-in; longer-lived tokens are issued to services
LOCK_AFTER, LOCK_SECONDS = 5, 300.0  # failed sign-ins of one name in a row, then a pause
MAX_TOKEN_HOURS = 24.0 * 366
# scrypt cost: n = 2**15, r = 8, p = 1 uses 32 MiB and about 0.1 s per check on one core
SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P = 15, 8, 1
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,62}$")
Kind = Literal["user", "service"]


class AuthError(AccessDenied):
    """The caller is not who it says, or may not act as it asks; the message says what to do."""


class IdentityConfigError(ConfigError):
    """The identity directory is missing, unreadable, too open or malformed."""


def default_token_file() -> Path:
    """Where `lakehouse login` keeps the token: $LAKEHOUSE_TOKEN_FILE, else
    ~/.config/medlake/token."""
    return client.token_file()


def os_user() -> str:
    """The operating-system account of this process."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid-{os.getuid()}"


# --------------------------------------------------------------------- passwords and tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2n: int, r: int, p: int) -> bytes:
    n = 1 << log2n
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32
    )


def hash_password(password: str) -> str:
    """`scrypt$<log2 n>$<r>$<p>$<salt>$<hash>` of `password` with a fresh 16-byte salt."""
    if len(password) < 12:
        raise IdentityConfigError("a password needs at least 12 characters")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_LOG2N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (constant-time comparison of the digests)."""
    try:
        scheme, log2n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, _unb64(salt), int(log2n), int(r), int(p))
        return hmac.compare_digest(computed, _unb64(digest))
    except (ValueError, TypeError):
        return False


# a hash of a random password: checked for unknown names too, so timing does not tell them apart
@functools.cache
def _decoy() -> str:
    """A hash of a random password, checked for unknown names too, so that the time of an
    answer does not tell an unknown name from a wrong password (computed on first use)."""
    return hash_password(secrets.token_hex(16))


# --------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """A person or service account and the roles it holds."""

    name: str
    kind: Kind
    roles: tuple[str, ...]
    admin: bool = False
    password: str | None = field(default=None, repr=False)
    not_before: dt.datetime | None = None  # tokens issued earlier are refused (revocation)
    disabled: bool = False

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "roles": list(self.roles)}
        if self.admin:
            out["admin"] = True
        if self.password:
            out["password"] = self.password
        if self.not_before:
            out["not_before"] = self.not_before.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.disabled:
            out["disabled"] = True
        return out


@dataclass(frozen=True)
class SignedIn:
    """An authenticated caller acting in one of its roles.

    `principal` is what the audit trail records: the identity's name, or `ADMIN as NAME` when
    an administrator acts for another identity."""

    identity: Identity
    role: str
    actor: str  # who proved it: the identity itself, or the administrator acting for it
    expires: dt.datetime | None = None

    @property
    def principal(self) -> str:
        if self.actor == self.identity.name:
            return self.identity.name
        return f"{self.actor} as {self.identity.name}"


class IdentitySource(Protocol):
    """Where identities come from: `Directory` on the embedded default; an adapter for the
    group's identity provider (OIDC, LDAP) implements the same two calls."""

    def verify(self, token: str, *, now: dt.datetime | None = None) -> Identity: ...

    def get(self, name: str) -> Identity: ...


def _parse_time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise IdentityConfigError(f"{where}: {value!r} is not an ISO time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _identity(name: str, raw: Any, where: str) -> Identity:
    if not _NAME.match(name):
        raise IdentityConfigError(
            f"{where}: identity name {name!r} must be 2-63 characters: lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter"
        )
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: identity {name!r} must be a mapping")
    unknown = sorted(set(raw) - {"kind", "roles", "admin", "password", "not_before", "disabled"})
    if unknown:
        raise IdentityConfigError(f"{where}: identity {name!r} has unknown keys {unknown}")
    kind = raw.get("kind", "user")
    if kind not in ("user", "service"):
        raise IdentityConfigError(f"{where}: identity {name!r}: kind must be user or service")
    roles = raw.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise IdentityConfigError(f"{where}: identity {name!r}: roles must be a list of names")
    password = raw.get("password")
    if password is not None and not str(password).startswith("scrypt$"):
        raise IdentityConfigError(
            f"{where}: identity {name!r}: password must be a scrypt hash (set it with "
            "`lakehouse identity passwd`), never the password itself"
        )
    not_before = raw.get("not_before")
    return Identity(
        name=name,
        kind=kind,
        roles=tuple(roles),
        admin=bool(raw.get("admin", False)),
        password=password,
        not_before=None if not_before is None else _parse_time(not_before, where),
        disabled=bool(raw.get("disabled", False)),
    )


class Directory:
    """The identity directory file of the embedded default (see the module docstring)."""

    def __init__(self, path: Path, signing_key: bytes, identities: Mapping[str, Identity]):
        self.path = path
        self._key = signing_key
        self.identities = dict(identities)

    def __repr__(self) -> str:  # the signing key must never reach a log
        return f"Directory({self.path}, {len(self.identities)} identities)"

    # ------------------------------------------------------------- file

    @classmethod
    def path_from_env(cls) -> Path:
        named = os.environ.get(IDENTITIES_ENV)
        if not named:
            raise IdentityConfigError(
                f"no identity directory: set ${IDENTITIES_ENV} to the identity file in the "
                "secret store (`lakehouse identity add` creates it; `make demo` writes one "
                "under var/secrets/)"
            )
        return Path(named).expanduser()

    @classmethod
    def load(cls, path: Path | None = None) -> Directory:
        path = path or cls.path_from_env()
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IdentityConfigError(
                f"identity directory {path} does not exist; create it with "
                "`lakehouse identity add NAME --role ROLE`"
            ) from None
        except OSError as exc:
            raise IdentityConfigError(
                f"identity directory {path} cannot be read: {exc.strerror}"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityConfigError(
                f"identity directory {path} can be read or written by other users "
                f"(mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
            )
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:  # never echo a line: it may hold a hash or the key
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise IdentityConfigError(
                f"identity directory {path} is not valid YAML{where}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("identities", {}), dict):
            raise IdentityConfigError(f"identity directory {path}: `identities:` must be a mapping")
        key = str(data.get("signing_key", ""))
        if not re.fullmatch(r"[0-9a-f]{64,}", key):
            raise IdentityConfigError(
                f"identity directory {path}: `signing_key:` must be 32 or more random bytes as "
                "hex (`lakehouse identity add` writes one)"
            )
        raw = data.get("identities") or {}
        where = str(path)
        found = {str(n): _identity(str(n), v, where) for n, v in raw.items()}
        return cls(path, bytes.fromhex(key), found)

    @classmethod
    def open_or_create(cls, path: Path | None = None) -> Directory:
        path = path or cls.path_from_env()
        if path.exists():
            return cls.load(path)
        return cls(path, secrets.token_bytes(32), {})

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        body = {
            "signing_key": self._key.hex(),
            "identities": {n: i.as_yaml() for n, i in sorted(self.identities.items())},
        }
        text = (
            "# medlake identity directory: who may sign in and the roles each holds.\n"
            "# Secret: keep it mode 0600, outside git. Edit with `lakehouse identity ...`.\n"
            + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        )
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".identities-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------- identities

    def get(self, name: str) -> Identity:
        found = self.identities.get(name)
        if found is None or found.disabled:
            raise AuthError(f"unknown or disabled identity {name!r}")
        return found

    def put(self, identity: Identity) -> None:
        _identity(identity.name, identity.as_yaml(), str(self.path))  # same checks as a load
        self.identities[identity.name] = identity

    def authenticate(self, name: str, password: str) -> Identity:
        """The identity `name` if `password` is its password; `AuthError` otherwise (the same
        message for an unknown name and a wrong password)."""
        found = self.identities.get(name)
        stored = found.password if found is not None else None
        matches = check_password(password, stored or _decoy())
        if found is None or found.disabled or stored is None or not matches:
            raise AuthError(f"sign-in refused for {name!r}: unknown identity or wrong password")
        return found

    # ------------------------------------------------------------- tokens

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def issue(self, name: str, *, hours: float = DEFAULT_TOKEN_HOURS) -> tuple[str, dt.datetime]:
        """A token for identity `name`, valid `hours` from now; returns it with its expiry."""
        self.get(name)
        if not 0 < hours <= MAX_TOKEN_HOURS:
            raise IdentityConfigError(
                f"a token lives between 0 and {MAX_TOKEN_HOURS:.0f} hours, not {hours}"
            )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expires = now + dt.timedelta(hours=hours)
        claims = {
            "sub": name,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(8),
        }
        payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
        return f"{TOKEN_PREFIX}.{_b64(payload)}.{self._sign(payload)}", expires

    def verify(self, token: str, *, now: dt.datetime | None = None) -> Identity:
        """The identity a token was issued to; `AuthError` when it is malformed, forged,
        expired, revoked, or names an identity no longer in the directory."""
        return self.verify_claims(token, now=now)[0]

    def verify_claims(
        self, token: str, *, now: dt.datetime | None = None
    ) -> tuple[Identity, dt.datetime]:
        parts = token.strip().split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise AuthError("not a medlake token (expected mlk1.<payload>.<signature>)")
        try:
            payload = _unb64(parts[1])
            expected = self._sign(payload).encode("ascii")
            signature_ok = hmac.compare_digest(expected, parts[2].encode("utf-8"))
        except ValueError:
            signature_ok = False
        if not signature_ok:
            raise AuthError(
                "token signature does not match: forged, altered or from another identity directory"
            )
        claims = json.loads(payload)
        now = now or dt.datetime.now(dt.UTC)
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        if now >= expires:
            raise AuthError(
                f"token of {claims['sub']!r} expired at {expires:%Y-%m-%d %H:%M} UTC; sign in "
                "again (`lakehouse login`) or ask for a new service token"
            )
        identity = self.get(str(claims["sub"]))
        issued = dt.datetime.fromtimestamp(int(claims["iat"]), dt.UTC)
        if identity.not_before is not None and issued < identity.not_before:
            raise AuthError(
                f"token of {identity.name!r} was revoked (issued before "
                f"{identity.not_before:%Y-%m-%d %H:%M} UTC); sign in again"
            )
        return identity, expires

    def revoke(self, name: str) -> None:
        """Refuse every token of `name` issued until now."""
        identity = self.get(name)
        stamp = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        self.identities[name] = replace(identity, not_before=stamp)


# --------------------------------------------------------------------- signing in


def find_token(explicit: str | None = None) -> str | None:
    """The caller's token: `explicit`, else $LAKEHOUSE_TOKEN, else the token file."""
    try:
        return client.find_token(explicit)
    except PermissionError as exc:
        raise AuthError(str(exc)) from None


def save_token(token: str, path: Path | None = None) -> Path:
    """Write `token` to the token file (mode 0600) and return where."""
    path = path or default_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # a fresh file of ours (never through a link, never into someone else's file), then
    # moved over the old one
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600, O_EXCL
            out.write(token + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _claimed(token: str | None) -> str:
    """The name a token claims, unverified (for the audit record of a refusal)."""
    try:
        return "unverified:" + str(json.loads(_unb64((token or "").split(".")[1]))["sub"])[:64]
    except (IndexError, ValueError, KeyError, TypeError):
        return "(no identity)"


def audit_refusal(
    settings: Settings,
    reason: BaseException | str,
    *,
    via: str,
    principal: str,
    role: str | None = None,
    purpose: str | None = None,
    table: str = "(identity)",
    details: Mapping[str, Any] | None = None,
) -> None:
    """One `refused` event in the audit trail."""
    recorded = {"via": via, "reason": str(reason), **(details or {})}
    AuditTrail(settings).record(
        AuditEvent(
            action="refused",
            table_name=table,
            principal=principal,
            role=role,
            purpose=purpose,
            row_count=0,
            details=recorded,
        )
    )


def choose_role(identity: Identity, role: str | None, policy: AccessPolicy) -> str:
    """The role the identity acts in: `role` if it holds it; its only role when `role` is
    None; otherwise `AuthError` naming the roles it holds."""
    held = [r for r in identity.roles if r in policy.roles]
    if role is None:
        if len(held) == 1:
            return held[0]
        raise AuthError(
            f"{identity.name!r} holds {len(held)} roles ({', '.join(held) or 'none'}); "
            "choose one with --role"
        )
    try:
        policy.role(role)
    except UnknownRoleError as exc:  # refused (and audited) like a role not held
        raise AuthError(str(exc)) from None
    if role not in held:
        raise AuthError(
            f"{identity.name!r} does not hold role {role!r}; it holds "
            f"{', '.join(held) or 'no role'} (roles are granted in the identity directory)"
        )
    return role


def sign_in(
    settings: Settings,
    *,
    role: str | None = None,
    token: str | None = None,
    act_as: str | None = None,
    purpose: str | None = None,
    via: str,
    source: IdentitySource | None = None,
    policy: AccessPolicy | None = None,
    ambient: bool = True,
    anonymous: str | None = None,
) -> SignedIn:
    """Authenticate the caller from its token and bind it to a role it holds.

    `act_as` (an administrator only) acts for another identity in one of *its* roles; the
    audit trail names both. Every refusal is audited before `AuthError` is raised.
    `ambient=False` (a service signing in its clients) uses `token` only, never this
    process's own environment or token file; `anonymous` is who a refusal without any token
    is recorded for (default: this process's OS account; the service: the client's
    address)."""
    policy = policy or load_access(settings.conf_dir)
    found = find_token(token) if ambient else (token or None)
    claimed = _claimed(found)
    try:
        if found is None:
            raise AuthError(
                "not signed in: run `lakehouse login --user NAME`, or set "
                f"${TOKEN_ENV} to a service token"
            )
        source = source or Directory.load()
        if isinstance(source, Directory):
            actor, expires = source.verify_claims(found)
        else:
            actor, expires = source.verify(found), None
        claimed = actor.name
        if os.environ.get(PRINCIPAL_VAR):
            raise _override_refused()
        identity = actor
        if act_as is not None and act_as != actor.name:
            if not actor.admin:
                raise AuthError(
                    f"{actor.name!r} may not act for {act_as!r}: only an administrator may"
                )
            identity = source.get(act_as)
        chosen = choose_role(identity, role, policy)
    except AuthError as exc:
        audit_refusal(
            settings,
            exc,
            via=via,
            principal=claimed if claimed != "(no identity)" else (anonymous or f"os:{os_user()}"),
            role=role,
            purpose=purpose,
            details={"act_as": act_as} if act_as else None,
        )
        raise
    signed = SignedIn(identity=identity, role=chosen, actor=actor.name, expires=expires)
    if signed.actor != identity.name:
        AuditTrail(settings).record(
            AuditEvent(
                action="impersonate",
                table_name="(identity)",
                principal=signed.principal,
                role=chosen,
                purpose=purpose,
                details={"via": via, "administrator": actor.name, "acting_for": identity.name},
            )
        )
    return signed


def job_principal(settings: Settings) -> str:
    """Who a job's writes are recorded for: the service identity whose token the orchestrator
    hands the job ($LAKEHOUSE_TOKEN or $LAKEHOUSE_TOKEN_FILE, verified against the directory),
    else the OS account that runs it. A token that does not verify stops the job (audited)."""
    if not (os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_FILE_ENV)):
        return os_user()
    token = find_token()
    if token is None:
        return os_user()
    try:
        return Directory.load().verify(token).name
    except AuthError as exc:
        audit_refusal(settings, exc, via="job", principal=_claimed(token))
        raise


_failures: dict[str, tuple[int, float]] = {}  # name -> (failures in a row, locked until)
_failures_lock = threading.Lock()


def login(
    settings: Settings,
    user: str,
    password: str,
    *,
    hours: float = DEFAULT_TOKEN_HOURS,
    via: str = "login",
    anonymous: str | None = None,
    directory: Directory | None = None,
) -> tuple[str, dt.datetime, Identity]:
    """Check `password` for identity `user` and issue a token of at most `MAX_LOGIN_HOURS`.

    Audited either way (a refusal names the user as `unverified:NAME`); after `LOCK_AFTER`
    failures in a row a name is refused for `LOCK_SECONDS` without its password being
    checked, so passwords cannot be guessed at speed."""
    name = user[:64]
    try:
        if not 0 < hours <= MAX_LOGIN_HOURS:
            raise AuthError(
                f"a sign-in lasts at most {MAX_LOGIN_HOURS:g} hours; services get longer "
                "tokens from `lakehouse identity token`"
            )
        with _failures_lock:
            failures, until = _failures.get(name, (0, 0.0))
        if time.monotonic() < until:
            raise AuthError(f"sign-in for {name!r} paused after {failures} failures; try later")
        try:
            directory = directory or Directory.load()
            identity = directory.authenticate(user, password)
        except AuthError:
            with _failures_lock:
                failures += 1
                locked = time.monotonic() + LOCK_SECONDS if failures >= LOCK_AFTER else 0.0
                _failures[name] = (failures, locked)
            raise
    except AuthError as exc:
        audit_refusal(settings, exc, via=via, principal=f"unverified:{name}")
        raise
    with _failures_lock:
        _failures.pop(name, None)
    token, expires = directory.issue(identity.name, hours=hours)
    AuditTrail(settings).record(
        AuditEvent(
            action="login",
            table_name="(identity)",
            principal=identity.name,
            details={"via": via, "expires": str(expires), "from": anonymous},
        )
    )
    return token, expires, identity


def _override_refused() -> AuthError:
    return AuthError(
        f"${PRINCIPAL_VAR} is set ({os.environ.get(PRINCIPAL_VAR, '')[:64]!r}) but is not "
        "honoured: the audit trail names the signed-in identity or the OS account; unset it "
        "(an administrator acts for another identity with --as)"
    )


def refuse_principal_override(settings: Settings, *, via: str) -> None:
    """`$LAKEHOUSE_PRINCIPAL` once set the name the audit trail records; it is refused now
    (audited), whoever sets it."""
    if os.environ.get(PRINCIPAL_VAR):
        exc = _override_refused()
        audit_refusal(settings, exc, via=via, principal=f"os:{os_user()}")
        raise exc
