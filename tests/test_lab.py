import contextlib
import gc
import multiprocessing
import os
import socket
import sys
import threading
import time
import weakref
from collections import Counter

import pytest
from livekit import api, rtc
from rtc_participant import VoiceParticipant, run_aside

import rico_lab
from rico_lab._loop_thread import LoopThread
from rico_lab.livekit_server import LiveKitServer, free_port
from rico_lab.local_model.server import LocalRealtimeServer
from rico_lab.local_model.speech import synthesize
from rico_lab.protocol import JoinInfo

pytestmark = pytest.mark.integration

SENTENCE = "Hello agent. Could you tell me what the weather is like today?"


@pytest.fixture(scope="module")
def lab():
    with rico_lab.Lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def user_speech():
    return synthesize(SENTENCE)


@pytest.fixture
def participant_in():
    """Join a conversation of a given lab as a real participant; left at the test's end."""
    people = []

    def join(lab, role="demo"):
        person = VoiceParticipant(lab.join(role))
        person.connect()
        people.append(person)
        return person

    yield join
    for person in people:
        person.close()


@pytest.fixture
def participant(lab, participant_in):
    return lambda role="demo": participant_in(lab, role)


def test_agent_greets_then_answers_a_spoken_turn(lab, participant, user_speech):
    p = participant()
    p.wait_for("the greeting", p.greeted)
    assert p.speech_seconds() > 1.0, "greeting transcript arrived but its audio was silent"
    assert "rico lab demo agent" in p.agent_lines()[0]
    assert p.agent_attributes["rico_lab.model"] == "local"
    assert p.agent_attributes["rico_lab.role"] == "demo"

    committed_before = len(lab.realtime_server.committed)
    sent_at = p.say(user_speech, silence_after=1.5)
    time.sleep(4)  # a cell blocking the kernel's main thread while the agent answers
    blocked_until = time.monotonic()
    spoken_meanwhile = p.speech_seconds(since=sent_at) - p.speech_seconds(since=blocked_until)
    assert spoken_meanwhile > 1.0, "the agent went quiet while the main thread was blocked"
    p.wait_for("the reply to turn 1", lambda: p.replied(1))

    turn = lab.realtime_server.committed[committed_before]
    spoken = len(user_speech) / 24000
    assert spoken - 0.5 < turn.duration_s < spoken + 1.0
    assert f"I heard {turn.duration_s:.1f} seconds" in p.agent_lines()[-1]


def test_typed_turn_and_a_model_failure_reach_the_client(lab, participant):
    p = participant()
    p.wait_for("the greeting", p.greeted)
    p.type("What is two plus two?")
    p.wait_for(
        "the typed reply", lambda: "Turn 1: you wrote: What is two plus two?" in p.agent_lines()
    )
    errors_before = len(lab.errors)
    p.type("/fail the model is down")
    p.wait_for("the error attribute", lambda: "rico_lab.error" in p.agent_attributes)
    assert p.agent_attributes["rico_lab.error"] == (
        "OpenAI Realtime API response failed with error type: server_error: "
        "the model is down (scripted_failure)"
    )
    assert lab.errors[errors_before].startswith(f"room {p.info.room}: OpenAI Realtime")


def test_a_dropped_model_connection_is_reported_and_the_next_turn_works(lab, participant):
    p = participant()
    p.wait_for("the greeting", p.greeted)
    listening = lambda: p.agent_attributes.get("lk.agent.state") == "listening"  # noqa: E731
    p.wait_for("its end", listening)
    errors_before = len(lab.errors)
    p.type("/drop")  # the local model closes its websocket halfway through the reply
    p.wait_for("the error attribute", lambda: p.agent_attributes.get("rico_lab.error"))
    shown = p.agent_attributes["rico_lab.error"]
    assert "connection closed unexpectedly" in shown, shown
    assert lab.errors[errors_before] == f"room {p.info.room}: {shown}"
    # the plugin reconnects, with the conversation so far; the next turn is answered
    p.wait_for("the agent to listen again", listening)
    p.type("still there?")
    answered = lambda: any("you wrote: still there?" in x for x in p.agent_lines())  # noqa: E731
    p.wait_for("the next reply", answered)
    p.wait_for("the error to clear", lambda: not p.agent_attributes.get("rico_lab.error"))
    events = lab.log.records(p.info.room)
    assert [e["message"] for e in events if e["type"] == "error"] == [shown]
    said = [e["text"] for e in events if e["type"] == "turn" and e["speaker"] == "agent"]
    assert any("you wrote: still there?" in text for text in said)


