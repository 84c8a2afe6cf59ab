"""Tests for nbforget.data: preparation, the three loaders, BIO conversion, pretraining text.

The real data come from the mirror beside the repository (``../shared/data``, or the folder
named by NBFORGET_DATA_MIRROR), prepared once per session into a temporary folder. Edge cases
use small files written here.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from nbforget import NbforgetError
from nbforget.data import (
    annotation_to_bio,
    available_sib200_languages,
    load_massive,
    load_task,
    load_xsid,
    prepare_data,
    pretraining_text,
    require_nonempty,
    verify_data,
)
from nbforget.data import prepare as prepare_module
from nbforget.data.text import sentence_key
from nbforget.languages import LANGUAGES, locale_for
from nbforget.scoring import massive_spans_to_bio, slot_f1

MIRROR = Path(os.environ.get("NBFORGET_DATA_MIRROR")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, offline) -> Path:
    if not (MIRROR / "sib200").is_dir():
        pytest.skip(f"data mirror {MIRROR} is absent (set NBFORGET_DATA_MIRROR to a copy)")
    data_dir = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data(MIRROR, data_dir, online=False, progress=False)
    return data_dir


# ----------------------------------------------------------------------------- a tiny mirror


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def conll(sentences) -> str:
    """CoNLL text from (headers, [(word, tag), ...]) pairs; intent = headers['intent']."""
    blocks = []
    for headers, tokens in sentences:
        lines = [f"# {key} = {value}" for key, value in headers.items()]
        lines += [f"{i}\t{word}\t{headers['intent']}\t{tag}"
                  for i, (word, tag) in enumerate(tokens, 1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


def massive_row(partition, annot, *, locale="en-US", intent="alarm_set", **extra) -> str:
    utt = annot.replace("[", "").replace("]", "")
    for name in ("time", "date", "artist_name", "music_genre", "person"):
        utt = utt.replace(f"{name} : ", "")
    row = {"id": "1", "locale": locale, "partition": partition, "utt": utt, "annot_utt": annot}
    if intent:
        row["intent"] = intent
    return json.dumps({**row, **extra}, ensure_ascii=False)


def make_tiny_mirror(root: Path) -> Path:
    sib = root / "sib200" / "eng_Latn"
    header = "index_id\tcategory\ttext\n"
    write(sib / "train.tsv", header + "1\tsports\tThe match was won.\n"
          '2\ttravel\t"A ""quoted"" trip."\n3\tsports\tTom plays chess.\n')
    write(sib / "dev.tsv", header + "4\ttravel\tThe dev sentence.\n")
    write(sib / "test.tsv", header + "5\tsports\tThe test sentence.\n")
    write(sib / "labels.txt", "sports\ntravel\n")
    valid = [({"text": "wake me", "intent": "alarm/set_alarm"}, [("wake", "O"), ("me", "O")])]
    test = [({"text": f"test sentence {n}", "intent": "weather/find"},
             [("test", "O"), ("sentence", "O"), (str(n), "B-datetime")]) for n in range(1, 6)]
    test[0] = ({"text": "show all reminders", "intent": "reminder/show_reminders"},
               [("show", "O"), ("all", "B-reference"), ("reminders", "O")])
    write(root / "xsid" / "en.valid.conll", conll(valid))
    write(root / "xsid" / "en.test.conll", conll(test))
    write(root / "massive" / "en-US.jsonl", "\n".join([
        massive_row("train", "wake me up at [time : nine am]"),
        massive_row("dev", "what is the weather"),
        massive_row("test", "olly set an alarm for [date : monday]"),
    ]) + "\n")
    write(root / "tatoeba" / "tatoeba.fra-eng.fra", "Bonjour.\nMerci.\n")
    write(root / "tatoeba" / "tatoeba.fra-eng.eng",
          "Hello there.\nShow all reminders!\nThe Test Sentence\nOlly, set an alarm for Monday.\n")
    write(root / "meta" / "massive_locales.tsv", "locale\tflores200_code\n")
    return root


@pytest.fixture
def tiny_mirror(tmp_path) -> Path:
    return make_tiny_mirror(tmp_path / "mirror")


@pytest.fixture
def tiny_prepared(tiny_mirror, tmp_path) -> Path:
    data_dir = tmp_path / "data"
    prepare_data(tiny_mirror, data_dir, online=False, progress=False)
    return data_dir


# ----------------------------------------------------------------------------- row counts


def test_massive_th_th_has_the_mirror_row_counts(prepared):
    task = load_task("massive", "th-TH", prepared)
    assert task.counts() == {"train": 11514, "dev": 2033, "test": 2974}
    assert task.intents is None  # the mirror's th-TH rows carry no intent
    assert task.labels[0] == "O" and "B-time" in task.labels and "I-time" in task.labels
    for example in task.splits["train"][:200]:
        assert len(example.words) == len(example.tags)


def test_massive_en_us_counts_match_the_file_and_train_is_empty(prepared):
    partitions = {"train": 0, "dev": 0, "test": 0}
    with open(MIRROR / "massive" / "en-US.jsonl", encoding="utf-8") as lines:
        for line in lines:
            partitions[json.loads(line)["partition"]] += 1
    task = load_task("massive", "en-US", prepared)
    assert task.counts() == partitions and partitions["train"] == 0
    assert task.intents and all(example.label for example in task.splits["dev"])
    with pytest.raises(NbforgetError, match="empty split 'train' for massive/en-US: no rows"):
        require_nonempty(task, ("train",))
    assert require_nonempty(task, ("dev", "test")) is task


def sib200_file_rows(code: str, split: str) -> int:
    with open(MIRROR / "sib200" / code / f"{split}.tsv", encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.reader(handle, delimiter="\t")) - 1


def test_sib200_counts_match_the_files_for_every_project_language(prepared):
    assert load_task("sib200", "en-US", prepared).counts() == {"train": 701, "dev": 99, "test": 204}
    codes = {language.flores_code: locale for locale, language in LANGUAGES.items()
             if language.flores_code}
    assert set(codes) <= set(available_sib200_languages(prepared / "raw" / "sib200"))
    for code, locale in codes.items():
        task = load_task("sib200", locale, prepared)
        assert task.source_code == code and len(task.labels) == 7
        assert task.counts() == {split: sib200_file_rows(code, split) for split in task.splits}


def xsid_sentences(path: Path) -> int:
    """Sentences in a file, counting only Bokmål in the Norwegian one."""
    text = path.read_text(encoding="utf-8")
    return text.count("# dialect = B\n") if "# dialect" in text else text.count("# text = ")


def test_xsid_counts_follow_the_every_fifth_sentence_rule(prepared):
    codes = sorted(p.name.split(".")[0] for p in (MIRROR / "xsid").glob("*.test.conll"))
    assert len(codes) == 19
    for code in codes:
        task = load_task("xsid", locale_for("xsid", code), prepared)
        in_test_file = xsid_sentences(MIRROR / "xsid" / f"{code}.test.conll")
        expected = {"train": xsid_sentences(MIRROR / "xsid" / f"{code}.valid.conll"),
                    "dev": in_test_file // 5, "test": in_test_file - in_test_file // 5}
        assert task.counts() == expected, code
        assert task.intents and task.labels[0] == "O"
    assert load_task("xsid", "de-DE", prepared).counts() == {"train": 300, "dev": 100, "test": 400}


def test_xsid_dev_sets_are_parallel_across_languages(prepared):
    english = load_task("xsid", "en-US", prepared)
    for locale in ("de-DE", "nb-NO", "lt-LT", "ja-JP"):  # not de-BA: see nbforget.data.xsid
        other = load_task("xsid", locale, prepared)
        expected = [e.label for e in english.splits["dev"]][: len(other.splits["dev"])]
        assert [e.label for e in other.splits["dev"]] == expected, locale


def test_manifest_records_hashes_and_row_counts(prepared):
    manifest = json.loads((prepared / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest["rows"]["massive"]["th-TH"] == {"train": 11514, "dev": 2033, "test": 2974}
    assert manifest["rows"]["sib200"]["eng_Latn"] == {"train": 701, "dev": 99, "test": 204}
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert "raw/xsid/no.test.conll" in manifest["files"]


# ----------------------------------------------------------------------------- MASSIVE parsing


@pytest.mark.parametrize(
    ("annotation", "words", "tags"),
    [
        ("wake me up at [time : nine am]", "wake me up at nine am", "O O O O B-time I-time"),
        ("[time : nine am] wake me", "nine am wake me", "B-time I-time O O"),
        ("[date : friday] [time : nine am]", "friday nine am", "B-date B-time I-time"),
        ("[time : nine]", "nine", "B-time"),
        ("no slots here", "no slots here", "O O O"),
        ("send to [person : robert], now", "send to robert , now", "O O B-person O O"),
        ("at [time : 10 : 30]", "at 10 : 30", "O B-time I-time I-time"),
        # adjacent slots of one type are one span (MASSIVE's convention); a word between splits them
        ("in [place_name : tokyo] [place_name : japan]", "in tokyo japan", "O B-place_name I-place_name"),
        ("[date : twenty fifth] [date : may]", "twenty fifth may", "B-date I-date I-date"),
        ("[date : monday][date : may]", "monday may", "B-date I-date"),
        ("[date : monday] or [date : may]", "monday or may", "B-date O B-date"),
        ("[date : monday] [time : nine] [date : may]", "monday nine may", "B-date B-time B-date"),
    ],
)
def test_annotation_to_bio(annotation, words, tags):
    assert annotation_to_bio(annotation) == (words.split(), tags.split())


SLOT = re.compile(r"\[([^\[\]]+?) : ([^\[\]]+)\]")


def massive_words(annotation: str) -> list[tuple[str, str]]:
    """``(word, slot name)`` per word (``Other`` outside slots), as MASSIVE's baseline labels words
    (a bracket is a word boundary); written here without the loader's parser."""
    words, position = [], 0
    for match in SLOT.finditer(annotation):
        words += [(word, "Other") for word in annotation[position:match.start()].split()]
        words += [(word, match.group(1).strip()) for word in match.group(2).split()]
        position = match.end()
    return words + [(word, "Other") for word in annotation[position:].split()]


