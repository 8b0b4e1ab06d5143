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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

PACKAGES = ("lakehouse", "governance", "jobs")
ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIXES = ("LAKEHOUSE_", "MLFLOW_")
START_TIMEOUT_S = 180.0
KILLED = 137  # exit code the client reports when the server died under its job


# ----------------------------------------------------------------------------- shared bits


def code_fingerprint() -> str:
    """Hash of every .py file's path, size and modification time in the installed packages:
    a server built from other code must not run this task's job."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def socket_path(folder: Path, command: Sequence[str]) -> Path:
    """One server per spark-submit command (master, resources, settings, Python): a task
    with another connection gets another server."""
    key = hashlib.sha256("\0".join(command).encode()).hexdigest()[:12]
    path = folder / f"{key}.sock"
    if len(str(path)) > 100:  # AF_UNIX paths are limited to 108 bytes
        path = private_folder(Path(tempfile.gettempdir()) / f"medlake-{os.getuid()}") / path.name
    return path


def private_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


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
    path = socket_path(private_folder(folder), command)
    env = dict(os.environ if env is None else env)
    request = {
        "argv": list(argv),
        "env": {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES)},
        "cwd": str(cwd or Path.cwd()),
        "code": code_fingerprint(),
    }
    for _attempt in range(2):
        conn = _connect_or_start(command, path, env, echo)
        with conn:
            _send(conn, request)
            for message in _messages(conn):
                if "out" in message:
                    echo(message["out"])
                elif "exit" in message:
                    return int(message["exit"])
                elif "restart" in message:
                    echo(f"shared driver: {message['restart']}; starting a new one")
                    _wait_gone(path)
                    break
            else:
                log = _log_path(path)
                echo(f"shared driver: the server ended under this job; its log: {log}")
                return KILLED
    raise ServerError(f"the shared driver at {path} refused the job twice (see {_log_path(path)})")


def stop(folder: Path) -> int:
    """Ask every server whose socket is in `folder` to exit; returns how many were asked."""
    asked = 0
    for path in sorted(Path(folder).glob("*.sock")):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(5)
                conn.connect(str(path))
                _send(conn, {"stop": True})
                list(_messages(conn))
                asked += 1
        except OSError:
            path.unlink(missing_ok=True)
    return asked


def _wait_gone(path: Path, seconds: float = 30.0) -> None:
    """Until the exiting server has closed its socket (a connection made before that would
    be dropped unanswered)."""
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _log_path(path: Path) -> Path:
    return path.with_suffix(".log")


def _try_connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _connect_or_start(
    command: Sequence[str], path: Path, env: dict[str, str], echo: Callable[[str], None]
) -> socket.socket:
    conn = _try_connect(path)
    if conn is not None:
        return conn
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
        conn = _try_connect(path)
        if conn is not None:
            return conn
        path.unlink(missing_ok=True)
        log = _log_path(path)
        echo(f"shared driver: starting `{' '.join(command)}` (its log: {log})")
        with log.open("a", encoding="utf-8") as out:
            server = subprocess.Popen(
                [*command, "--socket", str(path)],
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
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    here = os.getcwd()
    for key in saved:
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
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession() or SparkSession._instantiatedSession
        if session is not None:
            session.sparkContext.cancelAllJobs()
    os._exit(KILLED)


def _run_one(conn: socket.socket, request: dict[str, Any], server_log: TextIO) -> None:
    from lakehouse.cli import main

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
            except SystemExit as exc:  # argparse errors
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # the task reports it; the server goes on
                import traceback

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


def _release_job_state() -> None:
    """What one job leaves behind in the session: cached frames and temporary views."""
    from pyspark.sql import SparkSession

    session = SparkSession._instantiatedSession
    if session is None:
        return
    from lakehouse.io import failpoints

    failpoints._passed.clear()  # "kill on the Nth time" counts within one job
    with contextlib.suppress(Exception):
        session.catalog.clearCache()
        for table in session.catalog.listTables():
            if table.isTemporary:
                session.catalog.dropTempView(table.name)
    import gc

    gc.collect()


def serve(path: Path, idle_seconds: float, env_name: str | None) -> None:
    """Accept tasks on `path` until idle for `idle_seconds` (or asked to stop)."""
    from lakehouse.config import load_settings
    from lakehouse.spark import build_spark

    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    build_spark(load_settings(env_name), app_name="medlake-shared-driver")  # warm, once
    code = code_fingerprint()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(8)
    listener.settimeout(idle_seconds)
    pid_file = path.with_suffix(".pid")
    pid_file.write_text(str(os.getpid()))
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
                _run_one(conn, message, server_log)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    serve(args.socket, args.idle_seconds, args.env)


if __name__ == "__main__":
    main()
