"""A shared Spark driver for the tasks of a night: one spark-submit, many jobs.

Every `spark-submit` of a job starts a JVM and a Spark session and imports the job's Python
(Presidio, pandas, pyarrow): about ten seconds before any work, paid by each of a night's
dozen tasks. With a connection whose extra says `"driver": "shared"`, a task instead hands
its job to a driver that is already running: this module, started once with the same
`spark-submit` (so the connection still decides master, resources and Spark settings), stays
up while tasks keep coming and exits after `session-idle-minutes` without one.

- **Same job, same result.** The server runs `lakehouse run <job> ARGS` in its own process,
  exactly as `jobs/<job>.py` would under spark-submit, with the task's `LAKEHOUSE_*`
  environment and working folder; the task's log receives the job's output and its exit
  code decides the task's state, so retries, skips (exit 75) and failures behave as before.
- **One job at a time**, in the order tasks arrive (the DAG's pool serialises them anyway).
- **A killed task kills its job.** When the task's process goes away (timeout, kill, lost
  worker) while its job runs, the server cancels the Spark jobs and exits; the retry starts
  a fresh server, so nothing of a half-run job survives in memory.
- **New code, new server.** A task whose installed code differs from the server's (any
  change to a .py file of the package) stops it and starts a new one.
- **Only this user.** The socket lives in a folder only the user can enter (mode 0700).

Measured against one spark-submit per task and against a Spark Connect server in
bench/RESULTS.md (`night`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from medlake.config import packaged

# The task's variables a job sees: the product's own, MLflow's and OpenLineage's (its API
# key). Others (cloud credentials, Hadoop, TZ) are the server's, from the task that started
# it; a change to them needs a new server (`LocalAirflow.stop_drivers`, or its idle end).
ENV_PREFIXES = ("LAKEHOUSE_", "MLFLOW_", "OPENLINEAGE_")
PER_TASK_PREFIX = "LAKEHOUSE_"  # never inherited from the server by a task that lacks them
START_TIMEOUT_S = 180.0
KILLED = 137  # exit code the client reports when the server died under its job


# ----------------------------------------------------------------------------- shared bits


def code_fingerprint() -> str:
    """Hash of every .py file's path, size and modification time in the installed packages:
    a server built from other code must not run this task's job."""
    digest = hashlib.sha256()
    for path in sorted(packaged().rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def socket_path(folder: Path, command: Sequence[str]) -> Path:
    """One server per folder and spark-submit command (master, resources, settings, Python):
    a task with another connection gets another server. Its log, pid and lock files are
    `folder/<key>.*`; the socket too, unless that path is too long for a Unix socket."""
    key = hashlib.sha256("\0".join([str(folder), *command]).encode()).hexdigest()[:12]
    path = folder / f"{key}.sock"
    if len(str(path)) > 100:  # AF_UNIX paths are limited to 108 bytes
        path = private_folder(Path(tempfile.gettempdir()) / f"medlake-{os.getuid()}") / path.name
    return path


def private_folder(folder: Path) -> Path:
    """`folder`, created for this user only; an existing folder of another user is refused
    (its sockets would be theirs to answer)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid != os.getuid():
        raise ServerError(
            f"{folder} belongs to another user; set the connection's session-dir to a folder "
            "of the Airflow worker's user"
        )
    folder.chmod(0o700)
    return folder


def _files(folder: Path, path: Path) -> Path:
    """Where the log, pid and lock of the server at socket `path` live."""
    return folder / path.stem


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def _messages(conn: socket.socket) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


# ----------------------------------------------------------------------------- client side


class ServerError(RuntimeError):
    """The shared driver could not be started or reached; the message says where its log is."""


def run_job(
    command: Sequence[str],
    folder: Path,
    argv: Sequence[str],
    *,
    echo: Callable[[str], None],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run `lakehouse <argv>` on the shared driver started by `command` (a spark-submit of
    this module), starting it first when none is running; each output line goes to `echo`.
    Returns the job's exit code."""
    folder = private_folder(folder)
    path = socket_path(folder, command)
    base = _files(folder, path)
    env = dict(os.environ if env is None else env)
    request = {
        "argv": list(argv),
        "env": {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES)},
        "cwd": str(cwd or Path.cwd()),
        "code": code_fingerprint(),
    }
    for _attempt in range(3):
        conn = _connect_or_start(command, path, base, env, echo)
        accepted = restart = False
        with conn:
            try:
                _send(conn, request)
                for message in _messages(conn):
                    if "accepted" in message:
                        accepted = True
                    elif "out" in message:
                        echo(message["out"])
                    elif "exit" in message:
                        code = int(message["exit"])
                        if code != 0:
                            echo(f"shared driver: Spark's own messages are in {_log(base)}")
                        return code
                    elif "restart" in message:
                        echo(f"shared driver: {message['restart']}; starting a new one")
                        restart = True
                        break
            except ConnectionError:
                pass  # reset: the server ended while this request waited or ran
        if accepted and not restart:
            echo(f"shared driver: the server ended under this job; its log: {_log(base)}")
            return KILLED
        # asked to restart, or not taken (the server was ending when the request came)
        _wait_gone(path)
    raise ServerError(f"the shared driver at {path} did not take the job (see {_log(base)})")


