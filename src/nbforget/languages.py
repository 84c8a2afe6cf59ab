"""Languages, their codes in each data set, their typology and vitality, and language orders.

The facts live in the package data file ``language_table.tsv`` (read with
:mod:`importlib.resources`); its header comment documents every column, key and gap. Sources:

- MASSIVE (FitzGerald et al. 2023, CC BY 4.0): the 52 locales.
- FLORES-200 (NLLB Team 2022), as used by SIB-200 (Adelani et al. 2024): ``flores_code``.
- xSID 0.7 (van der Goot et al. 2021, with later additions; CC BY-SA 4.0): ``xsid_code``.
- WALS Online (Dryer & Haspelmath 2013, CC BY 4.0), via cldf-datasets/wals: ``family``,
  ``genus``, ``glottocode``.
- Joshi et al. (2020), "The State and Fate of Linguistic Diversity and Inclusion in the NLP
  World" (ACL 2020): ``joshi_class`` (0 = "Left-Behinds" ... 5 = "Winners").

Keys. A language is identified by its *locale*: the MASSIVE locale for the 52 MASSIVE languages
(spelled as MASSIVE spells them, e.g. ``sl-SL`` for Slovenian), and for the eight xSID-only
languages ``<xSID language>-<ISO 3166 region>`` (``kk-KZ``, ``lt-LT``, ``sr-RS``, ``gsw-CH``,
``nap-IT``) or, for the three German dialect sets, xSID's variety tag upper-cased (``de-BA``
Bavarian, ``de-MUC`` Munich Bavarian, ``de-ST`` South Tyrolean; these suffixes are not regions).
xSID sets of MASSIVE languages map onto the MASSIVE row, e.g. xSID ``no`` is ``nb-NO``.

Unknown facts are missing, not guessed: ``joshi_class`` is None for ``gsw-CH`` and ``de-ST``;
``glottocode`` is None for ``az-AZ``, ``sq-AL`` and ``de-ST``; ``flores_code`` is None for the
languages FLORES-200 lacks (Bavarian, Swiss German, Neapolitan).

Data sets. :data:`DatasetName` is the one list of the data sets a run can use (``massive``,
``sib200``, ``xsid``); the config's ``dataset``, the loaders of :mod:`nbforget.data` and the
preparation read it.

Vitality. :data:`VITALITY_BUCKETS` is the one grouping of the Joshi classes (:data:`JoshiClass`,
0-5) into the core paper's low / mid / high buckets; the config's ``vitality_buckets`` defaults to it.

Orders. :data:`PAPER_ORDERS` are the five language orders of Khelli et al. (2025), Table 3
(appendix A.1). Order 4 as printed lists ``ml-NL`` at position 26, where ``nl-NL`` belongs:
``ml-NL`` is not a MASSIVE locale, ``nl-NL`` is otherwise absent from the order, and ``ml-IN``
appears at position 51. :data:`PAPER_ORDERS` holds the corrected order 4;
:data:`PAPER_ORDER_4_AS_PRINTED` keeps the printed one.
"""

from __future__ import annotations

import csv
import difflib
import io
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from typing import TYPE_CHECKING, Literal, get_args

from nbforget import NbforgetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DATASETS",
    "DatasetName",
    "JOSHI_CLASSES",
    "JoshiClass",
    "LANGUAGES",
    "Language",
    "MASSIVE_LOCALES",
    "PAPER_ORDERS",
    "PAPER_ORDER_4_AS_PRINTED",
    "VITALITY_BUCKETS",
    "format_language_table",
    "get_language",
    "language_table",
    "locale_for",
    "paper_order",
    "random_order",
    "resolve_order",
    "source_code",
    "vitality",
]

LIST_HINT = "known locales are listed by 'nbforget languages'"

JoshiClass = Literal[0, 1, 2, 3, 4, 5]
"""Joshi et al. (2020) classes: 0 = "Left-Behinds" ... 5 = "Winners"."""
JOSHI_CLASSES: tuple[int, ...] = get_args(JoshiClass)


@dataclass(frozen=True)
class Language:
    """One row of the language table; see the module docstring for sources and keys."""

    locale: str
    name: str
    flores_code: str | None
    xsid_code: str | None
    script: str
    latin: bool
    family: str
    genus: str
    glottocode: str | None
    joshi_class: JoshiClass | None
    in_massive: bool


# --------------------------------------------------------------------------- the table


def _parse_bool(text: str, where: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"{where}: expected 'true' or 'false', got {text!r}")


