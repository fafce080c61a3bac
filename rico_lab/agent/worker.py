"""The in-kernel agent worker: a livekit-agents AgentServer on the lab's background loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, JobContext, JobExecutorType
from livekit.agents.telemetry import loop_monitor

from .._loop_thread import LoopThread
from ..errors import RoleError, WorkerError
from ..livekit_server import LIVEKIT_ENV
from ..protocol import AGENT_NAME, ROLE_ATTRIBUTE, role_in
from .conversation import Conversation, ConversationHost

logger = logging.getLogger(__name__)


async def role_name(ctx: JobContext) -> str:
    """The role a room asks for, from the first place that names one.

    The dispatch's metadata (a ``lab.join`` / ``rico-lab token`` token), then the room's
    metadata (``{"role": ...}``, set by whoever created the room), then the attribute
    ``rico_lab.role`` of the first participant; "" when none does (the default role).
    """
    named = role_in(ctx.job.metadata) or role_in(ctx.room.metadata)
    if named:
        return named
    participant = await ctx.wait_for_participant()
    return participant.attributes.get(ROLE_ATTRIBUTE, "")


async def _served_already(host: ConversationHost, room: str, wait_s: float = 10.0) -> bool:
    """Whether a conversation of this worker already talks in ``room``.

    After a LiveKit server restart, the agent and the user both reconnect, and a user who
    is back first recreates the room and, through their token, dispatches a second agent.
    The first one keeps the room if it is connected, or gets connected within ``wait_s``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (old := host.conversations.get(room)) is not None:
        if old.rtc_room.isconnected():
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return False


def _make_entrypoint(host: ConversationHost) -> Callable[[JobContext], object]:
    async def entrypoint(ctx: JobContext) -> None:
        try:
            await ctx.connect()
        except rtc.ConnectError as exc:
            # the user waits in the room for an agent that never comes: say why, in the lab
            said = host.server_log()
            host.on_error(
                f"room {ctx.job.room.name}: the agent could not join it: {exc}"
                + (f"\nlivekit-server's log ends:\n{said}" if said else "")
            )
            ctx.shutdown(f"could not join: {exc}")
            return
        if await _served_already(host, ctx.room.name):
            logger.info("room %s: its agent is here already; this job leaves", ctx.room.name)
            ctx.shutdown("the room has its agent")
            return
        name = await role_name(ctx)
        try:
            role = host.load_role(name)
        except RoleError as exc:
            # the room stays without an agent; whoever runs the worker sees why
            host.on_error(f"room {ctx.room.name}: {exc}")
            ctx.shutdown(f"no role: {exc}")
            return
        conversation = Conversation(ctx, host, role)
        ctx.add_shutdown_callback(conversation.close)
        host.conversations[conversation.room] = conversation
        await conversation.start()

    return entrypoint


def _no_load() -> float:
    """The load this worker reports to LiveKit: none, whatever the machine is doing.

    LiveKit dispatches a job only to a worker whose reported load is under its target, and
    livekit-agents reports the machine's CPU use by default: on a busy laptop or CI runner
    every new conversation would then find no agent. A lab's worker serves this notebook
    alone, so it always takes the job.
    """
    return 0.0


def spare_the_loop_monitor() -> None:
    """Turn off livekit-agents' job loop monitor where it can freeze the whole process.

    The monitor samples every thread's stack (``sys._current_frames``) when a job loop
    lags, as it does while a notebook cell computes. Before Python 3.11.9 a garbage
    collection inside that call runs Python code holding the interpreter's thread-list lock;
    a livekit callback thread ending at that moment waits for the lock while holding the
    GIL, and every thread stops for good (CPython gh-106883, fixed in 3.11.9; 3.12 collects
    only between bytecodes). Seen here as a stalled test run; in a kernel it is a kernel
    that never answers again. Its knob is livekit-agents' own variable, read as each job
    thread starts; a value the user set is kept.
    """
    if sys.version_info < (3, 11, 9):
        os.environ.setdefault(loop_monitor.ENV_WARN_THRESHOLD_MS, "0")


