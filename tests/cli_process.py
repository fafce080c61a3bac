"""A ``rico-lab`` command run as a user runs it: the console script, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rico_lab.livekit_server import LiveKitServer

RICO_LAB = Path(sys.executable).with_name("rico-lab")
ROLES = Path(__file__).resolve().parent.parent / "roles"


def livekit_env(livekit: LiveKitServer) -> dict[str, str]:
    return os.environ | {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }


class Command:
    """``rico-lab ARGS`` in a child process; its output is kept line by line."""

    def __init__(self, livekit: LiveKitServer, *args: str | Path, ready: str) -> None:
        self.proc = subprocess.Popen(
            [RICO_LAB, *args],
            env=livekit_env(livekit),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(ready)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The first line of output containing ``text``, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        tail = "\n".join(self.lines[-30:])
        raise AssertionError(f"rico-lab never printed {text!r}; its output ends:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def worker(livekit: LiveKitServer, runs: Path, *options: str) -> Iterator[Command]:
    """``rico-lab worker`` on ``livekit``, registered when this yields."""
    command = Command(
        livekit, "worker", "--roles", ROLES, "--runs", runs, "--http-port", "0",
        "--load-threshold", "inf",  # a busy CI machine still gets its agents
        *options, ready="rico-lab worker: serving",
    )  # fmt: skip
    try:
        yield command
    except BaseException:
        # shown with the failure: what the worker said is most of what went wrong
        print("rico-lab worker's output ends:", *command.lines[-40:], sep="\n")
        raise
    finally:
        command.stop()
