"""Tests for nbforget.languages: the language table, data set codes, vitality and orders."""

import pytest

from nbforget import NbforgetError
from nbforget.languages import (
    DATASETS,
    LANGUAGES,
    MASSIVE_LOCALES,
    PAPER_ORDER_4_AS_PRINTED,
    PAPER_ORDERS,
    VITALITY_BUCKETS,
    format_language_table,
    get_language,
    language_table,
    locale_for,
    paper_order,
    random_order,
    resolve_order,
    source_code,
    vitality,
)

XSID_CODES = "ar da de de-ba de-muc de-st en gsw id it ja kk lt nap nl no sr tr zh".split()


# --------------------------------------------------------------------------- the table


def test_table_has_the_52_massive_locales_with_script_family_and_joshi_class():
    assert len(MASSIVE_LOCALES) == 52
    assert list(MASSIVE_LOCALES) == sorted(MASSIVE_LOCALES)
    assert "sl-SL" in MASSIVE_LOCALES
    for locale in MASSIVE_LOCALES:
        language = LANGUAGES[locale]
        assert language.in_massive
        assert language.script and language.family and language.genus, locale
        assert language.joshi_class in range(6), locale
        assert language.flores_code, locale


def test_extra_languages_are_the_xsid_only_ones():
    extras = sorted(locale for locale, language in LANGUAGES.items() if not language.in_massive)
    assert extras == ["de-BA", "de-MUC", "de-ST", "gsw-CH", "kk-KZ", "lt-LT", "nap-IT", "sr-RS"]
    assert list(LANGUAGES)[:52] == list(MASSIVE_LOCALES)


def test_every_xsid_code_maps_to_one_language():
    xsid_codes = [language.xsid_code for language in LANGUAGES.values() if language.xsid_code]
    assert sorted(xsid_codes) == sorted(XSID_CODES)


@pytest.mark.parametrize(
    ("locale", "latin"),
    [("en-US", True), ("vi-VN", True), ("tr-TR", True), ("sr-RS", True),
     ("th-TH", False), ("ru-RU", False), ("zh-CN", False), ("ja-JP", False), ("kk-KZ", False)],
)
def test_latin_flag(locale, latin):
    assert get_language(locale).latin is latin


def test_language_table_dataframe():
    table = language_table()
    assert len(table) == 52
    assert list(table.columns) == [
        "locale", "name", "flores_code", "xsid_code", "script", "latin", "family", "genus",
        "glottocode", "joshi_class", "in_massive", "vitality",
    ]
    assert table.set_index("locale").loc["zh-CN", "vitality"] == "high"
    everything = language_table(include_extra=True)
    assert len(everything) == len(LANGUAGES)
    assert everything.set_index("locale")["joshi_class"].isna().sum() == 2  # gsw-CH, de-ST
    assert list(language_table(["th-TH", "en-US"])["locale"]) == ["th-TH", "en-US"]


def test_format_language_table_has_a_header_and_52_data_lines():
    lines = format_language_table().splitlines()
    assert lines[0].split()[:2] == ["locale", "name"]
    assert len(lines) == 1 + 52
    assert any(line.startswith("th-TH") and "tha_Thai" in line for line in lines)
    with_extra = format_language_table(include_extra=True).splitlines()
    assert len(with_extra) == 1 + len(LANGUAGES)
    assert "massive" in with_extra[0]


def test_unknown_locale_error_names_it_the_fix_and_close_matches():
    with pytest.raises(NbforgetError) as error:
        get_language("xx-XX")
    assert "unknown locale 'xx-XX'" in str(error.value)
    assert "'nbforget languages'" in str(error.value)
    with pytest.raises(NbforgetError, match="did you mean 'th-TH'"):
        get_language("th-th")


# --------------------------------------------------------------------------- data set codes


def test_source_code_and_locale_for():
    assert source_code("sib200", "th-TH") == "tha_Thai"
    assert source_code("massive", "th-TH") == "th-TH"
    assert source_code("xsid", "nb-NO") == "no"
    assert locale_for("xsid", "no") == "nb-NO"
    assert locale_for("xsid", "de-muc") == "de-MUC"
    assert locale_for("sib200", "zho_Hant") == "zh-TW"
    assert locale_for("massive", "sl-SL") == "sl-SL"
    for locale in LANGUAGES:
        for dataset in DATASETS:
            try:
                code = source_code(dataset, locale)
            except NbforgetError:
                continue
            assert locale_for(dataset, code) == locale


def test_source_code_errors_name_language_data_set_and_fix():
    expected = r"'kk-KZ' \(Kazakh\) is not in data set 'massive'.*'sib200' or 'xsid'"
    with pytest.raises(NbforgetError, match=expected):
        source_code("massive", "kk-KZ")
    with pytest.raises(NbforgetError, match="'nap-IT'.*'sib200'.*use it with 'xsid'"):
        source_code("sib200", "nap-IT")
    with pytest.raises(NbforgetError, match="unknown data set 'flores'"):
        source_code("flores", "th-TH")
    with pytest.raises(NbforgetError, match="unknown xsid code 'xx'"):
        locale_for("xsid", "xx")


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_data_set_has_codes_for_some_languages(dataset):
    """A data set added to `DatasetName` needs its column of codes in the table."""
    assert any(_has_code(dataset, locale) for locale in LANGUAGES)


