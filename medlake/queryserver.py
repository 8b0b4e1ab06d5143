"""The query service: the process boundary between analysts and storage.

`lakehouse serve` runs as the service identity, the only account that may read the storage
root and the secret store (docs/security.md). It keeps one warm Spark session, the access
policy, the table registry and the plants, and answers over HTTP on loopback:

    POST /v1/query   {"sql": ..., "limit": N}                         governed SQL
    POST /v1/metric  {"metric": ..., "by": [...], "where": ..., "as_of": "YYYY-MM-DD"}
    POST /v1/whoami  {}
    POST /v1/login   {"user": ..., "password": ..., "hours": H}          no token: issues one
    (every body may add "role", "as" and "purpose"; the token goes in
     `Authorization: Bearer <token>`)

Each request is signed in from its own token only (never from the server's environment),
bound to a role the identity holds, and read through `Lakehouse`: the SQL allow-list on the
analysed plan, the row filters, masks and the audit trail apply exactly as in process.
Answers are JSON: `columns`, `rows`, `principal`, `role`; errors are `{"error": message}`
with 401 (not signed in, bad token, role not held), 403 (refused by the policy or the
allow-list), 400 (a malformed request or condition) or 500 (the query failed while running:
its error condition only, never a message that could carry the data it read).

Analysts use `medlake.client` (standard library only): `lakehouse query` and `lakehouse
metrics query` with $LAKEHOUSE_SERVER set, `Client()` in a notebook. Requests are answered
one at a time (one Spark session); the HTTP side accepts them concurrently.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import logging
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, ParseException, PySparkException
from pyspark.sql import Row, SparkSession

from medlake.config import ConfigError, Settings
from medlake.entities import full_registry
from medlake.gold.selfservice import metric_query, metric_title
from medlake.governance.access import AccessDenied, UnknownRoleError, load_access, load_plants
from medlake.governance.identity import AuthError, IdentityConfigError, login, sign_in
from medlake.governance.read import Lakehouse, QueryResult
from medlake.governance.sqlcheck import QueryError, failure_condition, first_line
from medlake.io import TableNotFoundError
from medlake.spark import build_spark

log = logging.getLogger("medlake.queryserver")
DEFAULT_PORT = 8765
MAX_BODY = 1 << 20  # bytes of one request
MAX_ROWS = 100_000  # a larger answer is cut (and says so): the service is for answers
READ_TIMEOUT_S = 30.0  # a client that sends its request slower than this is dropped
MAX_PURPOSE = 500  # characters of a stated purpose kept


class RequestError(Exception):
    """A request the service cannot take; `status` is the HTTP status to answer with."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_value(value: Any) -> Any:
    if isinstance(value, Row):
        return {k: _json_value(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _answer(result: QueryResult, **info: Any) -> dict[str, Any]:
    rows = [[_json_value(v) for v in row] for row in result.rows[:MAX_ROWS]]
    cut = {"truncated_at": MAX_ROWS} if len(result.rows) > MAX_ROWS else {}
    return {"columns": list(result.columns), "rows": rows, **info, **cut}


class QueryService:
    """What the HTTP handler calls: sign the request in and answer it through `Lakehouse`."""

    def __init__(self, settings: Settings, spark: SparkSession | None = None) -> None:
        conf = settings.conf_dir
        self.settings = settings
        self.policy = load_access(conf)
        self.registry = full_registry(conf)
        self.plants = load_plants(conf)
        self.policy.check(self.registry, self.plants)
        self.spark = spark or build_spark(settings, app_name="medlake-query-service")
        self._lock = threading.Lock()

    def handle(
        self, path: str, token: str | None, body: Mapping[str, Any], client: str = "remote"
    ) -> dict[str, Any]:
        """The answer to one request, or `RequestError`/`AuthError`/... (see `respond`)."""
        if path not in ("/v1/query", "/v1/metric", "/v1/whoami", "/v1/login"):
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint {path}")
        if path == "/v1/login":
            hours = body.get("hours", 10.0)
            if not isinstance(hours, int | float):
                raise RequestError(HTTPStatus.BAD_REQUEST, "hours must be a number")
            token, expires, identity = login(
                self.settings,
                _text(body, "user", required=True) or "",
                _text(body, "password", required=True) or "",
                hours=float(hours),
                via="service /v1/login",
                anonymous=client,
            )
            return {"token": token, "expires": f"{expires:%Y-%m-%d %H:%M} UTC",
                    "roles": list(identity.roles)}  # fmt: skip
        purpose = (_text(body, "purpose") or "")[:MAX_PURPOSE] or None
        who = sign_in(
            self.settings,
            role=_text(body, "role"),
            token=token or "",
            act_as=_text(body, "as"),
            purpose=purpose,
            via=f"service {path}",
            policy=self.policy,
            ambient=False,
            anonymous=client,
        )
        info = {"principal": who.principal, "role": who.role}
        if path == "/v1/whoami":
            return {**info, "roles": list(who.identity.roles), "kind": who.identity.kind}
        with self._lock:  # one Spark session: one request at a time
            lh = Lakehouse(
                who=who,
                settings=self.settings,
                spark=self.spark,
                registry=self.registry,
                policy=self.policy,
                plants=self.plants,
                purpose=purpose,
            )
            if path == "/v1/query":
                sql = _text(body, "sql", required=True)
                limit = body.get("limit", 1000)
                if limit is not None and (not isinstance(limit, int) or limit < 1):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "limit must be a positive integer")
                cap = MAX_ROWS + 1  # one more than is returned, to say the answer was cut
                return _answer(lh.fetch(sql or "", limit=min(limit or cap, cap)), **info)
            by = body.get("by") or []
            if not isinstance(by, list) or not all(isinstance(b, str) for b in by):
                raise RequestError(HTTPStatus.BAD_REQUEST, "by must be a list of column names")
            as_of = _text(body, "as_of")
            metric, result = metric_query(
                lh,
                self.settings,
                _text(body, "metric", required=True) or "",
                by=by,
                where=_text(body, "where"),
                as_of=dt.date.fromisoformat(as_of) if as_of else None,
            )
            return _answer(result, title=metric_title(metric), **info)

    def respond(
        self, path: str, token: str | None, body: Mapping[str, Any], client: str = "remote"
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one request; every error is mapped, none escapes."""
        try:
            return 200, self.handle(path, token, body, client)
        except RequestError as exc:
            return exc.status, {"error": str(exc)}
        except AuthError as exc:  # audited where it was raised
            return 401, {"error": str(exc)}
        except IdentityConfigError as exc:  # the service's own set-up: logged, not shown
            log.error("identity directory: %s", exc)
            return 503, {"error": "the service cannot check identities now; see its log"}
        except (AccessDenied, UnknownRoleError, QueryError, TableNotFoundError) as exc:
            return 403, {"error": str(exc)}
        except ParseException as exc:
            return 400, {"error": f"not valid SQL: {first_line(exc)}"}
        except AnalysisException as exc:
            return 403, {"error": first_line(exc)}
        except (Py4JJavaError, PySparkException) as exc:
            cause = failure_condition(exc)
            log.warning("request %s failed while running: %s", path, cause)
            return 500, {"error": f"the query failed while running ({cause})"}
        except ConfigError as exc:  # an unknown metric, a bad dimension
            return 400, {"error": str(exc)}
        except ValueError as exc:  # a malformed date
            return 400, {"error": f"bad request: {type(exc).__name__}: {first_line(exc)[:200]}"}
        except Exception as exc:
            log.exception("request %s failed", path)
            return 500, {"error": f"internal error ({type(exc).__name__}); see the service log"}


def _text(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} must be a non-empty string")
    return value


def make_server(service: QueryService, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) that hands every POST to `service.respond`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "medlake-query-service"
        timeout = READ_TIMEOUT_S  # a slow or silent client does not hold a thread for ever

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(405, {"error": "use POST with a JSON body"})

        def do_POST(self) -> None:
            raw = self.headers.get("Content-Length") or "0"
            if not raw.isdigit() or int(raw) > MAX_BODY:
                self._send(413, {"error": f"send a Content-Length of 0 to {MAX_BODY} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(int(raw)) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except Exception:  # bad JSON, bad encoding, nesting too deep, a timeout
                self._send(400, {"error": "the body must be a JSON object"})
                return
            auth = self.headers.get("Authorization") or ""
            token = auth[7:].strip() if auth.startswith("Bearer ") else None
            client = f"remote:{self.client_address[0]}"
            self._send(*service.respond(self.path, token, body, client))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def add_cli(sub: Any) -> None:
    """Register `lakehouse serve`."""
    p = sub.add_parser(
        "serve",
        help="run the query service: analysts' governed SQL and metrics over HTTP",
        description="Run the query service as the service identity (the account that owns "
        "the storage root and the secret store): analysts connect with medlake.client "
        "(`lakehouse query` with $LAKEHOUSE_SERVER set, or Client() in a notebook) and never "
        "hold a Spark session or a path to the files. Listens on loopback by default.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = QueryService(settings)
    server = make_server(service, args.host, args.port)
    port = server.server_address[1]
    print(f"query service listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.spark.stop()
    return 0
