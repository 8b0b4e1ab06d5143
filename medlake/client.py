"""The analysts' side of the query service: governed SQL and metric queries over HTTP.

An analyst's process never holds a Spark session or a path to storage: it sends its token
and its question to the query service (`lakehouse serve`, run by the service identity, see
docs/security.md), which signs it in, checks the query, reads through the governed path and
returns the rows. This module uses the standard library only, so it runs anywhere Python
does, also outside the product's environment:

    >>> from medlake.client import Client                                   # doctest: +SKIP
    >>> lake = Client()               # $LAKEHOUSE_SERVER, token from `lakehouse login`
    >>> lake.sql("SELECT plant_id, count(*) AS n FROM silver.complaints GROUP BY 1")
    Result(columns=('plant_id', 'n'), rows=[...])
    >>> lake.metric("otd", by=["plant_id", "month"], where="month >= '2026-03'")

`lakehouse query` and `lakehouse metrics query` use it whenever $LAKEHOUSE_SERVER is set.
As a script (`python client.py query "SQL"`) it is the whole analyst interface in one file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_ENV = "LAKEHOUSE_SERVER"
TOKEN_ENV = "LAKEHOUSE_TOKEN"
TOKEN_FILE_ENV = "LAKEHOUSE_TOKEN_FILE"
TIMEOUT_S = 600.0


class ServiceError(Exception):
    """The service refused or failed the request; `status` is its HTTP status (401 not
    signed in, 403 refused, 400 a bad request, 503 not reachable, 500 failed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Result:
    """Rows returned by the service, with their column names and what it says about them."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    info: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_pandas(self) -> Any:
        import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415 (notebooks only)

        return pd.DataFrame(self.rows, columns=list(self.columns))


def token_file() -> Path:
    """$LAKEHOUSE_TOKEN_FILE, else ~/.config/medlake/token (where `lakehouse login` writes)."""
    named = os.environ.get(TOKEN_FILE_ENV)
    return Path(named).expanduser() if named else Path.home() / ".config" / "medlake" / "token"


def find_token(explicit: str | None = None) -> str | None:
    """`explicit`, else $LAKEHOUSE_TOKEN, else the token file (refused when others can read
    it); None when there is none."""
    if explicit:
        return explicit
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    path = token_file()
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, PermissionError):
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"token file {path} is readable by other users; run `chmod 600 {path}`"
        )
    return path.read_text(encoding="utf-8").strip() or None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is refused: it would carry the bearer token to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Client:
    """A connection to the query service at `url` (default $LAKEHOUSE_SERVER) with `token`
    (default: $LAKEHOUSE_TOKEN or the token file), acting in `role` (default: the identity's
    only role) for `purpose`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        role: str | None = None,
        act_as: str | None = None,
        purpose: str | None = None,
    ) -> None:
        url = url or os.environ.get(SERVER_ENV)
        if not url:
            raise ServiceError(
                503, f"no query service: set ${SERVER_ENV} (e.g. http://127.0.0.1:8765)"
            )
        self.url = url.rstrip("/")
        self.token = find_token(token)
        self.role, self.act_as, self.purpose = role, act_as, purpose

    def _post(self, path: str, body: dict[str, Any], *, signed: bool = True) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if signed:
            if not self.token:
                raise ServiceError(
                    401, f"not signed in: run `lakehouse login --user NAME` or set ${TOKEN_ENV}"
                )
            headers["Authorization"] = f"Bearer {self.token}"
            body = {"role": self.role, "as": self.act_as, "purpose": self.purpose, **body}
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT_S) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = str(exc.reason)
            raise ServiceError(exc.code, str(message)) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(
                503, f"the query service at {self.url} cannot be reached: {reason}"
            ) from None

    @staticmethod
    def _result(answer: dict[str, Any]) -> Result:
        columns = tuple(answer.pop("columns"))
        rows = [tuple(r) for r in answer.pop("rows")]
        return Result(columns, rows, answer)

    def login(self, user: str, password: str, *, hours: float = 10.0) -> dict[str, Any]:
        """Sign in with a password: the service checks it (the directory is its secret) and
        answers with `token`, `expires` and `roles`."""
        return self._post(
            "/v1/login", {"user": user, "password": password, "hours": hours}, signed=False
        )

    def whoami(self) -> dict[str, Any]:
        """The signed-in identity, the role it acts in and the roles it holds."""
        return self._post("/v1/whoami", {})

    def sql(self, query: str, *, limit: int | None = 1000) -> Result:
        """Run a SELECT over registered tables as the role (governed, audited)."""
        return self._result(self._post("/v1/query", {"sql": query, "limit": limit}))

    def metric(
        self,
        metric: str,
        *,
        by: Sequence[str] = (),
        where: str | None = None,
        as_of: str | None = None,
    ) -> Result:
        """A metric of the dictionary by dimensions, computed from what the role may read."""
        body = {"metric": metric, "by": list(by), "where": where, "as_of": as_of}
        return self._result(self._post("/v1/metric", body))


# --------------------------------------------------------------------- as a script


def exit_code(exc: ServiceError | PermissionError) -> int:
    """2 when the service refused the request (or the token file is too open), 1 when it
    failed or could not be reached."""
    return 2 if getattr(exc, "status", 403) in (400, 401, 403) else 1


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Rows to stdout as an aligned table, CSV or a JSON list of objects."""
    if fmt == "json":
        records = [dict(zip(columns, r, strict=True)) for r in rows]
        print(json.dumps(records, indent=2, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in r] for r in rows])
        return
    cells = [list(columns)] + [["NULL" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="client.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help=f"the service URL (default ${SERVER_ENV})")
    parser.add_argument("--role")
    parser.add_argument("--purpose")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("query", help="run governed SQL")
    q.add_argument("sql")
    q.add_argument("--limit", type=int, default=1000)
    m = sub.add_parser("metric", help="compute a metric by dimensions")
    m.add_argument("metric")
    m.add_argument("--by", default="")
    m.add_argument("--where")
    sub.add_parser("whoami")
    args = parser.parse_args(argv)
    try:
        client = Client(args.server, role=args.role, purpose=args.purpose)
        if args.command == "whoami":
            print(json.dumps(client.whoami(), indent=2))
            return 0
        if args.command == "query":
            result = client.sql(args.sql, limit=args.limit)
        else:
            by = [b.strip() for b in args.by.split(",") if b.strip()]
            result = client.metric(args.metric, by=by, where=args.where)
    except (ServiceError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    print_rows(result.columns, result.rows, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
