"""xSID 0.7 (van der Goot et al. 2021): slot filling and intents in CoNLL files.

Files are ``<code>.valid.conll`` and ``<code>.test.conll``. A sentence is a block of comment lines
(``# text = ...``, ``# intent = ...``) and token lines of four tab-separated columns: index, word,
intent, BIO slot tag. Blank lines separate sentences.

Splits:
- train: the whole ``<code>.valid.conll`` file (xSID has no training data outside English);
- dev and test: ``<code>.test.conll``, divided by sentence number: every fifth sentence
  (number divisible by 5) goes to dev, the others to test. Of 500 sentences that is dev 100 /
  test 400 (Japanese: 250 -> 50 / 200). Sentences are numbered 1, 2, ... in file order, except
  when the ``# id`` values of the kept sentences (the part before a ``/``) are exactly 1..N, as in
  the Norwegian file, whose sentences are out of order: then the id is the number. The xSID test
  files are parallel to the English one in this numbering, so the dev sets hold translations of
  the same 100 sentences; the exception is ``de-ba``, whose order departs from the English one
  after sentence 148 (one sentence left out, another added), so its dev set is parallel only in
  part.

Quirks of the xSID 0.7 files, and what the loader does with them:
- comment lines other than ``text``, ``intent`` and ``dialect`` (``# id``, ``# text-en``,
  ``# text-de``, ``# text-it``, ``# slots: ...``) are ignored; ``en`` has no ``# id`` lines;
- the intent is the ``# intent`` header (column 3 disagrees with it on two tokens of
  ``de-muc.valid.conll``); column 3 of the first token is used when the header is missing;
- ``no`` holds 11 versions of every sentence: Bokmål (``# dialect = B``, ids ``n/B``) and ten
  dialect transcriptions (ids ``n/1`` .. ``n/10``). Only the standard variety (``dialect``
  argument, Bokmål by default) is kept, so nb-NO has the same size as the other languages;
- tokens with an empty word (8 in ``zh`` and ``no``, alignment leftovers) are dropped; a tag
  ``I-x`` that then follows no ``x`` becomes ``B-x``; a sentence left without words is skipped
  (one empty dialect sentence in ``no.valid.conll``);
- multiword-token range lines (index ``3-4``) are skipped, keeping their parts, and lines with
  another number of columns than four raise `NbforgetError` with file and line (none occur).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nbforget import NbforgetError
from nbforget.data.massive import bio_labels
from nbforget.data.files import open_text
from nbforget.data.types import SPLITS, TAGGING, Example, LanguageTask

STANDARD_DIALECT = "B"  # Bokmål in the Norwegian file
DEV_EVERY = 5  # every 5th test-file sentence goes to dev


@dataclass
class Sentence:
    """One xSID sentence as read from a file."""

    line: int
    headers: dict[str, str] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    token_intent: str | None = None

    @property
    def intent(self) -> str | None:
        return self.headers.get("intent") or self.token_intent

    @property
    def text(self) -> str:
        return self.headers.get("text", " ".join(self.words))


def _header(line: str) -> tuple[str, str] | None:
    body = line[1:].strip()
    for separator in ("=", ":"):
        key, found, value = body.partition(separator)
        if found and key.strip() and " " not in key.strip():
            return key.strip(), value.strip()
    return None


def read_conll(path: Path) -> list[Sentence]:
    """All sentences of one xSID file, in file order (no filtering)."""
    sentences: list[Sentence] = []
    current: Sentence | None = None
    with open_text(path) as lines:  # a file that is not UTF-8 fails there, named
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if current is not None:
                    sentences.append(current)
                current = None
                continue
            if current is None:
                current = Sentence(line=number)
            if line.startswith("#"):
                header = _header(line)
                if header and header[0] not in current.headers:
                    current.headers[header[0]] = header[1]
                continue
            columns = line.split("\t")
            if len(columns) != 4:
                raise NbforgetError(f"{path}:{number}: {len(columns)} tab-separated columns; xSID "
                                    "token lines have 4 (index, word, intent, slot tag)")
            index, word, intent, tag = columns
            if "-" in index or "." in index:  # multiword-token range or empty node
                continue
            if tag != "O" and tag[:2] not in ("B-", "I-"):
                raise NbforgetError(f"{path}:{number}: slot tag {tag!r} is not BIO (O, B-x, I-x)")
            current.token_intent = current.token_intent or intent or None
            word = word.strip()
            if not word:
                continue
            if tag.startswith("I-") and (not current.tags or current.tags[-1][2:] != tag[2:]):
                tag = "B-" + tag[2:]
            current.words.append(word)
            current.tags.append(tag)
    if current is not None:
        sentences.append(current)
    return sentences


def kept_sentences(path: Path, *, dialect: str = STANDARD_DIALECT) -> list[Sentence]:
    """Sentences with words, of the standard variety, in the numbering order of the module doc."""
    sentences = [s for s in read_conll(path)
                 if s.words and s.headers.get("dialect", dialect) == dialect]
    ids = [s.headers.get("id", "").split("/")[0] for s in sentences]
    if all(i.isdigit() for i in ids) and sorted(map(int, ids)) == list(range(1, len(ids) + 1)):
        by_id = sorted(zip(map(int, ids), sentences), key=lambda pair: pair[0])
        sentences = [sentence for _, sentence in by_id]
    return sentences


def _example(sentence: Sentence) -> Example:
    return Example(tuple(sentence.words), tuple(sentence.tags), sentence.intent)


def xsid_file(directory: Path | str, code: str, part: str) -> Path:
    path = Path(directory) / f"{code}.{part}.conll"
    if not path.is_file():
        if not Path(directory).is_dir():
            raise NbforgetError(f"xSID folder {directory} does not exist; run `nbforget data` "
                                "(or `make data`) first")
        available = sorted({p.name.split(".")[0] for p in Path(directory).glob("*.conll")})
        raise NbforgetError(f"no xSID file {path.name} in {directory}; available codes: "
                            f"{', '.join(available) or 'none'}")
    return path


def read_xsid_splits(directory: Path | str, code: str, *,
                     dialect: str = STANDARD_DIALECT) -> dict[str, list[Example]]:
    """Examples per split for an xSID code (``de``, ``no``, ...), by the rule of the module doc."""
    train = kept_sentences(xsid_file(directory, code, "valid"), dialect=dialect)
    test_file = kept_sentences(xsid_file(directory, code, "test"), dialect=dialect)
    return {
        "train": [_example(s) for s in train],
        "dev": [_example(s) for n, s in enumerate(test_file, 1) if n % DEV_EVERY == 0],
        "test": [_example(s) for n, s in enumerate(test_file, 1) if n % DEV_EVERY != 0],
    }


def evaluation_texts(directory: Path | str, code: str) -> list[str]:
    """Raw texts of every sentence of the test file, all dialects included (for leak checks)."""
    sentences = read_conll(xsid_file(directory, code, "test"))
    return [text for s in sentences for text in (s.text, " ".join(s.words)) if text.strip()]


def load_xsid(directory: Path | str, locale: str, *, code: str | None = None,
              dialect: str = STANDARD_DIALECT) -> LanguageTask:
    """xSID slot filling (with intents) for a project ``locale`` (``de-DE``, ``nb-NO``, ``de-BA``).

    ``code`` overrides the xSID code that `nbforget.languages.source_code` gives for the locale.
    """
    if code is None:
        from nbforget.languages import source_code

        code = source_code("xsid", locale)
    splits = read_xsid_splits(directory, code, dialect=dialect)
    examples = [example for split in SPLITS for example in splits[split]]
    return LanguageTask(
        dataset="xsid",
        language=locale,
        kind=TAGGING,
        splits=splits,
        labels=bio_labels(example.tags for example in examples),
        source_code=code,
        intents=tuple(sorted({e.label for e in examples if e.label})),
        notes={"train": f"{code}.valid.conll",
               "dev/test": f"{code}.test.conll, sentence number divisible by {DEV_EVERY} -> dev"},
    )