def _has_code(dataset, locale):
    try:
        return bool(source_code(dataset, locale))
    except NbforgetError:
        return False


# --------------------------------------------------------------------------- vitality


@pytest.mark.parametrize(
    ("locale", "bucket"),
    [("jv-ID", "low"), ("am-ET", "low"), ("th-TH", "mid"), ("ko-KR", "high"), ("en-US", "high")],
)
def test_vitality_default_buckets(locale, bucket):
    assert vitality(locale) == bucket


def test_vitality_counts_match_the_default_buckets():
    counts = language_table()["vitality"].value_counts().to_dict()
    classes = [LANGUAGES[locale].joshi_class for locale in MASSIVE_LOCALES]
    expected = {
        name: sum(joshi in members for joshi in classes)
        for name, members in VITALITY_BUCKETS.items()
    }
    assert counts == expected


def test_vitality_custom_buckets():
    two_way = {"low": (0, 1, 2, 3), "high": (4, 5)}
    assert vitality("th-TH", two_way) == "low"
    assert vitality("en-US", two_way) == "high"
    with pytest.raises(NbforgetError, match="no bucket"):
        vitality("en-US", {"low": (0, 1, 2, 3), "high": (4,)})
    with pytest.raises(NbforgetError, match="several buckets"):
        vitality("th-TH", {"a": (3,), "b": (3, 4)})
    with pytest.raises(NbforgetError, match="no known Joshi"):
        vitality("gsw-CH")


# --------------------------------------------------------------------------- orders


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_each_paper_order_is_a_permutation_of_the_52_locales(number):
    order = PAPER_ORDERS[number]
    assert len(order) == 52
    assert sorted(order) == list(MASSIVE_LOCALES)


def test_paper_orders_match_the_paper_at_a_few_positions():
    assert PAPER_ORDERS[1][:3] == ("en-US", "ru-RU", "id-ID")
    assert PAPER_ORDERS[1][17] == "zh-CN"  # row 18 of the paper's Figure 7 discussion
    assert PAPER_ORDERS[5][-1] == "hy-AM"


def test_order_4_correction():
    printed = PAPER_ORDER_4_AS_PRINTED
    assert printed[25] == "ml-NL" and "nl-NL" not in printed
    corrected = PAPER_ORDERS[4]
    assert corrected[25] == "nl-NL"
    assert [i for i, (a, b) in enumerate(zip(printed, corrected)) if a != b] == [25]


def test_paper_order_restriction_keeps_relative_order():
    assert paper_order(1, ["jv-ID", "de-DE", "en-US"]) == ("en-US", "de-DE", "jv-ID")
    assert paper_order(3) == PAPER_ORDERS[3]
    subset = MASSIVE_LOCALES[::3]
    restricted = paper_order(2, subset)
    positions = [PAPER_ORDERS[2].index(locale) for locale in restricted]
    assert sorted(restricted) == sorted(subset)
    assert positions == sorted(positions)


def test_paper_order_extra_languages_and_bad_numbers():
    with pytest.raises(NbforgetError, match="kk-KZ.*extra='append'"):
        paper_order(1, ["en-US", "kk-KZ"])
    appended = paper_order(1, ["sr-RS", "de-DE", "kk-KZ", "en-US"], extra="append")
    assert appended == ("en-US", "de-DE", "kk-KZ", "sr-RS")
    for bad in (0, 6, "1", True):
        with pytest.raises(NbforgetError, match="paper order"):
            paper_order(bad)


def test_random_order_is_deterministic_seed_dependent_and_input_order_free():
    languages = list(MASSIVE_LOCALES)
    first = random_order(languages, 7)
    assert first == random_order(list(reversed(languages)), 7)
    assert sorted(first) == languages
    assert first != random_order(languages, 8)
    assert random_order(["th-TH", "en-US"], 0) in {("th-TH", "en-US"), ("en-US", "th-TH")}


def test_resolve_order():
    languages = ["th-TH", "en-US", "de-DE"]
    assert resolve_order(1, languages) == ("en-US", "th-TH", "de-DE")
    assert resolve_order("paper:1", languages) == resolve_order("1", languages)
    assert resolve_order("1", languages) == resolve_order(1, languages)
    assert resolve_order("random:3", languages) == random_order(languages, 3)
    assert resolve_order(["de-DE", "th-TH", "en-US"], languages) == ("de-DE", "th-TH", "en-US")
    with pytest.raises(NbforgetError, match="missing de-DE"):
        resolve_order(["th-TH", "en-US"], languages)
    with pytest.raises(NbforgetError, match="not among the languages: fr-FR"):
        resolve_order(["th-TH", "en-US", "de-DE", "fr-FR"], languages)
    with pytest.raises(NbforgetError, match="more than once"):
        resolve_order(["th-TH", "en-US", "de-DE", "de-DE"], languages)
    with pytest.raises(NbforgetError, match="seed"):
        resolve_order("random:abc", languages)
    with pytest.raises(NbforgetError, match="unknown order"):
        resolve_order("alphabetical", languages)
