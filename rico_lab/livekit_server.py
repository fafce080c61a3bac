"""The embedded livekit-server: found, configured for loopback, started, watched, stopped."""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from livekit import api

from .errors import LiveKitServerError

#: The tag the project's setup installs; tags without `replace` directives build with go install.
LIVEKIT_SERVER_VERSION = "v1.13.5"
INSTALL_HINT = (
    "install it with `make setup` (runs `go install "
    f"github.com/livekit/livekit-server/cmd/server@{LIVEKIT_SERVER_VERSION}` into .tools/bin), "
    "put a livekit-server on PATH, or set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
    "to use a server of your own"
)

_PR_SET_PDEATHSIG = 1
WORKDIR_PREFIX = "rico_lab_lk_"


def tools_dir() -> Path:
    """The project-local folder setup installs binaries into (``RICO_LAB_TOOLS`` overrides)."""
    env = os.environ.get("RICO_LAB_TOOLS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".tools" / "bin"


def find_binary() -> Path:
    """Locate livekit-server: the project's tools folder first, then PATH.

    Raises:
        LiveKitServerError: if there is none, with the ways to get one.
    """
    local = tools_dir() / "livekit-server"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    raise LiveKitServerError(
        f"livekit-server was not found in {tools_dir()} nor on PATH: " + INSTALL_HINT
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Whether a server could listen on ``port`` of 127.0.0.1 right now.

    SO_REUSEADDR as servers set it: connections in TIME-WAIT do not keep a port busy.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the kernel process dies.

    atexit covers a normal exit; this covers SIGKILL and crashes, so no orphan keeps the port.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()


@dataclass(eq=False)
class LiveKitServer:
    """A livekit-server process on 127.0.0.1 with fresh credentials, owned by this process.

    Args:
        port: HTTP/WebSocket port; 0 picks a free one (and retries if another process takes it).
        binary: livekit-server executable; default found by :func:`find_binary`.
    """

    port: int = 0
    binary: Path | None = None
    api_key: str = field(default_factory=lambda: "rico_" + secrets.token_hex(6))
    api_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    udp_port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _binary: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The ws:// URL clients and the agent worker connect to."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        """The server's log (warnings and errors) while it runs; removed with its config."""
        if self._workdir is None:
            return None
        return Path(self._workdir.name) / "livekit-server.log"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers its health check.

        Raises:
            LiveKitServerError: binary missing, a requested port in use, or the process died.
        """
        binary = self.binary or find_binary()
        fixed = self.port != 0
        if fixed and not port_is_free(self.port):
            raise LiveKitServerError(
                f"port {self.port} on 127.0.0.1 is in use: pick another port or pass port=0 "
                "for a free one"
            )
        for attempt in range(3):
            if not fixed:
                self.port = free_port()
            self.udp_port = free_port(socket.SOCK_DGRAM)
            try:
                self._spawn(binary, timeout)
                return
            except LiveKitServerError as exc:
                if fixed or attempt == 2 or "address already in use" not in str(exc):
                    raise

    def _spawn(self, binary: Path, timeout: float) -> None:
        self._launch(binary)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(binary)
            if self._healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise LiveKitServerError(f"livekit-server did not become ready within {timeout:.0f} s")

    def _launch(self, binary: Path) -> None:
        """Start the process, without waiting for it to be ready.

        It dies with the thread that starts it (PR_SET_PDEATHSIG): that thread must live as
        long as the server should.
        """
        _remove_orphaned_workdirs()
        self._workdir = tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX)
        folder = Path(self._workdir.name)
        (folder / "owner").write_text(str(os.getpid()))
        config = folder / "livekit.yaml"
        config.write_text(yaml.safe_dump(self._config()))
        config.chmod(0o600)
        assert self.log_path is not None
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(binary), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self._binary = binary
        _live.add(self)

    def log_tail(self, lines: int = 8) -> str:
        """The server's last log lines (warnings and errors: it logs at "warn"), or ""."""
        path = self.log_path
        if path is None:
            return ""
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self, binary: Path) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            output = self.log_tail(30)
            self._cleanup()
            raise LiveKitServerError(
                f"livekit-server ({binary}) exited with code {self._proc.returncode}:\n{output}"
            )

    async def keep_running(
        self,
        report: Callable[[str], None],
        *,
        on_down: Callable[[], None] | None = None,
        on_up: Callable[[], Awaitable[None]] | None = None,
        every: float = 0.5,
        timeout: float = 20.0,
    ) -> None:
        """Restart the server whenever it exits without :meth:`stop`.

        It comes back on the same port with the same keys, so URLs and tokens stay valid and
        clients can reconnect. Runs until cancelled, on a loop whose thread outlives the
        server. ``report`` is told of each exit and restart; after three failed restarts in
        a row it gives up. ``on_down`` runs when an exit is found, ``on_up`` after each
        restart.
        """
        failures = 0
        while True:
            await asyncio.sleep(every)
            proc, binary = self._proc, self._binary
            if proc is None or proc.poll() is None or binary is None:
                continue
            if failures == 0:
                report(
                    f"livekit-server exited with code {proc.returncode}; "
                    f"restarting it on port {self.port}"
                )
                if on_down is not None:
                    on_down()
            self._cleanup()
            self.udp_port = free_port(socket.SOCK_DGRAM)
            try:
                self._launch(binary)  # on this thread: the server dies with it
                deadline = time.monotonic() + timeout
                while not await asyncio.to_thread(self._healthy):
                    self._check_alive(binary)
                    if time.monotonic() > deadline:
                        raise LiveKitServerError("livekit-server did not become ready")
                    await asyncio.sleep(0.05)
            except LiveKitServerError as exc:
                if self._proc is not None and self._proc.poll() is None:
                    self._proc.kill()
                    self._proc.wait()
                failures += 1
                if failures == 3:
                    report(f"livekit-server could not be restarted: {exc}")
                    return
                continue  # the process is down: the next round tries again
            failures = 0
            report(f"livekit-server restarted on port {self.port}")
            if on_up is not None:
                await on_up()

    def _config(self) -> dict[str, object]:
        """Loopback only: HTTP and the UDP media mux on 127.0.0.1, no TCP/TURN, no STUN."""
        return {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                "udp_port": self.udp_port,
                "tcp_port": 0,
                "node_ip": "127.0.0.1",
                "use_external_ip": False,
                "enable_loopback_candidate": True,
                "interfaces": {"includes": ["lo"]},
                "ips": {"includes": ["127.0.0.1/32"]},
                "stun_servers": [],
            },
            "turn": {"enabled": False},
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": "warn"},
        }

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=0.5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process and remove its config; safe to call twice.

        livekit-server drains gently on a first SIGTERM (which can take many seconds even
        with no rooms) and stops at once on a second; a lab's rooms are throwaway, so it gets
        a short grace, then the second signal, then SIGKILL.
        """
        proc = self._proc
        self._binary = None  # stopped on purpose: keep_running leaves it stopped
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        _live.discard(self)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


_live: set[LiveKitServer] = set()


def _remove_orphaned_workdirs() -> None:
    """Remove the folders of servers whose process died without cleaning up.

    A kernel that is killed or restarted takes its server with it (PR_SET_PDEATHSIG) but
    never runs the cleanup, and each folder keeps a config with that server's API secret.
    A folder names its owner's pid; one whose owner is gone is removed. A folder without
    the file (just being made) is left alone.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((folder / "owner").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no owner file yet, or another user's process that is alive


@atexit.register
def _stop_all() -> None:
    """Kernel exit: stop every server this process started."""
    for server in list(_live):
        server.stop()


#: The environment that names a LiveKit server of the user's own (URL, key, secret).
LIVEKIT_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


def livekit_from_env() -> tuple[str, str, str]:
    """The user's LiveKit server: ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``."""
    url = os.environ["LIVEKIT_URL"]
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not key or not secret:
        raise LiveKitServerError(
            f"LIVEKIT_URL is set ({url}) but LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not: "
            "set both (a lab: or unset LIVEKIT_URL to use the embedded server)"
        )
    return url, key, secret


async def check_livekit(url: str, key: str, secret: str) -> None:
    """Fail fast, naming LIVEKIT_URL, if the user's server is unreachable or refuses the key."""
    lk = api.LiveKitAPI(url, key, secret, timeout=aiohttp.ClientTimeout(total=5))
    try:
        await lk.room.list_rooms(api.ListRoomsRequest())
    except api.TwirpError as exc:
        raise LiveKitServerError(
            f"LiveKit server at LIVEKIT_URL={url} refused LIVEKIT_API_KEY/LIVEKIT_API_SECRET: "
            f"{exc.message}"
        ) from None
    except Exception as exc:
        raise LiveKitServerError(
            f"LiveKit server at LIVEKIT_URL={url} is unreachable ({exc or type(exc).__name__}): "
            "check the URL (a lab: or unset LIVEKIT_URL to use the embedded server)"
        ) from None
    finally:
        await lk.aclose()