def test_a_role_edit_reaches_the_live_conversation_on_its_next_turn(tmp_path, participant_in):
    (tmp_path / "tutor.yaml").write_text(
        "instructions: You teach French.\ngreeting: Bonjour, I teach French.\n"
    )
    with rico_lab.Lab(roles_dir=tmp_path) as lab:
        p = participant_in(lab, "tutor")
        p.wait_for("the greeting", p.greeted)
        p.type("first")
        p.wait_for("reply 1", lambda: "Turn 1: you wrote: first" in p.agent_lines())
        role = lab.role("tutor")
        before = role.version
        with pytest.raises(rico_lab.RoleError, match="'nope' is undefined"):
            role.instructions = "You teach {{ nope }}."
        role.instructions = "You teach Italian now."
        assert role.version != before
        p.wait_for(
            "the session.update",
            lambda: any(
                u.instructions == "You teach Italian now." for u in lab.realtime_server.updates
            ),
        )
        p.wait_for(
            "the version attribute",
            lambda: p.agent_attributes.get("rico_lab.role_version") == role.version,
        )
        p.type("second")
        p.wait_for("reply 2", lambda: "Turn 2: you wrote: second" in p.agent_lines())
        p.wait_for("its record", lambda: "Turn 2: you wrote: second" in set(lab.log.turns["text"]))
        turns = lab.log.turns
        versions = dict(turns[turns.session == p.info.room][["text", "role_version"]].values)
        assert versions["first"] == before and versions["second"] == role.version
        assert versions["Turn 1: you wrote: first"] == before
        assert versions["Turn 2: you wrote: second"] == role.version
        assert "You teach {{ nope }}." not in [u.instructions for u in lab.realtime_server.updates]

        # a realtime session keeps its first voice: a new one gets a new model session,
        # which carries the conversation on (the local model counts the turns it was given)
        updates = lab.realtime_server.updates
        old_session = updates[-1].session_id
        role.model = {"voice": "ash"}
        p.wait_for("the new voice", lambda: updates[-1].voice == "ash")
        assert updates[-1].session_id != old_session
        assert updates[-1].instructions == "You teach Italian now."
        p.wait_for(
            "the version attribute",
            lambda: p.agent_attributes.get("rico_lab.role_version") == role.version,
        )
        p.type("third")
        p.wait_for("reply 3", lambda: "Turn 3: you wrote: third" in p.agent_lines())
        assert not [e for e in lab.errors if p.info.room in e]


def test_switching_role_mid_conversation(tmp_path):
    (tmp_path / "a.yaml").write_text("instructions: You are A.\ngreeting: I am A.\n")
    (tmp_path / "b.yaml").write_text("instructions: You are B.\ngreeting: I am B.\n")
    with rico_lab.Lab(roles_dir=tmp_path) as lab:
        client = lab.talk("a", auto_connect=False)
        keys = ("url", "token", "room", "identity", "role")
        p = VoiceParticipant(JoinInfo(**{k: getattr(client, k) for k in keys}))
        p.connect()
        try:
            p.wait_for("the greeting", p.greeted)
            p.type("hello A")
            p.wait_for("A's reply", lambda: "Turn 1: you wrote: hello A" in p.agent_lines())
            with pytest.raises(rico_lab.RoleError, match="unknown role 'c'"):
                client.role = "c"
            assert client.role == "a"
            with pytest.raises(rico_lab.LabError, match="no live conversation in room 'nowhere'"):
                lab.switch_role("nowhere", "b")
            client.role = "b"
            p.wait_for("the role attribute", lambda: p.agent_attributes.get("rico_lab.role") == "b")
            p.wait_for(
                "B's instructions",
                lambda: any(u.instructions == "You are B." for u in lab.realtime_server.updates),
            )
            p.type("hello B")
            # B goes on with the conversation A had: the model is given it again
            p.wait_for("the reply", lambda: "Turn 2: you wrote: hello B" in p.agent_lines())
            p.wait_for("its record", lambda: "hello B" in set(lab.log.turns["text"]))
        finally:
            p.close()
        said = lab.log.turns.set_index("text").loc["hello B"]
        assert said["role"] == "b" and said["role_version"] == lab.role("b").version


