"""`lakehouse login|logout|whoami` and `lakehouse identity ...`: who the caller is.

Every governed command takes its identity from the token that `login` stores (or from
$LAKEHOUSE_TOKEN) and a role with `--role` that the identity must hold; `--as NAME` lets an
administrator act for another identity (audited). `identity add|passwd|token|revoke|list`
edit the identity directory file itself: whoever may write that file in the secret store is
the directory's administrator, and each change is audited with the OS account.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from medlake.client import SERVER_ENV, Client, ServiceError
from medlake.config import Settings
from medlake.governance.access import load_access
from medlake.governance.audit import AuditEvent, AuditTrail
from medlake.governance.identity import (
    DEFAULT_TOKEN_HOURS,
    AuthError,
    Directory,
    Identity,
    SignedIn,
    default_token_file,
    hash_password,
    login,
    os_user,
    save_token,
    sign_in,
)


def add_identity_args(p: argparse.ArgumentParser, *, role_help: str | None = None) -> None:
    """`--role` (one the signed-in identity holds; default its only role) and `--as`."""
    p.add_argument(
        "--role",
        help=role_help or "act in this role (one your identity holds; default: your only role)",
    )
    p.add_argument(
        "--as",
        dest="act_as",
        metavar="NAME",
        help="administrators only: act for identity NAME (audited)",
    )


def signed_in(args: argparse.Namespace, settings: Settings, *, via: str) -> SignedIn:
    """Sign the caller in for a command (refusals are audited and raised as `AuthError`)."""
    return sign_in(
        settings,
        role=getattr(args, "role", None),
        act_as=getattr(args, "act_as", None),
        purpose=getattr(args, "purpose", None),
        via=via,
    )


def _password(args: argparse.Namespace, prompt: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def _audit(settings: Settings, action: str, name: str, **details: Any) -> None:
    AuditTrail(settings).record(
        AuditEvent(
            action=action,
            table_name="(identity)",
            principal=details.pop("principal", f"os:{os_user()}"),
            details={"identity": name, **details},
        )
    )


# --------------------------------------------------------------------- commands


def cmd_login(args: argparse.Namespace, settings: Settings) -> int:
    password = _password(args, f"password for {args.user}: ")
    if os.environ.get(SERVER_ENV):  # the service checks it: analysts cannot read the directory
        try:
            answer = Client().login(args.user, password, hours=args.hours)
        except (ServiceError, PermissionError) as exc:
            raise AuthError(str(exc)) from None
        token, until, roles = answer["token"], answer["expires"], answer["roles"]
    else:  # the directory's own account (the service account, an administrator)
        token, expires, identity = login(settings, args.user, password, hours=args.hours)
        until, roles = f"{expires:%Y-%m-%d %H:%M} UTC", list(identity.roles)
    path = save_token(token)
    print(f"signed in as {args.user} (roles: {', '.join(roles) or 'none'}) until {until}; "
          f"token in {path}")  # fmt: skip
    return 0


def cmd_logout(args: argparse.Namespace, settings: Settings) -> int:
    path = default_token_file()
    if path.exists():
        path.unlink()
        print(f"signed out: {path} removed")
    else:
        print("not signed in")
    return 0


def cmd_whoami(args: argparse.Namespace, settings: Settings) -> int:
    who = signed_in(args, settings, via="whoami")
    until = f" until {who.expires:%Y-%m-%d %H:%M} UTC" if who.expires else ""
    print(
        f"{who.principal} ({who.identity.kind}{', administrator' if who.identity.admin else ''})"
        f", acting as {who.role}{until}; holds {', '.join(who.identity.roles)}"
    )
    return 0


def cmd_identity_add(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_access(settings.conf_dir)
    for role in args.role:
        policy.role(role)  # an unknown role is refused with a hint before anything is written
    directory = Directory.open_or_create()
    if args.name in directory.identities:
        raise AuthError(f"identity {args.name!r} exists; change it with `identity grant|passwd`")
    password = None
    if args.kind == "user":
        password = hash_password(_password(args, f"new password for {args.name}: "))
    identity = Identity(args.name, args.kind, tuple(args.role), args.admin, password)
    directory.put(identity)
    directory.save()
    _audit(settings, "identity_add", args.name, roles=list(args.role), admin=args.admin)
    print(f"{args.name}: {args.kind} with roles {', '.join(args.role)} in {directory.path}")
    return 0


def cmd_identity_grant(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_access(settings.conf_dir)
    for role in args.role:
        policy.role(role)
    directory = Directory.load()
    identity = directory.get(args.name)
    roles = tuple(args.role) if args.only else tuple(dict.fromkeys([*identity.roles, *args.role]))
    directory.put(replace(identity, roles=roles))
    directory.save()
    _audit(settings, "identity_grant", args.name, roles=list(roles))
    print(f"{args.name}: roles {', '.join(roles) or 'none'}")
    return 0


def cmd_identity_passwd(args: argparse.Namespace, settings: Settings) -> int:
    directory = Directory.load()
    identity = directory.get(args.name)
    password = hash_password(_password(args, f"new password for {args.name}: "))
    directory.put(replace(identity, password=password))
    directory.revoke(args.name)  # tokens issued with the old password stop working
    directory.save()
    _audit(settings, "identity_passwd", args.name)
    print(f"{args.name}: password changed; earlier tokens are revoked")
    return 0


def cmd_identity_token(args: argparse.Namespace, settings: Settings) -> int:
    directory = Directory.load()
    token, expires = directory.issue(args.name, hours=args.hours)
    _audit(settings, "identity_token", args.name, expires=str(expires))
    if args.out:
        path = save_token(token, Path(settings.resolve(args.out)))
        print(f"token for {args.name} until {expires:%Y-%m-%d %H:%M} UTC written to {path}")
    else:
        print(token)
    return 0


def cmd_identity_revoke(args: argparse.Namespace, settings: Settings) -> int:
    directory = Directory.load()
    directory.revoke(args.name)
    directory.save()
    _audit(settings, "identity_revoke", args.name)
    print(f"{args.name}: every token issued until now is refused")
    return 0


def cmd_identity_list(args: argparse.Namespace, settings: Settings) -> int:
    directory = Directory.load()
    rows = [("NAME", "KIND", "ADMIN", "ROLES")]
    for name, ident in sorted(directory.identities.items()):
        kind = ident.kind + (" (disabled)" if ident.disabled else "")
        rows.append((name, kind, "yes" if ident.admin else "-", ", ".join(ident.roles) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def add_identity_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `login`, `logout`, `whoami` and `identity ...`."""
    p = sub.add_parser(
        "login",
        help="sign in: store a token for the governed commands",
        description="Check the password of identity USER in the identity directory "
        "($LAKEHOUSE_IDENTITIES) and store a signed token (mode 0600) in "
        "$LAKEHOUSE_TOKEN_FILE or ~/.config/medlake/token. Sign-ins and refusals are audited.",
    )
    p.add_argument("--user", required=True)
    p.add_argument("--hours", type=float, default=DEFAULT_TOKEN_HOURS, help="token lifetime")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("logout", help="remove the stored token")
    p.set_defaults(func=cmd_logout)
    p = sub.add_parser("whoami", help="the signed-in identity, its roles and the token's expiry")
    add_identity_args(p)
    p.set_defaults(func=cmd_whoami)

    ident = sub.add_parser(
        "identity",
        help="edit the identity directory (users, services, roles, tokens)",
        description="Edit the identity directory file named by $LAKEHOUSE_IDENTITIES (created "
        "mode 0600 on first use). Whoever may write that file administers the directory; "
        "every change is audited with the OS account.",
    )
    isub = ident.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    p = isub.add_parser("add", help="add a user (with a password) or a service identity")
    p.add_argument("name")
    p.add_argument("--role", action="append", required=True, help="a role it holds (repeat)")
    p.add_argument("--kind", choices=["user", "service"], default="user")
    p.add_argument("--admin", action="store_true", help="may act for other identities (--as)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_identity_add)
    p = isub.add_parser("grant", help="add roles to an identity (--only: replace them)")
    p.add_argument("name")
    p.add_argument("--role", action="append", default=[], help="a role (repeat)")
    p.add_argument("--only", action="store_true", help="hold exactly these roles")
    p.set_defaults(func=cmd_identity_grant)
    p = isub.add_parser("passwd", help="set a user's password (revokes its tokens)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_identity_passwd)
    p = isub.add_parser("token", help="issue a token (a service's, for the DAG)")
    p.add_argument("name")
    p.add_argument("--hours", type=float, default=24.0 * 90, help="lifetime (default 90 days)")
    p.add_argument("--out", help="write it to this file (mode 0600) instead of printing it")
    p.set_defaults(func=cmd_identity_token)
    p = isub.add_parser("revoke", help="refuse every token issued until now")
    p.add_argument("name")
    p.set_defaults(func=cmd_identity_revoke)
    p = isub.add_parser("list", help="identities, kinds and roles (no secrets)")
    p.set_defaults(func=cmd_identity_list)