def _load_languages() -> dict[str, Language]:
    text = resources.files("nbforget").joinpath("language_table.tsv").read_text(encoding="utf-8")
    data_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(data_lines)), delimiter="\t")
    languages: dict[str, Language] = {}
    for row_number, row in enumerate(reader, start=1):
        where = f"language_table.tsv row {row_number} ({row.get('locale')!r})"
        joshi = row["joshi_class"]
        language = Language(
            locale=row["locale"],
            name=row["name"],
            flores_code=row["flores_code"] or None,
            xsid_code=row["xsid_code"] or None,
            script=row["script"],
            latin=_parse_bool(row["latin"], where),
            family=row["family"],
            genus=row["genus"],
            glottocode=row["glottocode"] or None,
            joshi_class=int(joshi) if joshi else None,
            in_massive=_parse_bool(row["in_massive"], where),
        )
        if language.latin != (language.script == "Latn"):
            raise ValueError(
                f"{where}: latin={language.latin} disagrees with script {language.script}"
            )
        if language.joshi_class is not None and language.joshi_class not in JOSHI_CLASSES:
            raise ValueError(f"{where}: joshi_class must be one of {JOSHI_CLASSES}, got {language.joshi_class}")
        if language.locale in languages:
            raise ValueError(f"{where}: duplicate locale")
        languages[language.locale] = language
    # MASSIVE languages first, then the extra (xSID-only) ones; each group sorted by locale.
    return dict(sorted(languages.items(), key=lambda item: (not item[1].in_massive, item[0])))


LANGUAGES: dict[str, Language] = _load_languages()
MASSIVE_LOCALES: tuple[str, ...] = tuple(sorted(k for k, v in LANGUAGES.items() if v.in_massive))


def _unknown_locale_message(locale: object) -> str:
    message = f"unknown locale {locale!r}"
    if isinstance(locale, str):
        by_folded = {known.casefold(): known for known in LANGUAGES}
        matches = difflib.get_close_matches(locale.casefold(), list(by_folded), n=3, cutoff=0.6)
        if matches:
            message += f" (did you mean {', '.join(repr(by_folded[m]) for m in matches)}?)"
    return f"{message}; {LIST_HINT}"


def get_language(locale: str) -> Language:
    """The :class:`Language` for ``locale`` (exact key, e.g. ``'th-TH'``).

    Raises :class:`NbforgetError` naming close matches when the locale is unknown.
    """
    try:
        return LANGUAGES[locale]
    except (KeyError, TypeError):
        raise NbforgetError(_unknown_locale_message(locale)) from None


# --------------------------------------------------------------------------- data set codes

DatasetName = Literal["massive", "sib200", "xsid"]
"""The data sets: the config's ``dataset``, the loaders' keys, the folders of ``data/raw``."""
DATASETS: tuple[str, ...] = get_args(DatasetName)


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise NbforgetError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")


def _code_in(dataset: str, language: Language) -> str | None:
    if dataset == "massive":
        return language.locale if language.in_massive else None
    if dataset == "sib200":
        return language.flores_code
    if dataset == "xsid":
        return language.xsid_code
    raise ValueError(f"data set {dataset!r} has no column of codes in the language table")


def _available_datasets(language: Language) -> list[str]:
    return [dataset for dataset in DATASETS if _code_in(dataset, language) is not None]


def source_code(dataset: str, locale: str) -> str:
    """The code data set ``dataset`` uses for ``locale``.

    ``massive``: the locale itself (MASSIVE languages only); ``sib200``: the FLORES-200 code
    (``th-TH`` -> ``tha_Thai``); ``xsid``: the xSID file prefix (``nb-NO`` -> ``no``).
    Raises :class:`NbforgetError` when the language is not in that data set.
    """
    _check_dataset(dataset)
    language = get_language(locale)
    code = _code_in(dataset, language)
    if code is None:
        others = _available_datasets(language)
        fix = (
            f"use it with {' or '.join(repr(d) for d in others)}, or drop it from the languages"
            if others
            else "drop it from the languages"
        )
        raise NbforgetError(
            f"language {locale!r} ({language.name}) is not in data set {dataset!r}; {fix}"
        )
    return code