def test_role_tools_run_in_the_kernel_and_on_the_client(tmp_path, participant_in):
    folder = tmp_path / "calc"
    folder.mkdir()
    (folder / "calc_tools.py").write_text(
        "import threading\ncalls = []\n"
        "def add(a, b):\n    calls.append(threading.current_thread().name)\n    return a + b\n"
    )
    (folder / "role.yaml").write_text(
        "instructions: You add numbers.\n"
        "tools:\n"
        "  - name: add\n    description: Add two numbers.\n    python: calc_tools:add\n"
        "    parameters: {type: object, properties: {a: {type: number}, b: {type: number}}}\n"
        "  - name: show\n    description: Show a note on screen.\n    ui: save_note\n"
        "    parameters: {type: object, properties: {text: {type: string}}}\n"
    )
    with rico_lab.Lab(roles_dir=tmp_path) as lab:
        p = participant_in(lab, "calc")
        shown = p.handle_rpc("save_note", "shown on screen")
        p.wait_for("the greeting", p.greeted)
        p.type('/call add {"a": 2, "b": 3}')
        p.wait_for("the tool's result", lambda: "The tool add returned 5." in p.agent_lines())
        calls = lab.role("calc").tools[0].function.__globals__["calls"]
        assert len(calls) == 1  # ran once, in this process
        p.type('/call show {"text": "hello"}')
        p.wait_for("the UI call", lambda: shown == [{"arguments": {"text": "hello"}}])
        p.wait_for(
            "its answer", lambda: "The tool show returned shown on screen." in p.agent_lines()
        )


def test_an_agent_the_server_turns_away_is_an_error_with_the_servers_reason(monkeypatch):
    # a livekit-server that takes identities of up to 8 characters: "ada", not "agent-AJ_..."
    config = LiveKitServer._config
    monkeypatch.setattr(
        LiveKitServer,
        "_config",
        lambda server: {**config(server), "limit": {"max_participant_identity_length": 8}},
    )
    with rico_lab.Lab() as lab:
        person = VoiceParticipant(lab.join("demo", identity="ada"))
        try:
            person.connect()
            person.wait_for("the refused agent's error in the lab", lambda: lab.errors, 30)
        finally:
            person.close()
        error = lab.errors[0]
        assert error.startswith(f"room {person.info.room}: the agent could not join it: "), error
        assert "livekit-server's log ends:" in error and '"status": 400' in error, error
        assert not lab._conversations


def test_job_loops_are_watched_only_where_watching_cannot_freeze_the_process(lab, participant):
    p = participant()
    p.wait_for("the greeting", p.greeted)
    watchers = [t for t in threading.enumerate() if t.name == "livekit-loop-monitor-job"]
    if sys.version_info < (3, 11, 9):  # sys._current_frames can deadlock (CPython gh-106883)
        assert not watchers
    else:
        assert watchers


def test_each_join_is_a_new_room_with_a_room_scoped_token(lab):
    a, b = lab.join("demo"), lab.join("demo", identity="ada")
    assert a.room != b.room and b.identity == "ada"
    assert a.url == lab.url and "token" not in repr(a)
    claims = rico_lab.protocol.api.TokenVerifier(lab.api_key, lab._api_secret).verify(a.token)
    assert claims.video.room == a.room and claims.video.room_join
    assert not claims.video.room_create and not claims.video.room_admin
    assert claims.room_config.agents[0].agent_name == lab.agent_name


def test_unknown_role_is_refused_at_join(lab):
    with pytest.raises(rico_lab.RoleError, match=r"unknown role 'nobody'.*demo"):
        lab.join("nobody")


