"""Where the repository is, for the code that runs a stage as a child process (``python -m …``
with the repo root as its working directory, so the child imports this checkout) or reads a file
the repo ships."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
