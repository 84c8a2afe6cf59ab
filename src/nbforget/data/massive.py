"""MASSIVE (FitzGerald et al. 2023): slot filling, and intents when the file carries them.

Input is MASSIVE 1.1 JSON Lines, one utterance per line, with the fields ``id``, ``locale``,
``partition`` (``train``, ``dev`` or ``test``; ``validation`` is read as ``dev``; rows of the hidden
``MMNLU-22`` evaluation set are skipped), ``utt``, ``annot_utt`` and, optionally, ``intent`` and
``scenario``. One file may hold every partition of a locale.

Words and tags come from ``annot_utt``, where a slot is written ``[slot_name : words]``::

    wake me up at [time : nine am]  ->  wake me up at nine am
                                        O    O  O  O  B-time I-time

A slot's brackets are always word boundaries (``[person : robert],`` gives the words ``robert``
and ``,``).

Adjacent slots of the same type are one span. MASSIVE's own baseline turns ``annot_utt`` into one
slot name per word (``Other`` outside slots) and reads a run of identical consecutive slot names as
one span (``convert_to_bio`` in alexa/massive ``src/massive/utils/training_utils.py``; the scorer
here does the same, `nbforget.scoring.massive_spans_to_bio`). So two brackets of one type with no
word between them give one span, ``B-`` then ``I-``::

    in [place_name : tokyo] [place_name : japan]  ->  in tokyo        japan
                                                      O  B-place_name I-place_name

Slots of different types, or of one type with a word between them, stay separate spans. The word
tags are therefore exactly the spans MASSIVE scores, and a prediction equal to MASSIVE's gold slot
names scores slot F1 1.0 (reading each bracket as a span of its own would score such a
prediction 0.993 on the en-US dev rows: 10 of their 2,033 rows have adjacent same-type slots).

For ``ja-JP``, ``zh-CN`` and ``zh-TW``, which MASSIVE writes without spaces between
words, every whitespace-separated chunk is split into characters, except chunks made only of ASCII
characters (code-switched Latin words, numbers), which stay whole: the convention of MASSIVE's own
data preparation. Zero-width characters are dropped there, as they are no words.

An annotation with an unbalanced bracket, a slot without ``" : "``, or an empty slot name or
value raises `NbforgetError` naming the file and line.
"""
from __future__ import annotations

import json
from pathlib import Path

from nbforget import NbforgetError
from nbforget.data.files import open_text
from nbforget.data.types import SPLITS, TAGGING, Example, LanguageTask

CHARACTER_SPLIT_LOCALES = ("ja-JP", "zh-CN", "zh-TW")
PARTITION_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}
SKIPPED_PARTITIONS = ("MMNLU-22",)
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


class AnnotationError(ValueError):
    """A malformed ``annot_utt``; the message says what is wrong with it."""


def parse_annotation(annotation: str) -> list[tuple[str, str | None]]:
    """Split an ``annot_utt`` into segments ``(text, slot)``; ``slot`` is None outside brackets."""
    segments: list[tuple[str, str | None]] = []
    position = 0
    while position < len(annotation):
        opening = annotation.find("[", position)
        closing = annotation.find("]", position)
        if closing != -1 and (opening == -1 or closing < opening):
            raise AnnotationError(f"']' at character {closing + 1} closes no '['")
        if opening == -1:
            segments.append((annotation[position:], None))
            break
        segments.append((annotation[position:opening], None))
        closing = annotation.find("]", opening + 1)
        nested = annotation.find("[", opening + 1)
        if closing == -1:
            raise AnnotationError(f"'[' at character {opening + 1} is never closed")
        if nested != -1 and nested < closing:
            raise AnnotationError(f"'[' at character {nested + 1} opens a slot inside a slot")
        inside = annotation[opening + 1 : closing]
        name, separator, value = inside.partition(" : ")
        if not separator:
            raise AnnotationError(f"slot '[{inside}]' lacks ' : ' between slot name and words")
        name = name.strip()
        if not name or any(character.isspace() for character in name):
            raise AnnotationError(f"slot '[{inside}]' has an empty or spaced slot name")
        if not value.strip():
            raise AnnotationError(f"slot '{name}' has no words")
        segments.append((value, name))
        position = closing + 1
    return segments


def split_words(text: str, *, by_character: bool = False) -> list[str]:
    """Whitespace words; with ``by_character``, non-ASCII chunks become one word per character."""
    if not by_character:
        return text.split()
    words: list[str] = []
    for chunk in text.split():
        if chunk.isascii():
            words.append(chunk)
        else:
            words.extend(character for character in chunk if character not in ZERO_WIDTH)
    return words


def annotation_to_bio(
    annotation: str, *, by_character: bool = False
) -> tuple[list[str], list[str]]:
    """Words and word-level BIO tags of an ``annot_utt``.

    >>> annotation_to_bio("wake me up at [time : nine am]")
    (['wake', 'me', 'up', 'at', 'nine', 'am'], ['O', 'O', 'O', 'O', 'B-time', 'I-time'])
    >>> annotation_to_bio("[date : friday] [date : may]")  # adjacent, same type: one span
    (['friday', 'may'], ['B-date', 'I-date'])
    """
    words: list[str] = []
    tags: list[str] = []
    for text, slot in parse_annotation(annotation):
        segment_words = split_words(text, by_character=by_character)
        if slot is not None and not segment_words:
            raise AnnotationError(f"slot '{slot}' has no words")
        words.extend(segment_words)
        if slot is None:
            tags.extend("O" for _ in segment_words)
        else:
            # a slot right after a slot of the same type continues its span (MASSIVE's convention)
            continues = bool(tags) and tags[-1] != "O" and tags[-1][2:] == slot
            tags.extend(("B-" if index == 0 and not continues else "I-") + slot
                        for index in range(len(segment_words)))
    return words, tags