def test_massive_gold_converted_by_massive_convention_scores_one_on_en_us_dev(prepared):
    rows = [json.loads(line) for line in open(MIRROR / "massive" / "en-US.jsonl", encoding="utf-8")]
    rows = [row for row in rows if row["partition"] == "dev"]
    words = [massive_words(row["annot_utt"]) for row in rows]
    dev = load_task("massive", "en-US", prepared).splits["dev"]
    assert [example.words for example in dev] == [tuple(word for word, _ in row) for row in words]
    predicted = [massive_spans_to_bio([name for _, name in row]) for row in words]
    gold = [list(example.tags) for example in dev]
    assert slot_f1(gold, predicted) == 1.0
    assert gold == predicted
    # the case occurs in the real rows (two brackets of one type, nothing between), so this can fail
    adjacent = [row for row in rows if re.search(r"\[(\w+) : [^\]]*\] \[\1 :", row["annot_utt"])]
    assert len(adjacent) >= 5
    tokyo = next(example for row, example in zip(rows, dev)
                 if row["annot_utt"] == "what time is it in [place_name : tokyo] [place_name : japan]")
    assert tokyo.tags == ("O", "O", "O", "O", "O", "B-place_name", "I-place_name")


def test_cjk_locales_split_into_characters_keeping_ascii_words(tmp_path):
    path = write(tmp_path / "zh-CN.jsonl", massive_row(
        "train", "播放 [artist_name : taylor swift] 的 [music_genre : 摇滚乐]", locale="zh-CN")
        + "\n")
    example = load_massive(path, "zh-CN").splits["train"][0]
    assert example.words == ("播", "放", "taylor", "swift", "的", "摇", "滚", "乐")
    assert example.tags == ("O", "O", "B-artist_name", "I-artist_name", "O",
                            "B-music_genre", "I-music_genre", "I-music_genre")
    assert annotation_to_bio("[time : 7点]", by_character=True) == (
        ["7", "点"], ["B-time", "I-time"])