def locale_for(dataset: str, code: str) -> str:
    """The project locale for data set ``dataset``'s ``code`` (the reverse of :func:`source_code`).

    Codes match case-insensitively (``'NO'`` and ``'no'`` both give ``'nb-NO'``).
    """
    _check_dataset(dataset)
    by_code = {}
    for language in LANGUAGES.values():
        known = _code_in(dataset, language)
        if known is not None:
            by_code[known.casefold()] = language.locale
    if isinstance(code, str) and code.casefold() in by_code:
        return by_code[code.casefold()]
    message = f"unknown {dataset} code {code!r}"
    if isinstance(code, str):
        matches = difflib.get_close_matches(code.casefold(), list(by_code), n=3, cutoff=0.6)
        if matches:
            originals = [source_code(dataset, by_code[m]) for m in matches]
            message += f" (did you mean {', '.join(repr(o) for o in originals)}?)"
    raise NbforgetError(f"{message}; the codes of each data set are listed by 'nbforget languages'")


# --------------------------------------------------------------------------- vitality

VITALITY_BUCKETS: dict[str, tuple[JoshiClass, ...]] = {"low": (0, 1, 2), "mid": (3,), "high": (4, 5)}
"""Joshi class -> vitality bucket, as in Khelli et al. (2025), Table 1 (low / mid / high)."""


def vitality(locale: str, buckets: Mapping[str, Sequence[int]] = VITALITY_BUCKETS) -> str:
    """The vitality bucket of ``locale``: the name of the bucket holding its Joshi class.

    Raises :class:`NbforgetError` when the class is unknown, or when ``buckets`` holds the class
    in no bucket or in more than one.
    """
    language = get_language(locale)
    if language.joshi_class is None:
        raise NbforgetError(
            f"language {locale!r} ({language.name}) has no known Joshi et al. (2020) class, "
            "so it has no vitality; leave it out of vitality analyses"
        )
    names = [name for name, classes in buckets.items() if language.joshi_class in classes]
    if len(names) != 1:
        problem = "no bucket" if not names else f"several buckets ({', '.join(names)})"
        raise NbforgetError(
            f"Joshi class {language.joshi_class} of {locale!r} is in {problem} of the vitality "
            f"buckets {dict(buckets)}; put each class 0-5 in exactly one bucket"
        )
    return names[0]


def _vitality_or_none(locale: str) -> str | None:
    return None if LANGUAGES[locale].joshi_class is None else vitality(locale)


# --------------------------------------------------------------------------- tables


def _select(locales: Iterable[str] | None, include_extra: bool) -> list[str]:
    if locales is None:
        return list(LANGUAGES) if include_extra else list(MASSIVE_LOCALES)
    if isinstance(locales, str):
        locales = [locales]
    return [get_language(locale).locale for locale in locales]


def language_table(
    locales: Iterable[str] | None = None, *, include_extra: bool = False
) -> pd.DataFrame:
    """The language table as a DataFrame, one row per locale, in the order given.

    ``locales=None`` gives the 52 MASSIVE languages, plus the xSID-only ones when
    ``include_extra``. Columns: the :class:`Language` fields plus ``vitality`` (with the default
    buckets; missing where the Joshi class is unknown). ``joshi_class`` is a nullable integer.
    """
    import pandas as pd

    selected = _select(locales, include_extra)
    columns = [field.name for field in fields(Language)]
    rows = [[getattr(LANGUAGES[locale], column) for column in columns] for locale in selected]
    table = pd.DataFrame(rows, columns=columns)
    table["joshi_class"] = table["joshi_class"].astype("Int64")
    table["vitality"] = [_vitality_or_none(locale) for locale in selected]
    return table


def format_language_table(
    locales: Iterable[str] | None = None, *, include_extra: bool = False
) -> str:
    """A fixed-width text table for ``nbforget languages``: a header line, then one line a language.

    ``locales`` and ``include_extra`` select rows as in :func:`language_table`; the ``massive``
    column appears only when extra (non-MASSIVE) languages are shown. Missing values print as
    ``-``.
    """
    selected = _select(locales, include_extra)
    show_massive = any(not LANGUAGES[locale].in_massive for locale in selected)
    header = [
        "locale", "name", "script", "latin", "family", "genus",
        "joshi", "vitality", "flores", "xsid",
    ]
    if show_massive:
        header.append("massive")
    lines = [header]
    for locale in selected:
        language = LANGUAGES[locale]
        cells = [
            language.locale,
            language.name,
            language.script,
            "yes" if language.latin else "no",
            language.family,
            language.genus,
            "-" if language.joshi_class is None else str(language.joshi_class),
            _vitality_or_none(locale) or "-",
            language.flores_code or "-",
            language.xsid_code or "-",
        ]
        if show_massive:
            cells.append("yes" if language.in_massive else "no")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
        for line in lines
    )


# --------------------------------------------------------------------------- orders

