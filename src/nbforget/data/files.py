"""Reading one prepared data file: its text, or an error that names it and says how to restore it."""
from __future__ import annotations

import io
from pathlib import Path

from nbforget import NbforgetError

RESTORE_HINT = "run `nbforget data` again to restore it"


def damaged_file(path: Path | str, problem: str) -> NbforgetError:
    """The error for a prepared data file that cannot be used as it is."""
    return NbforgetError(f"data file {path} {problem}; {RESTORE_HINT}")


def open_text(path: Path | str, *, newline: str | None = None) -> io.StringIO:
    """A data file's text as a stream, read like ``open(path, encoding="utf-8", newline=newline)``;
    a file that is not UTF-8 (cut inside a character, say) is an error naming it."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise damaged_file(path, f"is not valid UTF-8 at byte {error.start} (cut inside a character, or "
                                 "damaged)") from None
    return io.StringIO(text, newline=newline)