def test_massive_accepts_validation_official_layout_and_rows_without_intent(tmp_path):
    write(tmp_path / "1.1" / "data" / "th-TH.jsonl", "\n".join([
        massive_row("train", "a [time : b]", locale="th-TH", intent=None),
        massive_row("validation", "c", locale="th-TH", intent=None),
        massive_row("MMNLU-22", "hidden", locale="th-TH", intent=None),
    ]) + "\n")
    task = load_massive(tmp_path, "th-TH")
    assert task.counts() == {"train": 1, "dev": 1, "test": 0} and task.intents is None
    assert task.labels == ("O", "B-time", "I-time")


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        ("wake me at [time : nine am", "never closed"),
        ("wake me at time : nine am]", "closes no"),
        ("wake me at [time nine am]", "lacks ' : '"),
        ("wake me at [ : nine am]", "empty or spaced slot name"),
        ("wake me at [time : ]", "has no words"),
        ("[time : [date : x]]", "inside a slot"),
    ],
)
def test_malformed_annotation_names_file_and_line(tmp_path, annotation, problem):
    path = write(tmp_path / "en-US.jsonl", "\n".join([
        massive_row("train", "fine"), massive_row("dev", "also [date : fine]"),
        massive_row("test", annotation)]) + "\n")
    with pytest.raises(NbforgetError, match=rf"en-US\.jsonl:3: malformed annot_utt .*{problem}"):
        load_massive(path, "en-US")