_ORDER_1 = (
    "en-US ru-RU id-ID vi-VN fa-IR th-TH ja-JP de-DE ro-RO hu-HU fr-FR fi-FI ko-KR es-ES pt-PT "
    "nb-NO el-GR zh-CN da-DK pl-PL he-IL it-IT nl-NL ar-SA tr-TR hi-IN zh-TW ta-IN sv-SE sl-SL "
    "ca-ES ka-GE lv-LV ms-MY bn-BD ml-IN az-AZ ur-PK hy-AM sq-AL te-IN kn-IN is-IS tl-PH mn-MN "
    "my-MM sw-KE km-KH af-ZA am-ET cy-GB jv-ID"
)
_ORDER_2 = (
    "tr-TR ro-RO ur-PK es-ES hi-IN pl-PL hy-AM sv-SE sl-SL ta-IN te-IN ml-IN id-ID ka-GE el-GR "
    "ko-KR de-DE fa-IR ms-MY ca-ES az-AZ nl-NL pt-PT fr-FR hu-HU sw-KE mn-MN he-IL zh-CN fi-FI "
    "ru-RU is-IS cy-GB ja-JP sq-AL vi-VN th-TH jv-ID it-IT my-MM kn-IN lv-LV am-ET nb-NO ar-SA "
    "en-US af-ZA zh-TW bn-BD da-DK km-KH tl-PH"
)
_ORDER_3 = (
    "sv-SE nl-NL fi-FI kn-IN hu-HU ms-MY es-ES my-MM is-IS ko-KR af-ZA vi-VN bn-BD tr-TR tl-PH "
    "lv-LV ru-RU fr-FR en-US ro-RO am-ET he-IL hi-IN ja-JP te-IN id-ID ta-IN it-IT jv-ID nb-NO "
    "ka-GE sq-AL ca-ES az-AZ zh-TW fa-IR mn-MN zh-CN de-DE da-DK ml-IN sw-KE sl-SL km-KH ar-SA "
    "pt-PT cy-GB ur-PK hy-AM el-GR pl-PL th-TH"
)
_ORDER_4_AS_PRINTED = (
    "nb-NO ta-IN th-TH fi-FI ru-RU af-ZA vi-VN ko-KR ro-RO km-KH is-IS ms-MY sl-SL en-US hi-IN "
    "he-IL bn-BD pt-PT fa-IR sv-SE am-ET kn-IN az-AZ tl-PH ar-SA ml-NL cy-GB hy-AM it-IT de-DE "
    "da-DK te-IN hu-HU lv-LV zh-CN mn-MN es-ES ca-ES pl-PL fr-FR ja-JP ka-GE sw-KE id-ID zh-TW "
    "jv-ID sq-AL el-GR tr-TR my-MM ml-IN ur-PK"
)
_ORDER_5 = (
    "mn-MN ml-IN is-IS fa-IR az-AZ pl-PL de-DE ko-KR ar-SA sw-KE jv-ID sq-AL tl-PH ru-RU lv-LV "
    "fr-FR ro-RO ka-GE cy-GB tr-TR he-IL sl-SL af-ZA nl-NL my-MM hu-HU hi-IN vi-VN it-IT pt-PT "
    "da-DK ca-ES am-ET el-GR ta-IN id-ID te-IN sv-SE bn-BD ur-PK en-US kn-IN ms-MY nb-NO es-ES "
    "fi-FI zh-TW zh-CN ja-JP th-TH km-KH hy-AM"
)

PAPER_ORDER_4_AS_PRINTED: tuple[str, ...] = tuple(_ORDER_4_AS_PRINTED.split())
"""Order 4 exactly as printed in Khelli et al. (2025), Table 3, with ``ml-NL`` at position 26."""

PAPER_ORDERS: dict[int, tuple[str, ...]] = {
    1: tuple(_ORDER_1.split()),
    2: tuple(_ORDER_2.split()),
    3: tuple(_ORDER_3.split()),
    # Position 26 (index 25) is printed as 'ml-NL'; nl-NL is the only locale missing there.
    4: tuple("nl-NL" if locale == "ml-NL" else locale for locale in PAPER_ORDER_4_AS_PRINTED),
    5: tuple(_ORDER_5.split()),
}
"""The five language orders of Khelli et al. (2025), Table 3 (order 4 corrected)."""


def _check_paper_orders() -> None:
    # The orders are typed-in data: fail at import rather than train on a wrong order.
    expected = sorted(MASSIVE_LOCALES)
    for number, order in PAPER_ORDERS.items():
        if sorted(order) != expected:
            missing = sorted(set(expected) - set(order))
            extra = sorted(set(order) - set(expected))
            raise RuntimeError(
                f"paper order {number} is not a permutation of the 52 MASSIVE locales: "
                f"missing {missing}, extra {extra}"
            )


