"""Where the voice client's bundles are: ES modules built from ``widgets/`` into the package."""

from __future__ import annotations

from pathlib import Path

from ..errors import LabError


def bundle(name: str = "voice_client.js") -> Path:
    """The voice client's ES module, or the web page's script ``page.js``, built into the package.

    A missing one raises, saying how to build it (``make widgets``).
    """
    path = Path(__file__).resolve().parent.parent / "static" / name
    if not path.is_file():
        raise LabError(
            f"the voice client bundle {path} is missing: build it with `make widgets` "
            "(npm ci and esbuild in widgets/)"
        )
    return path
