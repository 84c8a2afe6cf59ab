"""SIB-200 (Adelani et al. 2024): topic classification of FLORES-200 sentences, 205 languages.

One folder per FLORES-200 code (``tha_Thai``) holding ``train.tsv``, ``dev.tsv`` and ``test.tsv``
(tab-separated with a header ``index_id, category, text``; fields with quotes are CSV-quoted) and
``labels.txt`` (the 7 categories, one a line). Words are ``text.split()``, the label the category.

The splits are the same ``index_id`` sets in every language (701 / 99 / 204 sentences), so a
sentence's translations are all in the same split.
"""
from __future__ import annotations

import csv
from pathlib import Path

from nbforget import NbforgetError
from nbforget.data.files import open_text
from nbforget.data.types import CLASSIFICATION, SPLITS, Example, LanguageTask

COLUMNS = ["index_id", "category", "text"]


def available_sib200_languages(directory: Path | str) -> list[str]:
    """FLORES-200 codes with SIB-200 data in ``directory``, sorted (``tha_Thai``, not ``th-TH``)."""
    return sorted(p.parent.name for p in Path(directory).glob("*/train.tsv"))


def read_sib200_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """``(line, index_id, category, text)`` rows of one split file, in file order."""
    with open_text(path, newline="") as handle:  # a file that is not UTF-8 fails there, named
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header != COLUMNS:
            raise NbforgetError(f"{path}:1: header {header}; SIB-200 files start with {COLUMNS}")
        rows = []
        for row in reader:
            if len(row) != 3:
                raise NbforgetError(f"{path}:{reader.line_num}: {len(row)} fields; expected 3 "
                                    f"({', '.join(COLUMNS)})")
            rows.append((reader.line_num, row[0], row[1], row[2]))
    return rows


def language_folder(directory: Path | str, code: str) -> Path:
    folder = Path(directory) / code
    if not (folder / "train.tsv").is_file():
        if not Path(directory).is_dir():
            raise NbforgetError(f"SIB-200 folder {directory} does not exist; run `nbforget data` "
                                "(or `make data`) first")
        count = len(available_sib200_languages(directory))
        raise NbforgetError(f"no SIB-200 data for {code!r} in {directory} ({count} languages "
                            "there); SIB-200 folders are FLORES-200 codes such as 'tha_Thai'")
    return folder


def read_labels(folder: Path) -> tuple[str, ...]:
    path = folder / "labels.txt"
    if not path.is_file():
        raise NbforgetError(f"{path} is missing; rerun `nbforget data` to restore it")
    lines = open_text(path).read().splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def read_sib200_splits(
    directory: Path | str, code: str
) -> tuple[dict[str, list[Example]], tuple[str, ...]]:
    """Examples per split of one FLORES-200 code, and the label list from ``labels.txt``."""
    folder = language_folder(directory, code)
    labels = read_labels(folder)
    splits: dict[str, list[Example]] = {}
    for split in SPLITS:
        path = folder / f"{split}.tsv"
        if not path.is_file():
            raise NbforgetError(f"{path} is missing; rerun `nbforget data` to restore it")
        examples = []
        for number, _, category, text in read_sib200_rows(path):
            if category not in labels:
                raise NbforgetError(f"{path}:{number}: category {category!r} is not in labels.txt "
                                    f"({', '.join(labels)})")
            examples.append(Example(tuple(text.split()), None, category))
        splits[split] = examples
    return splits, labels


def load_sib200(directory: Path | str, locale: str, *, code: str | None = None) -> LanguageTask:
    """SIB-200 topic classification for a project ``locale``; ``code`` overrides the FLORES-200
    code that `nbforget.languages.source_code` gives for it."""
    if code is None:
        from nbforget.languages import source_code

        code = source_code("sib200", locale)
    splits, labels = read_sib200_splits(directory, code)
    return LanguageTask(
        dataset="sib200",
        language=locale,
        kind=CLASSIFICATION,
        splits=splits,
        labels=labels,
        source_code=code,
        notes={"folder": str(Path(directory) / code)},
    )