_check_paper_orders()


def _check_languages(languages: Iterable[str], what: str) -> list[str]:
    if isinstance(languages, str):
        raise NbforgetError(f"{what} must be a list of locales, got the string {languages!r}")
    checked = [get_language(locale).locale for locale in languages]
    duplicates = sorted({locale for locale in checked if checked.count(locale) > 1})
    if duplicates:
        raise NbforgetError(
            f"{what} lists {', '.join(duplicates)} more than once; list each language once"
        )
    return checked


def paper_order(
    number: int, languages: Iterable[str] | None = None, *, extra: str = "raise"
) -> tuple[str, ...]:
    """Paper order ``number`` (1-5), restricted to ``languages`` with the paper's relative order.

    ``languages=None`` gives the full 52-language order. Languages outside the 52 MASSIVE
    locales (e.g. xSID-only ``kk-KZ``) have no place in the paper's orders: with
    ``extra="raise"`` (default) they raise :class:`NbforgetError` naming them; with
    ``extra="append"`` they are appended after the ordered ones, sorted by locale.
    """
    if isinstance(number, bool) or not isinstance(number, int) or number not in PAPER_ORDERS:
        raise NbforgetError(
            f"unknown paper order {number!r}; paper orders are numbered 1 to {len(PAPER_ORDERS)}"
        )
    if extra not in ("raise", "append"):
        raise NbforgetError(f"extra must be 'raise' or 'append', got {extra!r}")
    order = PAPER_ORDERS[number]
    if languages is None:
        return order
    wanted = set(_check_languages(languages, "languages"))
    extras = sorted(wanted - set(order))
    if extras and extra == "raise":
        raise NbforgetError(
            f"paper order {number} has no place for {', '.join(extras)} (not among the 52 MASSIVE "
            "locales); drop them, give an explicit order or 'random:SEED', "
            "or append them with extra='append'"
        )
    return tuple(locale for locale in order if locale in wanted) + tuple(extras)


def random_order(languages: Iterable[str], seed: int) -> tuple[str, ...]:
    """A random order of ``languages``, fixed by ``seed``.

    The languages are sorted first, so the result does not depend on the input order, then
    shuffled with ``random.Random(seed).shuffle`` (stable across Python versions for int seeds).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NbforgetError(f"random order seed must be an integer, got {seed!r}")
    shuffled = sorted(_check_languages(languages, "languages"))
    random.Random(seed).shuffle(shuffled)
    return tuple(shuffled)


def resolve_order(
    spec: int | str | Sequence[str], languages: Iterable[str], *, extra: str = "raise"
) -> tuple[str, ...]:
    """The training order of ``languages`` described by ``spec``.

    ``spec`` is one of: an int 1-5 (:func:`paper_order`; ``extra`` is passed on), also accepted
    as the string ``"3"`` or ``"paper:3"``; ``"random:SEED"`` (:func:`random_order`); or an
    explicit list of locales, which must be a permutation of ``languages``.
    """
    languages = _check_languages(languages, "languages")
    if isinstance(spec, bool):
        raise NbforgetError(
            f"order {spec!r} is not an order; use 1-5, 'random:SEED' or a list of locales"
        )
    if isinstance(spec, int):
        return paper_order(spec, languages, extra=extra)
    if isinstance(spec, str):
        kind, _, value = spec.strip().partition(":")
        if not value and kind.isdigit():
            kind, value = "paper", kind
        if kind == "paper" and value.strip().isdigit():
            return paper_order(int(value), languages, extra=extra)
        if kind == "random":
            try:
                seed = int(value)
            except ValueError:
                raise NbforgetError(
                    f"order {spec!r}: the seed after 'random:' must be an integer, e.g. 'random:0'"
                ) from None
            return random_order(languages, seed)
        raise NbforgetError(
            f"unknown order {spec!r}; use a paper order 1-5, 'random:SEED' or a list of locales"
        )
    order = _check_languages(spec, "order")
    missing = [locale for locale in languages if locale not in order]
    unexpected = [locale for locale in order if locale not in languages]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unexpected:
            problems.append(f"not among the languages: {', '.join(unexpected)}")
        raise NbforgetError(
            f"order is not a permutation of the languages ({'; '.join(problems)}); "
            "list each language exactly once"
        )
    return tuple(order)
