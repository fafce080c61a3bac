"""The local realtime model in a process of its own, where OpenAI's model would be.

In production the model is a service elsewhere: no agent shares its interpreter with it. A
lab without ``OPENAI_API_KEY`` runs the local model in the kernel, beside its agent, so the
two take turns at one GIL; a bare worker's job has a process of its own. To compare the
agents alone, the voice benchmarks can run the model here instead, and point both workers
at it as they would at OpenAI: the lab through ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``
(its OpenAI code path, checked key and all), the bare worker through its own variables.

``python model_process.py`` prints the model's base URL and key on one line, times the
model's events as ``model_timing`` does (``time.monotonic`` is the machine's clock, the
same in every process), and prints them as JSON when terminated.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from unittest import mock

from model_timing import MODEL_EVENTS, time_local_model

from rico_lab.local_model.server import LocalRealtimeServer


class Model(NamedTuple):
    """Where the model answers, and the key it takes."""

    base_url: str
    api_key: str


@contextmanager
def model_elsewhere() -> Iterator[Model]:
    """Run the model in its own process, and set a lab to use it, while this lasts.

    Its events join this process's :data:`MODEL_EVENTS` when it ends.
    """
    script = Path(__file__)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base_url, api_key = process.stdout.readline().split()
    settings = {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": api_key}
    try:
        with mock.patch.dict(os.environ, settings):
            yield Model(base_url, api_key)
    finally:
        process.terminate()
        events, _ = process.communicate(timeout=30)
        MODEL_EVENTS.extend((t, kind) for t, kind in json.loads(events))
        MODEL_EVENTS.sort()


async def main() -> None:
    """Answer until terminated, then print the events timed meanwhile."""
    time_local_model()
    key = "rico-local-" + secrets.token_urlsafe(16)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with LocalRealtimeServer(api_key=key) as server:
        print(server.base_url, key, flush=True)
        await stop.wait()
    print(json.dumps(MODEL_EVENTS), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
