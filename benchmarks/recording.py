"""What keeping a conversation's audio costs: recording on vs off, side by side.

``python benchmarks/recording.py [SECONDS]`` (60 by default) runs the same conversation
twice, in one process, with recording on (the default) and ``Lab(record_audio=False)``,
after a short warm-up conversation that is not measured (the first recording loads the
codecs and sizes buffers, tens of MB that would count as the first run's growth): a
participant types a turn whenever the agent listens, for SECONDS, so the agent talks most
of the time (both channels carry audio: the participant's microphone sends silence). It
prints, per conversation-minute, the process's CPU seconds and resident memory growth,
the recording's size, and the ratio of the two runs; then one JSON line of every figure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from soak import rss_mb  # the benchmark beside this one

import rico_lab
from rico_lab.evaluation.participant import Participant, wait_until


def run(seconds: float, record_audio: bool) -> dict[str, float]:
    """One conversation of ``seconds``; CPU s and RSS MB per minute, and the file's size."""
    runs = Path(tempfile.mkdtemp(prefix="rico-recording-"))
    with rico_lab.Lab(runs_dir=runs, record_audio=record_audio) as lab:
        participant = Participant(lab.join("demo"))
        participant.join(30)
        wait_until(lambda: participant.agent_state() == "listening", 60, "the greeting")
        rss, cpu, start = rss_mb(), time.process_time(), time.monotonic()
        turns = 0
        while time.monotonic() < start + seconds:
            wait_until(lambda: participant.agent_state() == "listening", 60, "the agent to listen")
            participant.say(np.zeros(2400, np.int16), silence_after=0.0)  # the mic is live
            participant.type(f"Turn {turns + 1}, and on it goes.")
            turns += 1
            wait_until(lambda: participant.agent_state() == "speaking", 60, "the reply")
        minutes = (time.monotonic() - start) / 60
        figures = {
            "cpu_s_per_min": (time.process_time() - cpu) / minutes,
            "rss_mb_per_min": (rss_mb() - rss) / minutes,
            "turns": turns,
        }
        participant.close()
    # what stays once the conversation and its lab are gone (the off run is the baseline)
    figures["rss_mb_kept_per_min"] = (rss_mb() - rss) / minutes
    audio = sum(f.stat().st_size for f in runs.glob("*.ogg"))
    return figures | {"audio_kb_per_min": audio / 1024 / minutes}


def main() -> None:
    """Both runs, then the figures side by side."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    run(10.0, True)  # warm-up: the first recording loads the codecs, sizes pools and caches
    on, off = run(seconds, True), run(seconds, False)
    print(f"a {seconds:.0f} s conversation, local model ({time.strftime('%Y-%m-%d')})")
    print(f"{'per conversation-minute':<26} {'recording':>10} {'off':>10} {'ratio':>7}")
    rows = (
        ("cpu_s_per_min", "CPU s"),
        ("rss_mb_per_min", "RSS growth MB"),
        ("rss_mb_kept_per_min", "RSS kept after it, MB"),
    )
    for key, label in rows:
        ratio = on[key] / off[key] if off[key] else float("nan")
        print(f"{label:<26} {on[key]:10.2f} {off[key]:10.2f} {ratio:7.2f}")
    print(f"{'audio file KB':<26} {on['audio_kb_per_min']:10.0f} {off['audio_kb_per_min']:10.0f}")
    print(json.dumps({"seconds": seconds, "recording": on, "off": off}))


if __name__ == "__main__":
    main()
