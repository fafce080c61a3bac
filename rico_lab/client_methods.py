"""The voice client's built-in UI methods: what a role tool may bind to with ``ui: <method>``.

The client (``widgets/src/ui_methods.ts``) registers each of these as a LiveKit RPC method;
the agent calls it with ``{"arguments": <the tool call's arguments>, "result": <the Python
function's return, when the tool has one>}`` and tells the model what it answers. The
schemas here are a tool's default ``parameters``, so a role can bind a tool with no more
than a name, a description and ``ui:``. ``docs/client_methods.md`` documents the answers.
"""

from __future__ import annotations

from typing import Any

_TITLE = {"type": "string", "description": "A short heading for the panel."}

#: Method name → JSON Schema of the arguments it takes.
CLIENT_METHODS: dict[str, dict[str, Any]] = {
    "show_markdown": {
        "type": "object",
        "properties": {
            "title": _TITLE,
            "markdown": {"type": "string", "description": "Markdown to show on screen."},
        },
        "required": ["markdown"],
    },
    "show_table": {
        "type": "object",
        "properties": {
            "title": _TITLE,
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {
                "type": "array",
                "description": "Rows as objects (column → value) or as lists in column order.",
                "items": {"type": ["object", "array"]},
            },
        },
        "required": ["rows"],
    },
    "show_image": {
        "type": "object",
        "properties": {
            "title": _TITLE,
            "image": {
                "type": "string",
                "description": "A data: URI of a PNG, JPEG, GIF or WebP image (no remote URLs).",
            },
            "alt": {"type": "string", "description": "What the image shows, in words."},
        },
        "required": ["image"],
    },
    "ask": {
        "type": "object",
        "properties": {
            "question": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Buttons to pick one from; the answer is the choice.",
            },
            "fields": {
                "type": "array",
                "description": "A small form instead of choices; the answer is a JSON object.",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "label": {"type": "string"},
                        "type": {"enum": ["text", "number"]},
                    },
                    "required": ["name"],
                },
            },
        },
        "required": ["question"],
    },
    "save_note": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "text": {"type": "string", "description": "The note; it is kept in the lab's log."},
        },
        "required": ["text"],
    },
    "end_session": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Why the conversation ends."},
        },
    },
}