def stop(folder: Path) -> int:
    """Ask every server whose files are in `folder` to exit; returns how many were asked."""
    asked = 0
    for address in sorted(Path(folder).glob("*.addr")):
        path = Path(address.read_text(encoding="utf-8").strip())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(5)
                conn.connect(str(path))
                _send(conn, {"stop": True})
                list(_messages(conn))
                asked += 1
        except (ConnectionRefusedError, FileNotFoundError):  # nobody listens: stale files
            path.unlink(missing_ok=True)
            address.unlink(missing_ok=True)
        except OSError:  # busy with a job: it stops when idle
            pass
    return asked


def _wait_gone(path: Path, seconds: float = 30.0) -> None:
    """Until the exiting server has closed its socket (a connection made before that would
    be dropped unanswered)."""
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _log(base: Path) -> Path:
    return base.with_suffix(".log")


def _try_connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _connect_or_start(
    command: Sequence[str],
    path: Path,
    base: Path,
    env: dict[str, str],
    echo: Callable[[str], None],
) -> socket.socket:
    conn = _try_connect(path)
    if conn is not None:
        return conn
    with open(base.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
        conn = _try_connect(path)
        if conn is not None:
            return conn
        path.unlink(missing_ok=True)
        log = _log(base)
        echo(f"shared driver: starting `{' '.join(command)}` (its log: {log})")
        with log.open("a", encoding="utf-8") as out:
            server = subprocess.Popen(
                [*command, "--socket", str(path), "--files", str(base)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives this task; its own idle timeout ends it
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            conn = _try_connect(path)
            if conn is not None:
                return conn
            if server.poll() is not None:
                raise ServerError(
                    f"the shared driver exited with {server.returncode} while starting; "
                    f"its log: {log}"
                )
            time.sleep(0.2)
        server.kill()
        raise ServerError(f"the shared driver did not start within {START_TIMEOUT_S:.0f} s; {log}")


# ----------------------------------------------------------------------------- server side


class _Lines(io.TextIOBase):
    """A text stream that sends each complete line to the task (thread-safe)."""

    def __init__(self, conn: socket.socket, lock: threading.Lock) -> None:
        self._conn, self._lock, self._buffer = conn, lock, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.replace("\r", "\n").split("\n")
            for line in lines:
                with contextlib.suppress(OSError):
                    _send(self._conn, {"out": line})
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._buffer:
                with contextlib.suppress(OSError):
                    _send(self._conn, {"out": self._buffer})
                self._buffer = ""


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever sys.stderr is when a record is emitted (the running task's stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def _job_environment(env: dict[str, str], cwd: str) -> Iterator[None]:
    """The task's variables for the job's duration: the server's `LAKEHOUSE_*` are dropped
    (keys, conf folder, failpoints belong to a task), its MLflow and OpenLineage defaults
    stay unless the task sets its own."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    here = os.getcwd()
    for key in [k for k in saved if k.startswith(PER_TASK_PREFIX)]:
        del os.environ[key]
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            del os.environ[key]
        os.environ.update(saved)
        os.chdir(here)


def _watch_disconnect(conn: socket.socket, done: threading.Event, out: TextIO) -> None:
    """The task went away while its job runs: cancel Spark's work and end this server."""
    with contextlib.suppress(OSError):
        while not done.is_set():
            if not conn.recv(1):
                break
    if done.is_set():
        return
    print("shared driver: the task disconnected; cancelling its job and exiting", file=out)
    out.flush()
    with contextlib.suppress(Exception):
        from pyspark.sql import SparkSession  # noqa: PLC0415 - server side only

        session = SparkSession.getActiveSession() or SparkSession._instantiatedSession
        if session is not None:
            session.sparkContext.cancelAllJobs()
    os._exit(KILLED)


def _run_one(conn: socket.socket, request: dict[str, Any], server_log: TextIO) -> None:
    from medlake.cli import main  # noqa: PLC0415 - server side only

    lock = threading.Lock()
    stream = _Lines(conn, lock)
    done = threading.Event()
    watcher = threading.Thread(target=_watch_disconnect, args=(conn, done, server_log), daemon=True)
    watcher.start()
    started = time.monotonic()
    code = 1
    try:
        with (
            _job_environment(request["env"], request["cwd"]),
            contextlib.redirect_stdout(stream),
            contextlib.redirect_stderr(stream),
        ):
            try:
                code = main(request["argv"])
            except SystemExit as exc:  # argparse errors, or a job's own exit
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # the task reports it; the server goes on
                traceback.print_exc()
                code = 1
            finally:
                stream.flush()
    finally:
        done.set()
        _release_job_state()
    print(
        f"{time.strftime('%H:%M:%S')} job {' '.join(request['argv'])} exited {code} "
        f"after {time.monotonic() - started:.1f} s",
        file=server_log,
        flush=True,
    )
    _send(conn, {"exit": code})


_STARTUP_CONF: dict[str, str] = {}


def _gone(conn: socket.socket) -> bool:
    """True when the task closed its end (without reading or waiting)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _release_job_state() -> None:
    """What one job leaves behind: cached frames, temporary views, Spark settings it
    changed, its job description, and per-process memos of the product."""
    from pyspark.sql import SparkSession  # noqa: PLC0415 - server side only

    from medlake.io import commit, failpoints  # noqa: PLC0415 - server side only

    failpoints._passed.clear()  # "kill on the Nth time" counts within one job
    commit.code_version.cache_clear()  # the next task may name another code version
    session = SparkSession._instantiatedSession
    if session is None:
        return
    with contextlib.suppress(Exception):
        session.catalog.clearCache()
        for table in session.catalog.listTables():
            if table.isTemporary:
                session.catalog.dropTempView(table.name)
    with contextlib.suppress(Exception):
        session.sparkContext.setJobDescription(None)  # type: ignore[arg-type]
    for key, value in dict(session.conf.getAll).items():
        with contextlib.suppress(Exception):
            if key not in _STARTUP_CONF:
                session.conf.unset(key)
            elif value != _STARTUP_CONF[key]:
                session.conf.set(key, _STARTUP_CONF[key])

    gc.collect()


def serve(path: Path, base: Path, idle_seconds: float, env_name: str | None) -> None:
    """Accept tasks on `path` until idle for `idle_seconds` (or asked to stop)."""
    from medlake.config import load_settings  # noqa: PLC0415 - server side only
    from medlake.spark import build_spark  # noqa: PLC0415 - server side only

    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    spark = build_spark(load_settings(env_name), app_name="medlake-shared-driver")  # once
    _STARTUP_CONF.update(dict(spark.conf.getAll))
    # imported here, not inside a job: they set process-wide defaults (MLflow's offline
    # settings) and handlers (Presidio's logger) that must not belong to one job
    import medlake.governance.masking  # noqa: PLC0415 - server side only
    import medlake.ml.tracking  # noqa: F401, PLC0415 - server side only

    code = code_fingerprint()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(8)
    listener.settimeout(idle_seconds)
    pid_file, address = base.with_suffix(".pid"), base.with_suffix(".addr")
    pid_file.write_text(str(os.getpid()))
    address.write_text(str(path))
    server_log = sys.stdout
    print(f"shared driver: listening on {path} (code {code})", flush=True)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                print(f"shared driver: idle for {idle_seconds:.0f} s, exiting", flush=True)
                return
            with conn:
                conn.settimeout(None)
                message = next(_messages(conn), None)
                if message is None:
                    continue
                if message.get("stop"):
                    print("shared driver: asked to stop", flush=True)
                    return
                if message.get("code") != code:
                    _send(conn, {"restart": "the installed code changed since it started"})
                    return
                if _gone(conn):  # the task ended while its request waited (a timeout)
                    print("shared driver: a waiting task went away; skipped", flush=True)
                    continue
                _send(conn, {"accepted": True})
                _run_one(conn, message, server_log)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        address.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--files", type=Path, help="log, pid and address files: FILES.*")
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    if args.idle_seconds <= 0:
        parser.error("--idle-seconds must be above 0")
    serve(args.socket, args.files or args.socket.with_suffix(""), args.idle_seconds, args.env)


if __name__ == "__main__":
    main()