class Worker:
    """An AgentServer with the thread job executor, so jobs (and tools) run in this process.

    ``livekit.agents.jupyter.run_app`` would block the cell; this runs ``AgentServer.run`` as
    a task on a :class:`LoopThread` and returns once the server has registered.

    A lab's worker serves its notebook alone: explicit dispatch by the lab's own name
    (``lab.agent_name``), no load reported, health port on loopback. A standalone worker
    (``rico-lab worker``) may take every room (``agent_name=""``), report its real load
    against ``load_threshold``, and serve its health check on ``http_port`` for an
    orchestrator. An infinite ``load_threshold`` means never full, so it reports no load
    either: LiveKit itself sends nothing to a worker reporting its target load (0.7).
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        host: ConversationHost,
        agent_name: str = AGENT_NAME,
        load_threshold: float | None = None,
        http_host: str = "127.0.0.1",
        http_port: int = 0,
    ) -> None:
        self.url = url
        load: dict[str, Any] = {"load_threshold": float("inf"), "load_fnc": _no_load}
        if load_threshold is not None and not math.isinf(load_threshold):
            load = {"load_threshold": load_threshold}
        self._server = AgentServer(
            job_executor_type=JobExecutorType.THREAD,
            ws_url=url,
            api_key=api_key,
            api_secret=api_secret,
            host=http_host,
            port=http_port,
            num_idle_processes=1,
            shutdown_process_timeout=3.0,
            multiprocessing_context="spawn",
            max_retry=16,  # a restarted LiveKit server is found again (delays up to 10 s)
            **load,
        )
        self._server.rtc_session(_make_entrypoint(host), agent_name=agent_name)
        self._run: concurrent.futures.Future[None] | None = None
        self.worker_id = ""
        #: How often LiveKit has registered the worker: it registers again after it lost
        #: its connection (a LiveKit server restart).
        self.registrations = 0

    def start(self, loop: LoopThread, timeout: float = 30.0) -> None:
        """Start the server on ``loop`` and wait until LiveKit has registered it.

        Raises:
            WorkerError: the server failed or did not register within ``timeout``.
        """
        registered: concurrent.futures.Future[str] = concurrent.futures.Future()
        env_before = {k: os.environ.get(k) for k in LIVEKIT_ENV}
        spare_the_loop_monitor()  # before the first job thread starts

        def on_registered(worker_id: str, _info: object) -> None:
            self.registrations += 1
            if not registered.done():
                registered.set_result(worker_id)

        self._server.on("worker_registered", on_registered)
        self._run = loop.submit(self._server.run())
        self._run.add_done_callback(
            lambda f: (
                registered.done()
                or registered.set_exception(
                    f.exception() or WorkerError("the agent worker stopped before registering")
                )
            )
        )
        try:
            self.worker_id = registered.result(timeout)
        except concurrent.futures.TimeoutError:
            self.stop(loop)
            raise WorkerError(
                f"the agent worker did not register with {self.url} within {timeout:.0f} s"
            ) from None
        except Exception as exc:
            self.stop(loop)
            raise WorkerError(f"the agent worker failed to start: {exc}") from exc
        finally:
            # AgentServer.run exports its credentials; a lab leaves the user's environment as it was
            for key, value in env_before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        logger.info("worker %s registered with %s", self.worker_id, self.url)

    def drain(self, loop: LoopThread, timeout: float) -> bool:
        """Take no new conversations and wait up to ``timeout`` s for running ones to end.

        Returns whether they all ended; :meth:`stop` then closes whatever is left.
        """
        draining = loop.submit(self._server.drain(timeout=None))
        try:
            draining.result(timeout)
        except TimeoutError:
            draining.cancel()  # it holds the server's lock, which closing needs
            return False
        return True

    def stop(self, loop: LoopThread, timeout: float = 15.0) -> None:
        """Close the server (and with it every running job); safe to call twice."""
        if loop.alive:
            loop.run(self._server.aclose(), timeout)
            if self._run is not None:
                try:
                    self._run.result(timeout)
                except (Exception, asyncio.CancelledError) as exc:
                    logger.debug("worker run ended with %r", exc)
