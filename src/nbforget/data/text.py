"""Plain text per language for tokenizer training and masked-language-model pretraining.

A language's text is, in this order: the SIB-200 train sentences of its FLORES-200 code (file
order), then its Tatoeba sentences (file order). Tatoeba files are ``tatoeba.<iso3>-eng.<iso3>``;
the ISO 639-3 code is the first three letters of the FLORES-200 code except where the two differ
(`TATOEBA_CODES`: Arabic ``arb`` -> ``ara``, Azerbaijani ``azj`` -> ``aze``, Mongolian ``khk``
-> ``mon``, Albanian ``als`` -> ``sqi``, Chinese ``zho`` -> ``cmn``; Tatoeba's Mandarin mixes
simplified and traditional characters and serves zh-CN and zh-TW alike). A language without a
FLORES-200 code uses its xSID code when Tatoeba has it (Swiss German ``gsw``). English takes the
``.eng`` side of every pair file, in file-name order. Kannada and Burmese have no Tatoeba file.
Languages with neither SIB-200 nor Tatoeba text (Bavarian, Munich Bavarian, South Tyrolean,
Neapolitan) take the sentences of their xSID train split (``<code>.valid.conll``) instead.

No dev or test sentence of any task may leak into this text: a sentence is dropped when it occurs
in a dev or test split of SIB-200, xSID or MASSIVE for that language (compared after case-folding
and keeping letters and digits only, so ``Tom is here.`` matches ``tom is here``), and a
SIB-200 train row is dropped when its ``index_id`` is in a dev or test split of any SIB-200
language (FLORES-200 sentences are translations of each other; SIB-200 keeps the splits aligned
across languages, and this keeps it so for any mirror). Duplicates are dropped, keeping the
first occurrence, so the result is deterministic.
"""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from nbforget import NbforgetError
from nbforget.data.files import damaged_file, open_text
from nbforget.data.prepare import RAW, check_prepared_files, require_prepared
from nbforget.languages import DATASETS, get_language, source_code

TATOEBA_CODES = {"arb": "ara", "azj": "aze", "khk": "mon", "als": "sqi", "zho": "cmn"}
EVALUATION_SPLITS = ("dev", "test")
NOT_WORD = re.compile(r"[\W_]+")


def sentence_key(text: str) -> str:
    """Comparison key: NFKC-normalized, case-folded, letters and digits only (no whitespace,
    punctuation, symbols or marks), so that spacing and punctuation variants compare equal."""
    return NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def _code(dataset: str, locale: str) -> str | None:
    try:
        return source_code(dataset, locale)
    except NbforgetError:
        return None


def _plain(annotation: str) -> str:
    """The words of a MASSIVE ``annot_utt`` without the slot markup ('' when malformed)."""
    from nbforget.data.massive import AnnotationError, parse_annotation

    try:
        return " ".join(text for text, _ in parse_annotation(annotation))
    except AnnotationError:
        return ""


def tatoeba_code(locale: str) -> str:
    """The Tatoeba ISO 639-3 code of a project locale (``eng`` for English)."""
    flores = _code("sib200", locale)
    if flores:
        prefix = flores.split("_")[0]
        return TATOEBA_CODES.get(prefix, prefix)
    return _code("xsid", locale) or ""


def tatoeba_sentences(folder: Path, iso3: str) -> list[str]:
    if iso3 == "eng":
        paths = sorted(folder.glob("tatoeba.*-eng.eng"))
    else:
        paths = [folder / f"tatoeba.{iso3}-eng.{iso3}"]
    sentences = []
    for path in paths:
        if path.is_file():
            sentences.extend(line.strip() for line in open_text(path) if line.strip())
    return sentences


@lru_cache(maxsize=8)
def _sib200_evaluation_ids(folder: Path) -> frozenset[str]:
    from nbforget.data.sib200 import available_sib200_languages, read_sib200_rows

    return frozenset(index for code in available_sib200_languages(folder)
                     for split in EVALUATION_SPLITS
                     for _, index, _, _ in read_sib200_rows(folder / code / f"{split}.tsv"))


