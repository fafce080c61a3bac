import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


# No route out: loopback, plus one interface with a documentation-range address of its own,
# because WebRTC clients never gather candidates on loopback (a machine with no interface
# but lo cannot make a peer connection at all, to any server).
NAMESPACE_SETUP = (
    "ip link set lo up && ip link add rico0 type veth peer name rico1 && "
    "ip addr add 192.0.2.1/24 dev rico0 && ip link set rico0 up && ip link set rico1 up"
)


def test_a_conversation_needs_no_network():
    """Nothing is downloaded or looked up at run time: no weights, no hub, no STUN."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.fail("this test needs `unshare -n` (root, or user namespaces) to cut the network")
    script = f"{NAMESPACE_SETUP} && exec {sys.executable} {HERE / 'offline_conversation.py'}"
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(HERE), "HOME": str(Path.home())},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OUTSIDE []" in result.stdout
