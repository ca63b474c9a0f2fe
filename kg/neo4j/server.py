"""The local Neo4j that kgrec builds and starts itself.

A Java launcher (``kg/neo4j/launcher``, built with Maven on first use) runs Neo4j Community
5.26 embedded with the Bolt connector on. :class:`LocalNeo4j` starts it in the background,
waits until Bolt answers, records its pid in ``<home>/server.json`` and stops it cleanly
(SIGTERM runs the launcher's shutdown hook).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ingest.atomic import write_atomic
from kg.neo4j.maven import MavenBuildError, build_maven_project, require_tool
from kg.neo4j.settings import DEFAULT_PORT, Neo4jSettings

__all__ = [
    "LAUNCHER_DIR",
    "LocalNeo4j",
    "Neo4jServerError",
    "ServerInfo",
    "build_launcher",
]

LAUNCHER_DIR = Path(__file__).resolve().parent / "launcher"
_MAIN_CLASS = "io.kgrec.launcher.Launcher"
_JAR = "kgrec-neo4j-launcher.jar"
#: The JVM flags Neo4j's own distribution starts with (those that matter embedded and to its tools).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
)


class Neo4jServerError(RuntimeError):
    """The local Neo4j could not be built, started or stopped; the message says why in one line."""


@dataclass(frozen=True)
class ServerInfo:
    """A running local server, as recorded in ``<home>/server.json``."""

    pid: int
    uri: str
    port: int
    home: str
    auth: bool
    started_at: float
    ready_seconds: float | None = None
    heap: str | None = None
    pagecache: str | None = None


def _require(tool: str, hint: str) -> str:
    try:
        return require_tool(tool, hint)
    except MavenBuildError as exc:
        raise Neo4jServerError(str(exc)) from None


def build_launcher(launcher_dir: Path = LAUNCHER_DIR, *, force: bool = False) -> Path:
    """Build the launcher with Maven unless an up-to-date build exists (:mod:`kg.neo4j.maven`).

    Returns:
        The launcher's ``target`` folder (the jar plus ``lib/`` with every runtime jar).
    """
    target = launcher_dir / "target"
    try:
        build_maven_project(launcher_dir, target / _JAR, what="the Neo4j launcher", force=force)
    except MavenBuildError as exc:
        raise Neo4jServerError(str(exc)) from None
    return target


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_launcher(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _pid_alive(pid)
    return _MAIN_CLASS.encode() in cmdline


def _port_free(address: str, port: int) -> bool:
    """True when nothing listens on ``address:port`` (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class LocalNeo4j:
    """The project's own Neo4j server in ``home``.

    Args:
        home: the store folder (databases, logs, ``password``, ``server.json``).
        port: Bolt port.
        address: listen address; loopback by default.
        heap: JVM heap (``-Xmx``), e.g. ``"1g"``.
        pagecache: Neo4j page cache size, e.g. ``"512m"``.
        auth: require a password. Only throwaway test databases should turn it off.
        password: the ``neo4j`` user's password; when ``None`` one is generated once and kept in
            ``<home>/password`` (mode 0600).
        launcher_dir: where the Maven launcher project lives.
    """

    def __init__(
        self,
        home: str | Path,
        *,
        port: int = DEFAULT_PORT,
        address: str = "127.0.0.1",
        heap: str = "1g",
        pagecache: str = "512m",
        auth: bool = True,
        password: str | None = None,
        launcher_dir: Path = LAUNCHER_DIR,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = port
        self.address = address
        self.heap = heap
        self.pagecache = pagecache
        self.auth = auth
        self._password = password
        self.launcher_dir = launcher_dir
        self._proc: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- paths
    @property
    def state_file(self) -> Path:
        """``<home>/server.json``: pid and URI of the running server."""
        return self.home / "server.json"

    @property
    def password_file(self) -> Path:
        """``<home>/password``: the generated password, readable only by its owner."""
        return self.home / "password"

    @property
    def log_file(self) -> Path:
        """``<home>/logs/launcher.log``: the launcher's standard output and error."""
        return self.home / "logs" / "launcher.log"

    # -------------------------------------------------------------- password
    def password(self) -> str:
        """The ``neo4j`` user's password: the one given, else the stored one, else a new one."""
        if self._password:
            return self._password
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        new = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new + "\n")
        return new

    def settings(self, info: ServerInfo | None = None) -> Neo4jSettings:
        """Driver settings for this server (running or about to run)."""
        uri = info.uri if info else f"bolt://{self.address}:{self.port}"
        if not self.auth:
            return Neo4jSettings(uri=uri, user=None)
        return Neo4jSettings(uri=uri, user="neo4j", password=self.password())

    # ----------------------------------------------------------------- state
    def status(self) -> ServerInfo | None:
        """The running server, or ``None``. A stale ``server.json`` is removed."""
        if not self.state_file.exists():
            return None
        try:
            info = ServerInfo(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError):
            self.state_file.unlink(missing_ok=True)
            return None
        if _pid_alive(info.pid) and _is_launcher(info.pid):
            return info
        self.state_file.unlink(missing_ok=True)
        return None

    # ----------------------------------------------------------------- start
    def start(self, *, timeout: float = 180.0) -> ServerInfo:
        """Build the launcher if needed, start the server, and wait until Bolt answers.

        Raises:
            Neo4jServerError: already running on this home, port taken, ``java``/``mvn``
                missing, or the server did not come up (the launcher log's tail is included).
        """
        running = self.status()
        if running is not None:
            raise Neo4jServerError(
                f"Neo4j is already running on home {self.home} at {running.uri} "
                f"(pid {running.pid}); stop it with 'kgrec neo4j stop --home {self.home}'"
            )
        java = _require(
            "java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jdk-headless)"
        )
        if not _port_free(self.address, self.port):
            raise Neo4jServerError(
                f"port {self.port} on {self.address} is already in use; pick another with --port"
            )
        target = build_launcher(self.launcher_dir)
        self._private_home()
        env = dict(os.environ)
        env.pop("KGREC_NEO4J_PASSWORD", None)
        if self.auth:
            env["KGREC_NEO4J_PASSWORD"] = self.password()
        cmd = [
            java,
            f"-Xmx{self.heap}",
            *JVM_FLAGS,
            "-cp",
            f"{target / _JAR}{os.pathsep}{target / 'lib' / '*'}",
            _MAIN_CLASS,
            "--home", str(self.home),
            "--port", str(self.port),
            "--address", self.address,
            "--auth", "true" if self.auth else "false",
            "--pagecache", self.pagecache,
        ]  # fmt: skip
        started = time.time()
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        try:
            # umask 077: every file the JVM creates (store, logs, auth) is its owner's alone
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True, umask=0o077,
            )  # fmt: skip
        finally:
            log.close()
        info = ServerInfo(
            pid=self._proc.pid,
            uri=f"bolt://{self.address}:{self.port}",
            port=self.port,
            home=str(self.home),
            auth=self.auth,
            started_at=started,
            heap=self.heap,
            pagecache=self.pagecache,
        )
        self._write_state(info)
        try:
            self._wait_ready(info, started + timeout)
        except BaseException:
            self._kill(info.pid)
            self.state_file.unlink(missing_ok=True)
            raise
        info = ServerInfo(**{**info.__dict__, "ready_seconds": round(time.time() - started, 3)})
        self._write_state(info)
        return info

    def _private_home(self) -> None:
        """Create the home (and its logs folder) readable by this user only, and take group and
        other access away from everything an older kgrec left in it (mode 0644 files)."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_file.parent.mkdir(mode=0o700, exist_ok=True)
        for root, dirs, files in os.walk(self.home):
            for name in (".", *dirs, *files):
                path = os.path.join(root, name)
                mode = os.lstat(path).st_mode
                if mode & 0o077 and not stat.S_ISLNK(mode):
                    os.chmod(path, stat.S_IMODE(mode) & 0o700)

    def _write_state(self, info: ServerInfo) -> None:
        write_atomic(self.state_file, json.dumps(info.__dict__, indent=2), mode=0o600)

    def _log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _wait_ready(self, info: ServerInfo, deadline: float) -> None:
        from kg.neo4j.driver import open_driver

        settings = self.settings(info)
        last_error: Exception | None = None
        while time.time() < deadline:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise Neo4jServerError(
                    f"Neo4j exited with code {code} while starting; see {self.log_file}:\n"
                    + self._log_tail()
                )
            if _port_free(self.address, self.port):
                time.sleep(0.2)  # poll interval while waiting for the port to be bound
                continue
            try:
                with open_driver(settings):
                    return
            except Exception as exc:
                last_error = exc
                time.sleep(0.2)  # poll interval while Bolt finishes starting
        raise Neo4jServerError(
            f"Neo4j did not answer on {info.uri} within the time limit "
            f"(last error: {last_error}); see {self.log_file}"
        )

    # ------------------------------------------------------------------ stop
    def stop(self, *, timeout: float = 90.0) -> bool:
        """Stop the server cleanly (SIGTERM, then SIGKILL after ``timeout`` seconds).

        Returns:
            True when a server was running and is now stopped, False when none was running.
        """
        info = self.status()
        if info is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
        if not self._wait_exit(info.pid, timeout):
            self._kill(info.pid)
        self.state_file.unlink(missing_ok=True)
        return True

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)  # poll interval: another process's child cannot be waited on
        return False

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 30.0)