def evaluation_texts(raw: Path, locale: str, tasks=DATASETS) -> list[str]:
    """Every dev and test sentence of ``locale`` in the given tasks, as raw text."""
    from nbforget.data.massive import find_massive_file
    from nbforget.data.sib200 import read_sib200_rows
    from nbforget.data.xsid import evaluation_texts as xsid_evaluation_texts

    texts: list[str] = []
    flores = _code("sib200", locale)
    if "sib200" in tasks and flores and (raw / "sib200" / flores).is_dir():
        for split in EVALUATION_SPLITS:
            texts += [row[3] for row in read_sib200_rows(raw / "sib200" / flores / f"{split}.tsv")]
    xsid = _code("xsid", locale)
    if "xsid" in tasks and xsid and (raw / "xsid" / f"{xsid}.test.conll").is_file():
        texts += xsid_evaluation_texts(raw / "xsid", xsid)
    if "massive" in tasks and _code("massive", locale) and (raw / "massive").is_dir():
        try:
            path = find_massive_file(raw / "massive", locale)
        except NbforgetError:
            path = None
        if path is not None:
            for number, line in enumerate(open_text(path), start=1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except json.JSONDecodeError as error:
                    raise damaged_file(f"{path}:{number}", f"is not a JSON object ({error.msg})") from None
                if row.get("partition") in ("dev", "validation", "test", "MMNLU-22"):
                    texts += [row.get("utt", ""), _plain(row.get("annot_utt", ""))]
    return texts


def pretraining_text(
    locales,
    data_dir: Path | str = Path("data"),
    *,
    exclude_tasks=DATASETS,
) -> dict[str, list[str]]:
    """Sentences per locale for tokenizer training and pretraining (see the module doc).

    ``exclude_tasks``: the tasks whose dev and test sentences are removed (all three by default;
    narrowing it is for experiments on leakage only).
    """
    from nbforget.data.sib200 import read_sib200_rows
    from nbforget.data.xsid import kept_sentences

    unknown = [task for task in exclude_tasks if task not in DATASETS]
    if unknown:
        raise NbforgetError(f"exclude_tasks names unknown task(s) {unknown}; known: {list(DATASETS)}")
    raw = require_prepared(data_dir)
    for locale in locales:
        get_language(locale)  # unknown locales fail here, with the fix in the message
    # every SIB-200 language's dev and test ids are read, and English takes every Tatoeba pair file
    xsid_codes = [code for code in (_code("xsid", locale) for locale in locales) if code]
    check_prepared_files(data_dir, (f"{RAW}/sib200/", f"{RAW}/tatoeba/",
                                    *(f"{RAW}/xsid/{code}." for code in xsid_codes),
                                    *(f"{RAW}/massive/{locale}.jsonl" for locale in locales)))
    texts: dict[str, list[str]] = {}
    for locale in locales:
        banned = {sentence_key(text) for text in evaluation_texts(raw, locale, exclude_tasks)}
        banned.discard("")
        candidates: list[str] = []
        flores = _code("sib200", locale)
        if flores and (raw / "sib200" / flores / "train.tsv").is_file():
            held_out = (_sib200_evaluation_ids(raw / "sib200") if "sib200" in exclude_tasks
                        else frozenset())
            candidates += [text for _, index, _, text in
                           read_sib200_rows(raw / "sib200" / flores / "train.tsv")
                           if index not in held_out]
        candidates += tatoeba_sentences(raw / "tatoeba", tatoeba_code(locale))
        xsid = _code("xsid", locale)
        if not candidates and xsid and (raw / "xsid" / f"{xsid}.valid.conll").is_file():
            candidates = [s.text for s in kept_sentences(raw / "xsid" / f"{xsid}.valid.conll")]
        seen = set(banned)
        kept = []
        for sentence in candidates:
            sentence = " ".join(sentence.split())
            key = sentence_key(sentence)
            if key and key not in seen:
                seen.add(key)
                kept.append(sentence)
        texts[locale] = kept
    return texts