def threads():
    """Every OS thread of this process by name: Python's and the native SDK's alike."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/comm") as comm:
            names.append(comm.read().strip())
    return Counter(names)


def child_pids():
    me = str(os.getpid())
    kids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                kids.add(int(entry))
    return kids


def hear_greeting(lab):
    """Join a new conversation, wait for the greeting, leave; returns the participant."""
    p = VoiceParticipant(lab.join("demo"))
    p.connect()
    try:
        p.wait_for("the greeting", p.greeted)
    finally:
        p.close()
    return p


def run_a_lab_and_talk():
    with rico_lab.Lab() as lab:
        port = lab.livekit_server.port
        hear_greeting(lab)
    assert lab.livekit_server.pid is None
    return port


def settled_threads(expected, timeout=15.0):
    """The thread census once closing threads have ended (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and threads() != expected:
        time.sleep(0.2)
    return threads()


def test_start_close_start_again_leaks_nothing():
    kids_before = child_pids()
    ports = [run_a_lab_and_talk()]
    # the first lab starts process-wide pieces once: livekit's native SDK threads and the
    # agents' CPU monitor; from then on a whole lab must come and go without a trace
    after_first = settled_threads(Counter())
    python_names = {t.name for t in threading.enumerate()}
    ports.append(run_a_lab_and_talk())
    assert settled_threads(after_first) == after_first
    assert {t.name for t in threading.enumerate()} == python_names
    assert child_pids() - kids_before == set()
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))


@pytest.fixture
def users_livekit(livekit, monkeypatch):
    """The user's own LiveKit server, named in LIVEKIT_URL and its key variables."""
    monkeypatch.setenv("LIVEKIT_URL", livekit.url)
    monkeypatch.setenv("LIVEKIT_API_KEY", livekit.api_key)
    monkeypatch.setenv("LIVEKIT_API_SECRET", livekit.api_secret)
    return livekit


def test_external_livekit_server_from_the_environment(users_livekit):
    with rico_lab.Lab() as lab:
        assert lab.livekit_server is None and lab.url == users_livekit.url
        hear_greeting(lab)
    assert os.environ["LIVEKIT_URL"] == users_livekit.url  # the lab left the environment alone


def test_labs_sharing_a_livekit_server_answer_their_own_conversations(users_livekit):
    """One LIVEKIT_URL for a team: a conversation started in one notebook is answered by
    that kernel's agent (its tools, its record), never by a colleague's lab."""
    with rico_lab.Lab() as mine, rico_lab.Lab() as theirs:
        assert mine.agent_name != theirs.agent_name
        for lab, other in [(mine, theirs), (theirs, mine)] * 3:
            room = hear_greeting(lab).info.room
            assert room in set(lab.log.sessions.session)
            assert room not in set(other.log.sessions.session)


def test_unreachable_livekit_url_is_named(monkeypatch):
    url = f"ws://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LIVEKIT_URL", url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 32)
    started = time.monotonic()
    with pytest.raises(rico_lab.LiveKitServerError, match=f"LIVEKIT_URL={url} is unreachable"):
        rico_lab.Lab()
    assert time.monotonic() - started < 15


def test_livekit_url_without_credentials_is_named(monkeypatch):
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:1")
    with pytest.raises(rico_lab.LiveKitServerError, match="LIVEKIT_API_KEY and LIVEKIT_API_SECRET"):
        rico_lab.Lab()


def test_wrong_livekit_secret_is_named(users_livekit, monkeypatch):
    monkeypatch.setenv("LIVEKIT_API_SECRET", "not-the-secret-" * 3)
    with pytest.raises(rico_lab.LiveKitServerError, match="refused LIVEKIT_API_KEY"):
        rico_lab.Lab()


@pytest.fixture
def keyed_model_server():
    """A realtime endpoint that, like OpenAI's, only takes one API key."""
    loop = LoopThread("openai-stand-in")
    server = LocalRealtimeServer(api_key="sk-right")
    loop.run(server.start())
    yield server
    loop.run(server.aclose())
    loop.stop()


