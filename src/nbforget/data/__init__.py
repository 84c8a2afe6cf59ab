"""The data layer: one loader per data set, all returning a `LanguageTask`, and data preparation.

    prepare_data(source, dest)           fill data/ from a mirror or the official sources
    verify_data(data_dir)                re-check data/ against its MANIFEST.json
    check_prepared_files(data_dir, ...)  before a file is read: its size (and, if changed, sha256)
    load_task(dataset, locale, data_dir) a task in one language from the prepared data/
    require_nonempty(task, splits)       fail clearly when a split the caller needs is empty
    pretraining_text(locales, data_dir)  plain text per language, free of dev and test sentences

Data sets: ``massive`` and ``xsid`` (slot filling, tagging), ``sib200`` (topics, classification);
their names are `nbforget.languages.DATASETS`, and `LOADERS` and `TITLES` hold one entry for each.
Locales are the project's language keys (`nbforget.languages`): ``th-TH``, ``de-DE``, ``de-BA``.
"""
from __future__ import annotations

from pathlib import Path

from nbforget import NbforgetError
from nbforget.data.massive import annotation_to_bio, load_massive
from nbforget.data.prepare import (RAW, check_prepared_files, prepare_data, raw_folder, require_prepared,
                                   verify_data)
from nbforget.data.sib200 import available_sib200_languages, load_sib200
from nbforget.data.text import pretraining_text
from nbforget.data.types import CLASSIFICATION, SPLITS, TAGGING, Example, LanguageTask
from nbforget.data.xsid import load_xsid
from nbforget.languages import DATASETS, get_language, source_code

LOADERS = {"massive": load_massive, "sib200": load_sib200, "xsid": load_xsid}
DATA_FILES = {  # the manifest paths of one language's files (prefixes), checked before they are read
    "massive": lambda code: (f"{RAW}/massive/{code}.jsonl",),
    "sib200": lambda code: (f"{RAW}/sib200/{code}/",),
    "xsid": lambda code: (f"{RAW}/xsid/{code}.",),
}
TITLES = {  # how pages name a data set
    "massive": "MASSIVE slot filling",
    "sib200": "SIB-200 topic classification (FLORES-200 sentences)",
    "xsid": "xSID slot filling",
}


def _check_registry() -> None:
    # A data set added to DATASETS without a loader or a title fails at import, not in a run.
    for name, table in (("LOADERS", LOADERS), ("TITLES", TITLES), ("DATA_FILES", DATA_FILES)):
        if sorted(table) != sorted(DATASETS):
            raise RuntimeError(f"nbforget.data.{name} covers {sorted(table)}, not the data sets "
                               f"{sorted(DATASETS)} of nbforget.languages.DatasetName")


_check_registry()

__all__ = [
    "CLASSIFICATION", "DATASETS", "LOADERS", "SPLITS", "TAGGING", "TITLES", "Example", "LanguageTask",
    "annotation_to_bio", "available_sib200_languages", "load_massive", "load_sib200", "load_task",
    "load_xsid", "prepare_data", "pretraining_text", "require_nonempty", "require_prepared",
    "verify_data",
]


def load_task(dataset: str, locale: str, data_dir: Path | str = Path("data")) -> LanguageTask:
    """The ``dataset`` task in ``locale`` from the prepared data folder ``data_dir``."""
    if dataset not in LOADERS:
        raise NbforgetError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    folder = raw_folder(data_dir, dataset)
    get_language(locale)  # an unknown locale fails here, naming close matches
    code = source_code(dataset, locale)  # a language the data set lacks fails here
    check_prepared_files(data_dir, DATA_FILES[dataset](code))  # a damaged or cut file fails here, named
    if dataset == "massive":
        return load_massive(folder, locale)
    return LOADERS[dataset](folder, locale, code=code)


def require_nonempty(task: LanguageTask, splits=("train",)) -> LanguageTask:
    """``task`` itself, or `NbforgetError` when one of ``splits`` has no examples."""
    for split in splits:
        if split not in task.splits:
            raise NbforgetError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if not task.splits[split]:
            why = task.notes.get(f"empty {split}", "the data set has no examples there")
            raise NbforgetError(
                f"empty split {split!r} for {task.dataset}/{task.language}: {why}; choose another "
                f"language or data set for this role, or provide the full data set")
    return task
