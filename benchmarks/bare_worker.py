"""The plainest alternative to a lab's worker: livekit-agents as its docs show it, one role.

A separate process, run by ``voice_latency.py``: an ``AgentServer`` with its default
process-per-job executor and an ``AgentSession`` over the same ``RealtimeModel`` plugin,
with the role's rendered instructions, voice and turn detection, greeting the same way. No
tools, no record, no role edits: what rico_lab adds is what this leaves out.

Environment: ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``, ``LOCAL_MODEL_URL``,
``LOCAL_MODEL_KEY``, ``BARE_ROLE`` (a role file or name in ``roles/``), ``BARE_AGENT_NAME``.
"""

from __future__ import annotations

import asyncio
import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext
from livekit.plugins import openai

from rico_lab.agent.conversation import greeting_instructions
from rico_lab.roles import default_roles_dir, load_role


async def entrypoint(ctx: JobContext) -> None:
    """Greet, then answer every turn with the role's model settings."""
    role = load_role(os.environ["BARE_ROLE"], default_roles_dir())
    model = openai.realtime.RealtimeModel(
        base_url=os.environ["LOCAL_MODEL_URL"],
        api_key=os.environ["LOCAL_MODEL_KEY"],
        **role.realtime_options(),
    )
    await ctx.connect()
    session: AgentSession[None] = AgentSession(llm=model)
    await session.start(agent=Agent(instructions=role.render()), room=ctx.room)
    session.generate_reply(instructions=greeting_instructions(role))


async def main() -> None:
    """Register with the LiveKit server until this process is terminated."""
    server = AgentServer(
        ws_url=os.environ["LIVEKIT_URL"],
        api_key=os.environ["LIVEKIT_API_KEY"],
        api_secret=os.environ["LIVEKIT_API_SECRET"],
        port=0,
        load_fnc=lambda *_: 0.0,  # as the lab's worker: a busy benchmark machine takes jobs
    )
    server.rtc_session(entrypoint, agent_name=os.environ["BARE_AGENT_NAME"])
    server.on("worker_registered", lambda *_: print("registered", flush=True))
    await server.run()


if __name__ == "__main__":
    asyncio.run(main())