# ----------------------------------------------------------------------------- xSID quirks


def test_xsid_quirks_dialects_empty_words_and_comments(tmp_path):
    sentences = [
        ({"id": "2/B", "text-en": "x", "text": "vis alle", "intent": "show", "dialect": "B"},
         [("vis", "O"), ("", "O"), ("alle", "B-reference")]),
        ({"id": "1/3", "text": "dialect", "intent": "show", "dialect": "T"}, [("dialekt", "O")]),
        ({"id": "1/B", "text": "Sett alarm", "intent": "set", "dialect": "B"},
         [("Sett", "B-todo"), ("", "B-x"), ("alarm", "I-x")]),
    ]
    write(tmp_path / "no.valid.conll", "# slots: 0:3:datetime\n" + conll(sentences))
    write(tmp_path / "no.test.conll", conll(sentences))
    task = load_xsid(tmp_path, "nb-NO")
    train = task.splits["train"]
    assert [e.words for e in train] == [("Sett", "alarm"), ("vis", "alle")]  # ordered by id
    assert train[0].tags == ("B-todo", "B-x")  # I-x after a dropped B-x starts a slot
    assert [e.label for e in train] == ["set", "show"]
    assert task.counts() == {"train": 2, "dev": 0, "test": 2}


def test_xsid_bad_column_count_names_file_and_line(tmp_path):
    write(tmp_path / "en.valid.conll", "# text = a b\n# intent = x\n1\ta\tx\tO\n2\tb\tx\n\n")
    write(tmp_path / "en.test.conll", "# text = a\n# intent = x\n1\ta\tx\tO\n\n")
    with pytest.raises(NbforgetError, match=r"en\.valid\.conll:4: 3 tab-separated columns"):
        load_xsid(tmp_path, "en-US")


# ----------------------------------------------------------------------------- errors


def test_unknown_locale_data_set_and_missing_language(prepared):
    with pytest.raises(NbforgetError, match="xx-XX"):
        load_task("massive", "xx-XX", prepared)
    with pytest.raises(NbforgetError, match="unknown data set 'flores'.*massive, sib200, xsid"):
        load_task("flores", "th-TH", prepared)
    with pytest.raises(NbforgetError, match="'th-TH'.*'xsid'"):
        load_task("xsid", "th-TH", prepared)
    with pytest.raises(NbforgetError, match="no MASSIVE file for locale 'de-DE'.*en-US, th-TH"):
        load_task("massive", "de-DE", prepared)


def test_missing_or_unprepared_data_folder(tmp_path):
    first = r"does not exist; run `nbforget data` \(or `make data`\) first"
    with pytest.raises(NbforgetError, match=first):
        load_task("sib200", "th-TH", tmp_path / "data")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    with pytest.raises(NbforgetError, match="not prepared.*MANIFEST.json.*run `nbforget data`"):
        load_task("sib200", "th-TH", tmp_path / "data")
    with pytest.raises(NbforgetError, match="run `nbforget data`"):
        pretraining_text(["th-TH"], tmp_path / "data")


# ----------------------------------------------------------------------------- preparing


def test_prepare_again_copies_nothing(prepared):
    before = (prepared / "MANIFEST.json").stat().st_mtime_ns
    summary = prepare_data(MIRROR, prepared, online=False, progress=False)
    assert summary["copied"] == 0 and summary["bytes_copied"] == 0
    assert summary["files"] > 1000 and summary["mode"] == "mirror"
    assert (prepared / "MANIFEST.json").stat().st_mtime_ns == before


