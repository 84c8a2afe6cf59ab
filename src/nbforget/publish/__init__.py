"""Publishing: the Jupyter Book (`book`) and its check in a real browser (`browser`).

    make_book(params_file, overrides=None, workers=1, ...) -> Path   run what is missing, then build
"""
from __future__ import annotations

from pathlib import Path

from nbforget import NbforgetError
from nbforget.batch import grid
from nbforget.batch.plan import BOOK_DIR
from nbforget.publish import book


def make_book(params_file: str | Path, overrides: dict | None = None, workers: int = 1, *,
              book_dir: str | Path | None = None, notebooks_dir: str | Path | None = None,
              progress: bool = True, engine: str = "local", address: str | None = None,
              shared_fs: bool | None = None, max_retries: int = 3) -> Path:
    """Execute what is missing (`run_grid`, with its `engine` options), then build the book; returns
    the HTML folder.

    Raises `NbforgetError` listing the failed notebooks instead of building an incomplete book.
    """
    book_dir = Path(book_dir) if book_dir is not None else BOOK_DIR
    failures = grid.run_grid(params_file, overrides=overrides, analyses=True, workers=workers, progress=progress,
                        book_dir=book_dir, notebooks_dir=notebooks_dir, engine=engine, address=address,
                        shared_fs=shared_fs, max_retries=max_retries)
    if failures:
        listing = "\n".join(f"  {failure}" for failure in failures)
        raise NbforgetError(f"{len(failures)} notebook(s) failed, so the book was not built; fix them "
                            f"and run the same command again (finished runs are kept):\n{listing}")
    return book.build_book(book_dir)
