import itertools
import json
import signal
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from rtc_participant import VoiceParticipant
from test_livekit_server import wait_gone

from rico_lab.local_model.speech import synthesize
from rico_lab.protocol import JoinInfo

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    errors = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []


@pytest.fixture
def kernel():
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOKS))
    yield manager, client
    client.stop_channels()
    if manager.has_kernel:
        manager.shutdown_kernel(now=True)


def run(client, code, timeout=60.0):
    """Execute ``code`` in the kernel and return what it printed."""
    printed = []

    def on_output(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "execute_result":
            printed.append(msg["content"]["data"]["text/plain"])
        elif msg["msg_type"] == "error":
            printed.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=on_output)
    assert reply["content"]["status"] == "ok", "".join(printed)
    return "".join(printed)


def notebook_code(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.solo  # gaps in the audio: measured with the machine's attention
def test_agent_talks_while_a_cell_blocks_the_kernel(kernel, tmp_path):
    """The lab runs inside a real ipykernel; a running cell must not stop the conversation."""
    manager, client = kernel
    start_lab, talk, _busy_cell = notebook_code("01_talk.ipynb")
    run(client, start_lab)
    run(client, talk)
    fields = json.loads(
        run(
            client,
            "import json\n"
            "keys = ('url', 'token', 'room', 'identity', 'role')\n"
            "print(json.dumps({k: getattr(client, k) for k in keys}))",
        )
    )
    server_pid, server_port = map(
        int, run(client, "print(lab.livekit_server.pid, lab.livekit_server.port)").split()
    )

    release = tmp_path / "release"
    blocking_cell = (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(release)!r}).exists():\n"
        "    time.sleep(0.2)\n"
        "print('cell done')"
    )
    msg_id = client.execute(blocking_cell)
    p = VoiceParticipant(JoinInfo(**fields), frame_ms=10)
    p.connect()
    try:
        p.wait_for("the greeting", p.greeted)
        sent = p.say(synthesize("Tell me something about the notebook."), silence_after=1.5)
        p.wait_for("the reply", lambda: p.replied(1))
        p.wait_for("reply audio", lambda: p.speech_seconds(since=sent) > 1.0)
    finally:
        p.close()
    # the audio of each utterance flowed frame after frame (long gaps only between them)
    speech = [h for h in p.heard if h.speech_s > 0]
    gaps = sorted(b.at - a.at for a, b in itertools.pairwise(speech))
    assert gaps[len(gaps) * 9 // 10] < 0.1
    # the cell was still blocking the kernel all along: its reply comes only now
    assert not _has_reply(client, msg_id, timeout=0.5)
    release.touch()
    assert _has_reply(client, msg_id, timeout=10)

    # a kernel that dies takes its livekit-server with it
    manager.signal_kernel(signal.SIGKILL)
    assert wait_gone(server_pid, server_port), "livekit-server outlived the killed kernel"


LINE = (
    "the quick brown fox jumps over the lazy dog and then runs across the field and over "
    "the hill and through the woods and past the river and the old mill until it reaches "
    "the farm where the hens are sleeping in the barn"
)
COMPUTING_CELL = """\
import sys, time
end = time.perf_counter() + 9
while time.perf_counter() < end:
    sum(i * i for i in range(2000))
print(sys.getswitchinterval())"""


@pytest.mark.solo  # gaps in the audio: measured with the machine's attention
def test_the_agent_speaks_on_while_a_cell_computes(kernel):
    """Pure-Python work in a cell holds the GIL; the agent's threads still get it in time.

    At Python's default switch interval the reply stopped for seconds at a time behind such
    a cell (benchmarks/browser_kernel.py); a lab shortens the interval while cells run.
    """
    _, client = kernel
    start_lab, talk, _busy_cell = notebook_code("01_talk.ipynb")
    run(client, start_lab)
    run(client, talk)
    keys = "('url', 'token', 'room', 'identity', 'role')"
    fields = json.loads(
        run(client, f"import json\nprint(json.dumps({{k: getattr(client, k) for k in {keys}}}))")
    )
    p = VoiceParticipant(JoinInfo(**fields), frame_ms=10)
    p.connect()
    try:
        p.wait_for("the greeting", p.greeted)
        p.wait_for(
            "the greeting's end", lambda: p.agent_attributes.get("lk.agent.state") == "listening"
        )
        msg_id = client.execute(COMPUTING_CELL)
        time.sleep(0.5)
        sent = time.monotonic()
        p.type(LINE)
        p.wait_for("the reply", lambda: p.speech_seconds(since=sent) > 0.5, timeout=10)
        assert not _has_reply(client, msg_id, timeout=6), "the cell ended too soon to tell"
        until = time.monotonic()
    finally:
        p.close()
    loud = [h for h in p.heard if sent < h.at < until and h.speech_s > 0]
    # the line's longest pauses are the local model's "Turn 1: you wrote:" (about 0.35 s);
    # a stall behind the cell lasted seconds
    assert max(b.at - a.at for a, b in itertools.pairwise(loud)) < 0.6
    assert sum(h.speech_s for h in loud) > 4.0  # seconds of speech while the cell computed
    assert _has_reply(client, msg_id, timeout=30)
    # while a cell runs (and only then): a cell after lab.close() runs at Python's default
    interval_us = "print(round(sys.getswitchinterval() * 1e6))"
    assert run(client, interval_us) == "200\n"
    run(client, "lab.close()")
    assert run(client, interval_us) == "5000\n"
    run(client, "lab = rico_lab.Lab(smooth_busy_cells=False)")
    assert run(client, interval_us) == "5000\n"


# threads started in Python; not livekit's native threads that call back into it (Dummy-N),
# nor tqdm's monitor (tqdm's own, started by any bar, even a disabled one)
THREADS = (
    "import threading\n"
    "print(sorted(t.name for t in threading.enumerate()\n"
    "             if not isinstance(t, threading._DummyThread) and t.name != 'tqdm_monitor'))"
)


def test_an_interrupt_stops_the_cell_not_the_lab_and_close_or_restart_leave_nothing(kernel):
    manager, client = kernel
    start_lab = notebook_code("01_talk.ipynb")[0]
    before = run(client, THREADS)
    run(client, start_lab)
    server_pid, server_port = map(
        int, run(client, "print(lab.livekit_server.pid, lab.livekit_server.port)").split()
    )
    # the stop button interrupts the running cell; the lab's threads go on. (Without
    # stop_on_error=False ipykernel would abort requests that reach it in the moment after
    # the error: the next run() could come back "aborted", never having run.)
    msg_id = client.execute("import time\ntime.sleep(60)", stop_on_error=False)
    time.sleep(1)
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    printed = run(
        client,
        "from rico_lab.evaluation.rehearsal import Script\n"
        "r = lab.rehearse(['demo'], Script.from_dict({'turns': [{'say': 'still here?'}]}), "
        "progress=False)\n"
        "print(r.results.reply[0])",
    )
    assert "you wrote: still here?" in printed
    # close: the lab's threads end, its server and port are gone
    run(client, "lab.close()")
    deadline = time.monotonic() + 10
    while run(client, THREADS) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run(client, THREADS) == before
    assert wait_gone(server_pid, server_port)
    # a restart with a lab open takes its server down with the old kernel
    run(client, start_lab)
    server_pid, server_port = map(
        int, run(client, "print(lab.livekit_server.pid, lab.livekit_server.port)").split()
    )
    manager.restart_kernel(now=True)
    assert wait_gone(server_pid, server_port), "livekit-server outlived the restarted kernel"


def _has_reply(client, msg_id, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.get_shell_msg(timeout=max(0.05, deadline - time.monotonic()))
        except Exception:
            return False
        if msg["parent_header"].get("msg_id") == msg_id:
            return True
    return False


def test_role_cell_magic_edits_the_running_labs_role(kernel):
    _, client = kernel
    run(client, "%load_ext rico_lab")
    with pytest.raises(AssertionError, match=r"start one with rico_lab\.Lab"):
        run(client, "%%role demo\nYou are a pirate.")
    run(client, "import rico_lab\nlab = rico_lab.Lab()\nbefore = lab.role('demo').version")
    out = run(client, "%%role demo\nYou are a pirate. Say arr.\n")
    version = run(client, "print(lab.role('demo').version)").strip()
    assert out == f"'role demo: version {version}'"
    with pytest.raises(AssertionError, match=r"demo.yaml \(edited in Python\).*template error"):
        run(client, "%%role demo\nYou are {% broken\n")
    kept = run(client, "print(repr(lab.role('demo').instructions), lab.role('demo').version)")
    assert kept.strip() == f"'You are a pirate. Say arr.' {version}"
    assert run(client, "print(before != lab.role('demo').version)").strip() == "True"
    run(client, "lab.close()")