def test_tiny_prepare_layout_counts_and_idempotence(tiny_mirror, tmp_path):
    summary = prepare_data(tiny_mirror, tmp_path / "data", online=False, progress=False)
    assert summary["copied"] == summary["files"] == 10
    assert (tmp_path / "data" / "raw" / "sib200" / "eng_Latn" / "train.tsv").is_file()
    assert summary["rows"]["sib200"]["eng_Latn"] == {"train": 3, "dev": 1, "test": 1}
    assert summary["rows"]["xsid"]["en"] == {"train": 1, "dev": 1, "test": 4}
    assert summary["rows"]["massive"]["en-US"] == {"train": 1, "dev": 1, "test": 1}
    assert prepare_data(tiny_mirror, tmp_path / "data", online=False, progress=False)["copied"] == 0
    quoted = load_task("sib200", "en-US", tmp_path / "data").splits["train"][1]
    assert quoted.words == ("A", '"quoted"', "trip.")


def test_verification_detects_a_corrupted_file_and_prepare_repairs_it(tiny_mirror, tiny_prepared):
    assert verify_data(tiny_prepared)["files"] == 10
    victim = tiny_prepared / "raw" / "sib200" / "eng_Latn" / "dev.tsv"
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x01  # same size, different content
    victim.write_bytes(bytes(data))
    changed = r"raw/sib200/eng_Latn/dev\.tsv: sha256 differs.*nbforget data"
    with pytest.raises(NbforgetError, match=changed):
        verify_data(tiny_prepared)
    assert prepare_data(tiny_mirror, tiny_prepared, online=False, progress=False)["copied"] == 1
    verify_data(tiny_prepared)


def test_interrupted_prepare_leaves_no_manifest(tiny_mirror, tiny_prepared, monkeypatch):
    write(tiny_mirror / "sib200" / "eng_Latn" / "labels.txt", "sports\ntravel\nhealth\n")

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "_copy_verified", fail)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(tiny_mirror, tiny_prepared, online=False, progress=False)
    with pytest.raises(NbforgetError, match="not prepared"):
        load_task("sib200", "en-US", tiny_prepared)


