import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rico_lab.errors import LiveKitServerError
from rico_lab.livekit_server import LiveKitServer, port_is_free

pytestmark = pytest.mark.integration


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it holds no port, but count it as gone only once reaped
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def wait_gone(pid: int, port: int, timeout: float = 10) -> bool:
    """The process is gone and its port free (a dying process's threads close it last)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_exists(pid) and port_is_free(port):
            return True
        time.sleep(0.05)
    return False


def test_starts_on_loopback_with_fresh_keys_and_stops_cleanly():
    server = LiveKitServer()
    server.start()
    pid, port = server.pid, server.port
    assert pid and server.url == f"ws://127.0.0.1:{port}"
    assert server.api_key not in {"devkey", "APIdevkey"} and len(server.api_secret) >= 32
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as reply:
        assert reply.status == 200
    listening = subprocess.run(["ss", "-Hlntup"], capture_output=True, text=True).stdout
    ours = [line for line in listening.splitlines() if f"pid={pid}," in line]
    assert ours, listening
    assert all("127.0.0.1:" in line.split()[4] for line in ours), ours
    server.stop()
    assert server.pid is None and not process_exists(pid)
    assert port_is_free(port)
    server.stop()  # a second stop is harmless


def test_two_servers_side_by_side_get_their_own_ports_and_keys():
    a, b = LiveKitServer(), LiveKitServer()
    a.start()
    b.start()
    try:
        assert a.port != b.port and a.udp_port != b.udp_port
        assert a.api_secret != b.api_secret
    finally:
        a.stop()
        b.stop()


def test_port_in_use_is_named():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LiveKitServerError, match=f"port {port} on 127.0.0.1 is in use"):
            LiveKitServer(port=port).start()


def test_missing_binary_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("RICO_LAB_TOOLS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LiveKitServerError, match=r"not found.*make setup.*go install.*LIVEKIT_URL"):
        LiveKitServer().start()


def test_server_and_its_secret_go_with_a_killed_kernel():
    code = (
        "from rico_lab.livekit_server import LiveKitServer\n"
        "s = LiveKitServer(); s.start(); print(s.pid, s.port, s.log_path.parent, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    kernel = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid, port, folder = kernel.stdout.readline().split()
        assert process_exists(int(pid)) and (Path(folder) / "livekit.yaml").is_file()
        kernel.send_signal(signal.SIGKILL)
        kernel.wait()
        assert wait_gone(int(pid), int(port)), "livekit-server or its port outlived the kernel"
        assert Path(folder).is_dir()  # a killed kernel cleans up nothing itself
        # the next server to start removes it, and leaves a live server's folder alone
        live, next_one = LiveKitServer(), LiveKitServer()
        live.start()
        next_one.start()
        try:
            assert not Path(folder).exists(), "the dead kernel's config and secret were left"
            assert live.log_path is not None and live.log_path.parent.is_dir()
        finally:
            live.stop()
            next_one.stop()
        assert live.log_path is None
    finally:
        kernel.kill()
        kernel.stdout.close()


def test_server_stops_on_normal_interpreter_exit():
    code = (
        "from rico_lab.livekit_server import LiveKitServer\n"
        "s = LiveKitServer(); s.start(); print(s.pid, s.port, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid, port = map(int, out.stdout.split())
    assert wait_gone(pid, port)
