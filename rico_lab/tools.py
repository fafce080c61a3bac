"""A role's tools as livekit function tools: Python functions in the kernel, RPC to the client.

A tool with ``python:`` runs that function in this kernel (a sync one in a worker thread,
so a slow tool does not stall the conversation's audio); a tool with ``ui:`` calls that
RPC method on the user's voice client over WebRTC; a tool with both runs the function and
shows its result through the client.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import llm

from .roles import Tool

logger = logging.getLogger(__name__)

#: LiveKit's limit on an RPC payload, in bytes of UTF-8.
MAX_PAYLOAD_BYTES = 15 * 1024


def function_tools(
    tools: tuple[Tool, ...], room: rtc.Room, user: Callable[[], str | None]
) -> list[llm.Tool]:
    """Function tools for ``tools``; ``user()`` names the client participant to call."""
    return [_function_tool(tool, room, user) for tool in tools]


def _function_tool(tool: Tool, room: rtc.Room, user: Callable[[], str | None]) -> llm.Tool:
    async def call(raw_arguments: dict[str, object]) -> str:
        result: Any = None
        if tool.function is not None:
            result = await _run(tool.function, raw_arguments)
        if tool.ui is not None:
            answer = await _call_client(tool, room, user(), raw_arguments, result)
            if tool.function is None:
                result = answer
        return result if isinstance(result, str) else json.dumps(result, default=str)

    schema = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return llm.function_tool(call, raw_schema=schema)


async def _run(function: Callable[..., Any], arguments: dict[str, object]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(**arguments)
    return await asyncio.to_thread(function, **arguments)


async def _call_client(
    tool: Tool, room: rtc.Room, user: str | None, arguments: dict[str, object], result: Any
) -> str:
    if user is None:
        raise llm.ToolError(f"no client to show {tool.name} on: the user has not joined")
    body: dict[str, Any] = {"arguments": arguments}
    if tool.function is not None:
        body["result"] = result
    payload = json.dumps(body, default=str)
    size = len(payload.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise llm.ToolError(
            f"{tool.name}: {size} bytes is too much to show at once (LiveKit RPC takes "
            f"{MAX_PAYLOAD_BYTES}); send less"
        )
    try:
        return await room.local_participant.perform_rpc(
            destination_identity=user,
            method=str(tool.ui),
            payload=payload,
            response_timeout=tool.timeout_s,
        )
    except rtc.RpcError as exc:
        logger.warning("tool %s: client method %s failed: %s", tool.name, tool.ui, exc.message)
        raise llm.ToolError(f"the client could not {tool.ui}: {exc.message}") from None