def test_offline_without_mirror_says_how_to_provide_the_data(tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")  # no ../shared/data here
    monkeypatch.delenv("NBFORGET_DATA_MIRROR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("NBFORGET_OFFLINE", "1")
    monkeypatch.setattr(prepare_module.socket, "create_connection", pytest.fail)  # never probes
    with pytest.raises(NbforgetError) as error:
        prepare_data(None, tmp_path / "repo" / "data", progress=False)
    message = str(error.value)
    assert "offline (NBFORGET_OFFLINE=1)" in message
    assert "--source PATH" in message and "NBFORGET_DATA_MIRROR" in message and "online" in message
    assert not (tmp_path / "repo" / "data").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("NBFORGET_OFFLINE")
    with pytest.raises(NbforgetError, match="offline \\(online=False\\)"):
        prepare_data(None, tmp_path / "repo" / "data", online=False, progress=False)


def test_mirror_from_environment_or_default_folder(tiny_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("NBFORGET_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(NbforgetError, match="NBFORGET_DATA_MIRROR"):
        prepare_data(None, tmp_path / "data", progress=False)
    monkeypatch.setenv("NBFORGET_DATA_MIRROR", str(tiny_mirror))
    assert prepare_data(None, tmp_path / "data", progress=False)["source"] == str(tiny_mirror)
    monkeypatch.delenv("NBFORGET_DATA_MIRROR")
    make_tiny_mirror(tmp_path / "shared" / "data")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    summary = prepare_data(None, Path("data"), progress=False)
    assert summary["source"] == str((tmp_path / "shared" / "data").resolve())
    with pytest.raises(NbforgetError, match="--source"):
        prepare_data(tmp_path / "nowhere", Path("data"), progress=False)
    shutil.rmtree(tmp_path / "shared" / "data" / "tatoeba")
    with pytest.raises(NbforgetError, match="lacks the folder\\(s\\) tatoeba"):
        prepare_data(None, Path("data"), progress=False)


# ----------------------------------------------------------------------------- pretraining text


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_pretraining_text_excludes_dev_and_test_sentences(prepared):
    locales = ["th-TH", "en-US", "de-DE", "nb-NO", "zh-CN", "gsw-CH", "de-BA"]
    texts = pretraining_text(locales, prepared)
    assert texts == pretraining_text(locales, prepared)  # deterministic
    for locale in locales:
        assert texts[locale], locale
        held_out = set()
        for dataset in ("sib200", "xsid", "massive"):
            try:
                task = load_task(dataset, locale, prepared)
            except NbforgetError:
                continue
            held_out |= {normalized(example.text)
                         for split in ("dev", "test") for example in task.splits[split]}
        pretraining = {normalized(sentence) for sentence in texts[locale]}
        assert not pretraining & held_out, locale
        assert len(pretraining) == len(texts[locale])  # no duplicates
    sib_train = load_task("sib200", "th-TH", prepared).splits["train"]
    assert texts["th-TH"][0] == sib_train[0].text  # SIB-200 train first, then Tatoeba
    assert len(texts["th-TH"]) > len(sib_train)
    bavarian = load_task("xsid", "de-BA", prepared).splits["train"]  # no SIB-200, no Tatoeba
    assert {sentence_key(s) for s in texts["de-BA"]} <= {sentence_key(e.text) for e in bavarian}


def test_pretraining_text_drops_task_sentences_found_in_tatoeba(tiny_prepared):
    english = pretraining_text(["en-US"], tiny_prepared)["en-US"]
    # "Show all reminders!" is an xSID test sentence, "The Test Sentence" a SIB-200 test one,
    # "Olly, set an alarm for Monday." a MASSIVE test utterance: all three are dropped.
    assert english == ["The match was won.", 'A "quoted" trip.', "Tom plays chess.", "Hello there."]
    everything = pretraining_text(["en-US"], tiny_prepared, exclude_tasks=())["en-US"]
    assert "Show all reminders!" in everything
    with pytest.raises(NbforgetError, match="unknown task"):
        pretraining_text(["en-US"], tiny_prepared, exclude_tasks=("flores",))


def test_online_preparation_extracts_the_official_archives(tiny_mirror, tmp_path, monkeypatch):
    """The download path, with every official URL answered by a local archive of the tiny mirror."""
    archives = tmp_path / "archives"
    archives.mkdir()

    def archive(name: str, top: str, members: dict[str, Path]) -> Path:
        path = archives / name
        with tarfile.open(path, "w:gz") as tar:
            for inner, source in members.items():
                tar.add(source, arcname=f"{top}/{inner}")
            tar.add(tiny_mirror / "meta" / "massive_locales.tsv", arcname=f"{top}/README.md")
        return path

    files = {
        "sib200": archive("sib.tar.gz", "sib-200-x", {
            f"data/annotated/eng_Latn/{p.name}": p
            for p in (tiny_mirror / "sib200" / "eng_Latn").iterdir()}),
        "xsid": archive("xsid.tar.gz", "xsid-x", {
            f"data/xSID-0.7/{p.name}": p for p in (tiny_mirror / "xsid").iterdir()}),
        "massive": archive("massive.tar.gz", "1.1",
                           {"data/en-US.jsonl": tiny_mirror / "massive" / "en-US.jsonl"}),
        "tatoeba": archive("laser.tar.gz", "LASER-x", {
            f"data/tatoeba/v1/{p.name}": p for p in (tiny_mirror / "tatoeba").iterdir()}),
        "meta": write(archives / "languages.csv", "ID,Name\n"),
    }
    urls = {source.url: files[source.folder] for source in prepare_module.ONLINE_SOURCES}
    monkeypatch.setattr(prepare_module, "_open_url", lambda url: open(urls[url], "rb"))
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delenv("NBFORGET_DATA_MIRROR", raising=False)
    summary = prepare_data(None, Path("data"), online=True, progress=False)
    assert summary["mode"] == "online" and summary["copied"] == 11  # 10 data files + SOURCES.md
    assert summary["rows"]["xsid"]["en"] == {"train": 1, "dev": 1, "test": 4}
    assert Path("data/raw/meta/wals_languages.csv").is_file()
    assert not Path("data/raw/sib200/README.md").exists()
    assert load_task("massive", "en-US", Path("data")).counts() == {"train": 1, "dev": 1, "test": 1}
    assert prepare_data(None, Path("data"), online=True, progress=False)["copied"] == 0