def test_rejected_openai_key_is_an_error_not_a_hang(monkeypatch, keyed_model_server):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    monkeypatch.setenv("OPENAI_BASE_URL", keyed_model_server.base_url)
    kids_before = child_pids()
    started = time.monotonic()
    with pytest.raises(rico_lab.ModelError, match=r"OPENAI_API_KEY was rejected.*HTTP 401"):
        rico_lab.Lab()
    assert time.monotonic() - started < 15
    assert child_pids() - kids_before == set(), "a failed start left livekit-server running"


def test_accepted_openai_key_goes_through_the_openai_path(monkeypatch, keyed_model_server):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    monkeypatch.setenv("OPENAI_BASE_URL", keyed_model_server.base_url)
    with rico_lab.Lab() as lab:
        assert lab.model == "openai" and lab.realtime_server is None
        assert hear_greeting(lab).agent_attributes["rico_lab.model"] == "openai"


def test_missing_livekit_server_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("RICO_LAB_TOOLS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(rico_lab.LiveKitServerError, match=r"make setup.*go install"):
        rico_lab.Lab()


def test_busy_port_is_named_and_nothing_is_left_running():
    threads_before = threading.active_count()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            rico_lab.LiveKitServerError, match=f"port {port} on 127.0.0.1 is in use"
        ):
            rico_lab.Lab(port=port)
    assert threading.active_count() == threads_before


def _burn() -> None:
    while True:
        pass


def test_a_busy_machine_still_gets_its_agent(lab, participant):
    """LiveKit dispatches only to workers reporting spare capacity; the lab's worker must not
    report the machine's CPU use as its load, or a busy machine gets no agent at all."""
    burners = [
        multiprocessing.Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 2)
    ]
    for burner in burners:
        burner.start()
    try:
        time.sleep(3)  # long enough for the worker to have measured (and reported) its load
        p = participant()
        p.wait_for("the greeting", p.greeted, timeout=30)
    finally:
        for burner in burners:
            burner.kill()


def test_a_second_agent_sent_into_a_live_conversation_leaves(lab, participant):
    """After a LiveKit server restart a user who is back before the agent dispatches
    another one; the agent already talking there keeps the room."""
    p = participant()
    p.wait_for("the greeting", p.greeted)
    lk_api = (lab.url, lab.api_key, lab._api_secret)

    async def dispatch_again() -> None:
        async with api.LiveKitAPI(*lk_api) as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=lab.agent_name, room=p.info.room, metadata='{"role": "demo"}'
                )
            )

    run_aside(dispatch_again())
    time.sleep(4)  # long enough for a second agent to join and greet
    agents = [
        x
        for x in p.room.remote_participants.values()
        if x.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    ]
    assert len(agents) == 1
    assert [line for line in p.agent_lines() if line.startswith("Local model here.")] == [
        p.agent_lines()[0]
    ]
    started = lab.log.records(p.info.room)
    assert [e["type"] for e in started].count("session_started") == 1
    p.type("still one of you?")
    p.wait_for("the reply", lambda: "Turn 1: you wrote: still one of you?" in p.agent_lines())


class _Node:
    """An object in a reference cycle with itself: only the garbage collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_lab_collects_the_garbage_it_finds_and_leaves_the_rest_out_of_collections():
    """A full collection walks every object and stops every thread, the agent's too (some
    300 ms in a kernel full of imports): a lab takes what is alive out of later ones."""
    gc.disable()  # only the lab may collect what follows
    try:
        garbage, kept = _Node(), _Node()
        gone = weakref.ref(garbage)
        del garbage
        assert gone() is not None
        with rico_lab.Lab() as lab:
            assert gone() is None, "garbage found at start-up must be freed, not kept for good"
            assert not any(o is kept for o in gc.get_objects()), "still walked by collections"
            made_after = _Node()
            assert any(o is made_after for o in gc.get_objects())
        # the lab itself is not taken out: once closed, it and its parts can be freed
        closed = weakref.ref(lab)
        del lab
        gc.collect()
        assert closed() is None, "a closed lab must be freed"
    finally:
        gc.enable()
