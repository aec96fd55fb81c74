"""Keep converter chatter out of the terminal.

onnx2tf, onnx-tf and the TFLite converter print thousands of lines, from Python and from C++ alike
(the MLIR converter logs straight to file descriptor 2). ``tool_log`` sends both descriptors to a
log file for the duration of one step; when the step fails, the last lines of that log go into the
error message, because the work folder holding the log is deleted on failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from export.gates import GateError

__all__ = ["ToolError", "tool_log"]


class ToolError(RuntimeError):
    """A conversion tool failed; the message names the step and ends with the tool's last words."""


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


@contextlib.contextmanager
def tool_log(path: str | Path, step: str, tail_lines: int = 15) -> Iterator[None]:
    path = Path(path)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    except ToolError:
        raise
    except Exception as e:
        # Gate failures carry their own clear message: let them through untouched.
        if isinstance(e, GateError):
            raise
        raise ToolError(
            f"{step} failed: {type(e).__name__}: {e}\n  last lines of the tool log:\n{_tail(path, tail_lines)}"
        ) from e
    finally:
        os.close(saved[0])
        os.close(saved[1])
