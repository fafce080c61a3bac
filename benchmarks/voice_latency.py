"""Voice to voice: what a lab's in-kernel worker adds, against a bare livekit-agents worker.

``python benchmarks/voice_latency.py [TURNS]`` (30 by default) starts a lab (embedded
livekit-server, local realtime model, in-kernel worker) and, beside it, ``bare_worker.py``:
a plain livekit-agents worker process with the same role, against the same LiveKit server
and the same local model. A ``livekit.rtc`` participant then says the same espeak-ng
sentences to each, turns alternating, and times each reply: from the end of the voiced
speech (known from the synthesized samples) to the first loud agent audio it receives,
less the local model's VAD hangover (the role's ``silence_duration_ms``, 500 ms by default),
which both wait out alike. What is left is the kit plus transport: WebRTC both ways, the
agent framework, the model's websocket, and, for the lab, whatever it adds.

Each figure is split three ways by timing the local model's events from here: ``in``, the
end of speech to the model's speech_stopped less the hangover (WebRTC in, the agent's audio
input, the websocket, the VAD's 10 ms frames); ``model``, to its first audio delta; ``out``,
to the participant (the agent's audio output, WebRTC out, the jitter buffer).

Prints p50/p95 for each and the ratio of the medians (target: at most 1.05, and the lab's
p50 at most 80 ms). The participant runs in this process, as the lab does, so it shares
the lab's interpreter; the bare worker's job has a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from model_timing import MODEL_EVENTS, time_local_model

import rico_lab
from rico_lab.evaluation.participant import (
    BLOCK,
    RATE,
    SPEECH_RMS,
    Participant,
    block_rms,
    wait_until,
)
from rico_lab.local_model.speech import synthesize
from rico_lab.protocol import JoinInfo, join_token

ROLE = "demo"
BARE = "bare-livekit-agents"
SENTENCES = [
    "Hello there, how are you today?",
    "What can you show me about the weather?",
    "Tell me something short.",
]


def split(ended: float, onset: float, hangover: float) -> tuple[float, float, float]:
    """One reply's (in, model, out) seconds.

    In: to the model's end of speech, less the hangover; model: to its first audio; out: to
    the participant.
    """
    stopped = next(t for t, kind in MODEL_EVENTS if kind == "stopped" and ended < t < onset)
    audio = next(t for t, kind in MODEL_EVENTS if kind == "audio" and stopped < t < onset)
    return stopped - ended - hangover, audio - stopped, onset - audio


def trailing_quiet(speech: np.ndarray) -> float:
    """Seconds after the last loud 10 ms block of ``speech``: the voice ended before them."""
    loud = np.flatnonzero(block_rms(speech) > SPEECH_RMS)
    return (len(speech) - (loud[-1] + 1) * BLOCK) / RATE if loud.size else 0.0


def bare_join(lab: rico_lab.Lab) -> JoinInfo:
    """A token for a new room that dispatches the bare worker, as ``lab.join`` does the lab's."""
    room, identity = f"bare-{uuid.uuid4().hex[:8]}", "benchmark-user"
    token = join_token(
        lab.api_key, lab._api_secret, room=room, identity=identity, role=ROLE, agent_name=BARE
    )
    return JoinInfo(url=lab.url, token=token, room=room, identity=identity, role=ROLE)


def start_bare_worker(
    lab: rico_lab.Lab, model: tuple[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``bare_worker.py`` and wait until LiveKit has registered it.

    It talks to ``model`` (base URL, key), or by default to the lab's local model.
    """
    if model is None:
        assert lab.realtime_server is not None, "the benchmark runs against the local model"
        model = (lab.realtime_server.base_url, lab.realtime_server._api_key)
    env = os.environ | {
        "LIVEKIT_URL": lab.url,
        "LIVEKIT_API_KEY": lab.api_key,
        "LIVEKIT_API_SECRET": lab._api_secret,
        "LOCAL_MODEL_URL": model[0],
        "LOCAL_MODEL_KEY": model[1],
        "BARE_ROLE": ROLE,
        "BARE_AGENT_NAME": BARE,
    }
    script = Path(__file__).with_name("bare_worker.py")
    # its log (and the noise its job process makes when terminated) goes to a file
    worker = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=Path(tempfile.gettempdir(), "bare_worker.log").open("w"),
        text=True,
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "registered":
        worker.kill()
        raise RuntimeError("the bare worker did not register")
    return worker


def one_turn(
    participant: Participant, speech: np.ndarray, hangover: float
) -> tuple[float, float, float, float]:
    """Say ``speech`` once the agent listens, and time the reply.

    Returns seconds from the voiced end to the reply less the hangover, then that split into
    in, model and out (NaN if no reply was heard).
    """
    wait_until(lambda: participant.agent_state() == "listening", 30, "the agent to listen")
    ended = participant.say(speech) - trailing_quiet(speech)
    onset = participant.audio_onset_after(ended, timeout=30)
    wait_until(lambda: participant.agent_state() == "listening", 30, "the reply to end")
    if onset is None:
        return (float("nan"),) * 4
    return (onset - ended - hangover, *split(ended, onset, hangover))


def main() -> None:
    """Alternate turns between the lab and the bare worker; print both and their ratio."""
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    time_local_model()
    speeches = [synthesize(s, sample_rate=RATE).astype(np.int16) for s in SENTENCES]
    with rico_lab.Lab() as lab:
        detection = lab.role(ROLE).realtime_options().get("turn_detection")
        hangover = getattr(detection, "silence_duration_ms", None) or 500
        worker = start_bare_worker(lab)
        try:
            participants = {
                "rico_lab (in-kernel worker)": Participant(lab.join(ROLE)),
                "bare livekit-agents worker": Participant(bare_join(lab)),
            }
            for participant in participants.values():
                participant.join(30)
            figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in participants}
            for turn in range(turns):
                for name, participant in participants.items():
                    speech = speeches[turn % len(speeches)]
                    figures[name].append(one_turn(participant, speech, hangover / 1000))
            for participant in participants.values():
                participant.close()
        finally:
            worker.terminate()
            worker.wait(30)
    print(f"{turns} spoken turns each, demo role, local model, VAD hangover {hangover} ms")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs; kit + transport per turn, ms")
    print(f"{'':<30} {'p50':>7} {'p95':>7} {'unheard':>7}   p50 of: in  model  out")
    medians = {}
    for name, values in figures.items():
        ms = np.array(values) * 1000
        p50, p95 = np.nanpercentile(ms[:, 0], [50, 95])
        medians[name] = p50
        parts = "  ".join(f"{x:5.0f}" for x in np.nanmedian(ms[:, 1:], axis=0))
        print(f"{name:<30} {p50:7.0f} {p95:7.0f} {int(np.isnan(ms[:, 0]).sum()):7d}   {parts}")
    lab_p50, bare_p50 = medians.values()
    ratio = lab_p50 / bare_p50
    print(f"ratio of medians (lab / bare): {ratio:.2f}  (target <= 1.05)")
    if ratio > 1.05 or lab_p50 > 80:
        print(f"missed by: ratio {max(ratio - 1.05, 0):.2f}, p50 {max(lab_p50 - 80, 0):.0f} ms")
    turns_ms = {  # per turn: total, in, model, out; null for a reply never heard
        name: [[None if np.isnan(v) else v * 1000 for v in turn] for turn in values]
        for name, values in figures.items()
    }
    print(json.dumps({"hangover_ms": hangover, "turns_ms": turns_ms}))


if __name__ == "__main__":
    main()
