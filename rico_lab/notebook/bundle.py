"""Where the voice client's bundle is: one ES module built from ``widgets/`` into the package."""

from __future__ import annotations

from pathlib import Path

from ..errors import LabError


def bundle() -> Path:
    """The voice client's ES module, built by ``make widgets`` into the package."""
    path = Path(__file__).resolve().parent.parent / "static" / "voice_client.js"
    if not path.is_file():
        raise LabError(
            f"the voice client bundle {path} is missing: build it with `make widgets` "
            "(npm ci and esbuild in widgets/)"
        )
    return path