def bio_labels(tag_sets) -> tuple[str, ...]:
    """Tag vocabulary: ``O`` first, then ``B-`` and ``I-`` of every slot type, sorted by slot."""
    slots = sorted({tag[2:] for tags in tag_sets for tag in tags if tag != "O"})
    return ("O",) + tuple(prefix + slot for slot in slots for prefix in ("B-", "I-"))


def find_massive_file(path_or_dir: Path | str, locale: str) -> Path:
    """The JSONL file of ``locale``: the path itself, or ``<locale>.jsonl`` in the folder, in its
    ``data/`` subfolder, or in ``1.1/data/`` (the layout of the official release archive)."""
    path = Path(path_or_dir)
    if path.is_file():
        return path
    candidates = [path / f"{locale}.jsonl", path / "data" / f"{locale}.jsonl",
                  path / "1.1" / "data" / f"{locale}.jsonl"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not path.is_dir():
        raise NbforgetError(f"MASSIVE folder or file {path} does not exist; run `nbforget data` "
                            "(or `make data`) first, or pass the path of a MASSIVE 1.1 folder")
    available = sorted({p.stem for c in candidates for p in c.parent.glob("*.jsonl")})
    raise NbforgetError(f"no MASSIVE file for locale {locale!r} in {path}; available: "
                        f"{', '.join(available) or 'none'}. The full MASSIVE 1.1 release has all "
                        "52 locales (run `nbforget data` on a machine that is online)")


def read_massive_file(path: Path, locale: str) -> tuple[dict[str, list[Example]], bool]:
    """Examples per split of one locale, and whether the rows carry intents."""
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    by_character = locale in CHARACTER_SPLIT_LOCALES
    has_intents = False
    other_locales: set[str] = set()
    with open_text(path) as lines:  # a file that is not UTF-8 fails there, named
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise NbforgetError(f"{where}: not a JSON object ({error.msg}); the file must be "
                                    "MASSIVE JSON Lines, one utterance per line") from None
            if row.get("locale", locale) != locale:
                other_locales.add(str(row.get("locale")))
                continue
            partition = row.get("partition")
            if partition in SKIPPED_PARTITIONS:
                continue
            if partition not in PARTITION_NAMES:
                raise NbforgetError(f"{where}: partition {partition!r}; expected one of "
                                    f"{sorted(PARTITION_NAMES)}")
            annotation = row.get("annot_utt")
            if not isinstance(annotation, str):
                raise NbforgetError(f"{where}: no 'annot_utt' field; MASSIVE 1.1 rows carry the "
                                    "annotated utterance there")
            try:
                words, tags = annotation_to_bio(annotation, by_character=by_character)
            except AnnotationError as error:
                raise NbforgetError(f"{where}: malformed annot_utt {annotation!r}: {error}; "
                                    "slots are written '[slot_name : words]'") from None
            if not words:
                raise NbforgetError(f"{where}: empty utterance; remove the line")
            intent = row.get("intent") or None
            has_intents = has_intents or intent is not None
            splits[PARTITION_NAMES[partition]].append(Example(tuple(words), tuple(tags), intent))
    if other_locales and not any(splits.values()):
        raise NbforgetError(f"{path} has no rows of locale {locale!r}, only of "
                            f"{', '.join(sorted(other_locales))}; pass the file of {locale}")
    return splits, has_intents


def load_massive(path_or_dir: Path | str, locale: str) -> LanguageTask:
    """MASSIVE slot filling for ``locale`` (a MASSIVE locale such as ``th-TH``).

    ``path_or_dir`` is a JSONL file or a folder holding ``<locale>.jsonl`` (see
    `find_massive_file`). Splits missing from the file are empty (the mirror's ``en-US`` has dev
    and test only); `nbforget.data.require_nonempty` turns that into an error where it matters.
    ``intents`` is None when no row has an intent (the mirror's ``th-TH``).
    """
    path = find_massive_file(path_or_dir, locale)
    splits, has_intents = read_massive_file(path, locale)
    examples = [example for split in SPLITS for example in splits[split]]
    intents = tuple(sorted({e.label for e in examples if e.label})) if has_intents else None
    notes = {"file": str(path)}
    if locale in CHARACTER_SPLIT_LOCALES:
        notes["words"] = "characters (ASCII chunks whole), as MASSIVE splits this locale"
    for split in SPLITS:
        if not splits[split]:
            notes[f"empty {split}"] = f"no rows with partition {split!r} in {path}"
    return LanguageTask(
        dataset="massive",
        language=locale,
        kind=TAGGING,
        splits=splits,
        labels=bio_labels(example.tags for example in examples),
        source_code=locale,
        intents=intents,
        notes=notes,
    )
