"""Prepare the project's data folder (``data/``, ignored by git) from a mirror or official sources.

Layout of the prepared folder::

    data/
      MANIFEST.json        written last: sha256 and size of every file, rows per data set and split
      raw/
        SOURCES.md         provenance of every folder
        sib200/<flores_code>/{train,dev,test}.tsv, labels.txt
        xsid/<code>.{valid,test}.conll, LICENSE.md
        massive/<locale>.jsonl
        tatoeba/tatoeba.<iso3>-eng.{<iso3>,eng}
        meta/massive_locales.tsv, wals_languages.csv
        xcopa/...          optional: copied when the mirror has it

Where the files come from (first match wins):

1. the ``source`` argument (``nbforget data --source PATH``): a mirror folder laid out like
   ``shared/data`` (``sib200/``, ``xsid/``, ``massive/``, ``tatoeba/``, ``meta/``);
2. the folder named by the environment variable ``NBFORGET_DATA_MIRROR``;
3. ``../shared/data`` seen from the current working directory, i.e. beside the repository when
   ``nbforget data`` or ``make data`` runs from its root, if that folder exists;
4. the official public sources (`ONLINE_SOURCES`), downloaded, when the machine is online.
   It counts as offline when ``online=False``, when ``HF_HUB_OFFLINE`` or ``NBFORGET_OFFLINE``
   is set to 1, or when github.com cannot be reached within a few seconds. Offline without a
   mirror is an error that says how to provide the data.

Preparing is idempotent: a file whose copy already has the source's size and sha256 is not
copied again. Every copied file is re-read and checked against the source's sha256. The manifest
is removed before the first file changes and written last (to a temporary file, then renamed), so
a folder whose preparation was interrupted has no manifest and counts as not prepared.
`verify_data` re-checks a prepared folder against its manifest; `check_prepared_files` checks the
files a run is about to read (size always, sha256 of a file changed after the manifest was written).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tarfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from nbforget import NbforgetError
from nbforget.data.files import damaged_file
from nbforget.languages import DATASETS

MANIFEST = "MANIFEST.json"
RAW = "raw"
MIRROR_ENV = "NBFORGET_DATA_MIRROR"
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "NBFORGET_OFFLINE")
REQUIRED_FOLDERS = (*DATASETS, "tatoeba", "meta")  # a mirror's (and data/raw's) folders
MIRROR_LAYOUT = f"{', '.join(f'{name}/' for name in REQUIRED_FOLDERS[:-1])} and {REQUIRED_FOLDERS[-1]}/"
OPTIONAL_FOLDERS = ("xcopa",)
FORMAT_VERSION = 1
PROBE_HOST = "github.com"
CHUNK = 1 << 20


# ----------------------------------------------------------------------------- where things are


def default_mirror() -> Path:
    """``../shared/data`` relative to the current working directory (the repository root)."""
    return Path.cwd().parent / "shared" / "data"


def find_mirror(source: Path | str | None = None) -> Path | None:
    """The mirror folder to copy from (see the module doc), or None when there is none.

    An explicitly named folder (argument or environment variable) that does not exist is an
    error rather than a silent fall-back to downloading.
    """
    if source is not None:
        path = Path(source).expanduser()
        if not path.is_dir():
            raise NbforgetError(f"data mirror {path} (--source) is not a folder; pass the folder "
                                f"that holds {MIRROR_LAYOUT}")
        return path.resolve()
    if os.environ.get(MIRROR_ENV):
        path = Path(os.environ[MIRROR_ENV]).expanduser()
        if not path.is_dir():
            raise NbforgetError(f"data mirror {path} (environment variable {MIRROR_ENV}) is not a "
                                f"folder; fix or unset {MIRROR_ENV}")
        return path.resolve()
    path = default_mirror()
    return path.resolve() if path.is_dir() else None


def require_prepared(data_dir: Path | str) -> Path:
    """The ``raw/`` folder of a prepared data folder; a clear error when it is not prepared."""
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST).is_file():
        return data_dir / RAW
    if not data_dir.exists():
        problem = f"the prepared data folder {data_dir} does not exist"
    else:
        problem = (f"the data folder {data_dir} is not prepared ({MANIFEST} is missing; an earlier "
                   "preparation may have been interrupted)")
    raise NbforgetError(f"{problem}; run `nbforget data` (or `make data`) first, or point data_dir at a "
                        "prepared folder")


def raw_folder(data_dir: Path | str, dataset: str) -> Path:
    """``<data_dir>/raw/<dataset>`` of a prepared data folder."""
    return require_prepared(data_dir) / dataset


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def offline_reason() -> str | None:
    """Why this machine counts as offline by its environment, or None."""
    for name in OFFLINE_ENVS:
        if _env_flag(name):
            return f"{name}={os.environ[name]}"
    return None


def is_online(timeout: float = 3.0) -> bool:
    """False when an offline variable is set, else whether github.com answers within ``timeout``
    seconds (name lookup included: the probe runs in a thread that is not waited for longer)."""
    if offline_reason():
        return False
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((PROBE_HOST, 443), timeout=timeout):
                answered.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


# ----------------------------------------------------------------------------- hashing, writing


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _copy_verified(source: Path, target: Path, expected_sha256: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    if sha256_of(temporary) != expected_sha256:
        temporary.unlink()
        raise NbforgetError(f"copy of {source} to {target} does not match the source's sha256 "
                            "(disk full or the source changed while copying); run again")
    os.replace(temporary, target)


def read_manifest(data_dir: Path | str) -> dict | None:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


# ----------------------------------------------------------------------------- checks on load

_checked: dict[tuple[str, int, int], bool] = {}  # (file, size, mtime_ns) -> its sha256 matched the manifest


def check_prepared_files(data_dir: Path | str, prefixes: tuple[str, ...]) -> None:
    """Check the files of the manifest whose paths start with one of `prefixes` (relative to
    `data_dir`, e.g. ``raw/sib200/tha_Thai/``) before they are read: each must exist and have its
    recorded size, and a file changed after the manifest was written must have its sha256.
    (A file cut short at a line boundary still parses, into fewer rows, so parsing cannot tell.)"""
    data_dir = Path(data_dir)
    require_prepared(data_dir)
    manifest = read_manifest(data_dir)
    if not manifest or not isinstance(manifest.get("files"), dict):
        raise NbforgetError(f"{data_dir / MANIFEST} is unreadable; run `nbforget data` again")
    written = (data_dir / MANIFEST).stat().st_mtime_ns
    for relative, expected in manifest["files"].items():
        if not relative.startswith(prefixes):
            continue
        path = data_dir / relative
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise damaged_file(path, f"is missing ({MANIFEST} lists it)") from None
        if stat.st_size != expected["bytes"]:
            raise damaged_file(path, f"has {stat.st_size} bytes where {MANIFEST} records {expected['bytes']} "
                                     "(cut short or changed)")
        if stat.st_mtime_ns > written:
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            if key not in _checked:
                _checked[key] = sha256_of(path) == expected["sha256"]
            if not _checked[key]:
                raise damaged_file(path, f"changed after `nbforget data` prepared it (its sha256 differs from "
                                         f"{MANIFEST})")


# ----------------------------------------------------------------------------- row counts


def count_rows(raw: Path) -> dict[str, dict]:
    """Rows per data set, language code and split, as the loaders report them."""
    from nbforget.data.massive import read_massive_file
    from nbforget.data.sib200 import available_sib200_languages, read_sib200_splits
    from nbforget.data.xsid import read_xsid_splits

    def counts(splits: dict) -> dict[str, int]:
        return {split: len(examples) for split, examples in splits.items()}

    rows: dict[str, dict] = {"sib200": {}, "xsid": {}, "massive": {}, "tatoeba": {}}
    for code in available_sib200_languages(raw / "sib200"):
        rows["sib200"][code] = counts(read_sib200_splits(raw / "sib200", code)[0])
    for path in sorted((raw / "xsid").glob("*.test.conll")):
        code = path.name[: -len(".test.conll")]
        if (raw / "xsid" / f"{code}.valid.conll").is_file():
            rows["xsid"][code] = counts(read_xsid_splits(raw / "xsid", code))
    for path in sorted((raw / "massive").glob("*.jsonl")):
        rows["massive"][path.stem] = counts(read_massive_file(path, path.stem)[0])
    for path in sorted((raw / "tatoeba").glob("tatoeba.*")):
        with open(path, encoding="utf-8") as lines:
            rows["tatoeba"][path.name] = sum(1 for line in lines if line.strip())
    return rows


# ----------------------------------------------------------------------------- preparing


def _mirror_files(mirror: Path) -> list[tuple[Path, str]]:
    """``(source file, path relative to the data folder)`` of everything to copy, sorted."""
    missing = [name for name in REQUIRED_FOLDERS if not (mirror / name).is_dir()]
    if missing:
        raise NbforgetError(f"data mirror {mirror} lacks the folder(s) {', '.join(missing)}; a "
                            f"mirror holds {MIRROR_LAYOUT} (as shared/data does): fix the mirror "
                            "or pass another with --source")
    files = []
    if (mirror / "SOURCES.md").is_file():
        files.append((mirror / "SOURCES.md", f"{RAW}/SOURCES.md"))
    for name in REQUIRED_FOLDERS + OPTIONAL_FOLDERS:
        folder = mirror / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(mirror)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                files.append((path, f"{RAW}/{relative.as_posix()}"))
    return files


def _copy_from_mirror(mirror: Path, dest: Path, progress: bool) -> tuple[dict, int, int]:
    """Copy what differs; return the file table, the number of files copied and bytes copied."""
    files = _mirror_files(mirror)
    table: dict[str, dict] = {}
    copied = copied_bytes = 0
    total = sum(path.stat().st_size for path, _ in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="nbforget data",
              disable=not progress) as bar:
        for path, relative in files:
            size = path.stat().st_size
            digest = sha256_of(path)
            target = dest / relative
            same = (target.is_file() and target.stat().st_size == size
                    and sha256_of(target) == digest)
            if not same:
                if copied == 0:
                    (dest / MANIFEST).unlink(missing_ok=True)
                _copy_verified(path, target, digest)
                copied += 1
                copied_bytes += size
            table[relative] = {"sha256": digest, "bytes": size}
            bar.update(size)
    return table, copied, copied_bytes


def prepare_data(
    source: Path | str | None = None,
    dest: Path | str = Path("data"),
    *,
    online: bool | None = None,
    progress: bool = True,
) -> dict:
    """Fill ``dest`` (the repository's ``data/`` by default) from a mirror or the official sources.

    ``online``: None detects it (see `is_online`); True allows downloading when there is no
    mirror; False forbids it. Returns a summary: mode, source, dest, files, copied,
    bytes_copied, rows (per data set, code and split) and the manifest path.
    """
    dest = Path(dest)
    mirror = find_mirror(source)
    if mirror is not None:
        if dest.resolve() == mirror or mirror in dest.resolve().parents:
            raise NbforgetError(f"data folder {dest} lies inside the mirror {mirror}; prepare "
                                "into the repository's data/ folder instead")
        table, copied, copied_bytes = _copy_from_mirror(mirror, dest, progress)
        mode, origin = "mirror", str(mirror)
    else:
        explicit_offline = online is False
        if online is None:
            online = is_online()
        if not online:
            reason = ("online=False" if explicit_offline else
                      offline_reason() or f"{PROBE_HOST} cannot be reached")
            raise NbforgetError(
                f"no data mirror found and this machine is offline ({reason}). Looked for "
                f"--source, the environment variable {MIRROR_ENV}, and {default_mirror()}. "
                f"Provide the data with `nbforget data --source PATH` (a folder holding "
                f"{MIRROR_LAYOUT} like shared/data), or set {MIRROR_ENV}=PATH, "
                "or run `nbforget data` on a machine that is online to download the official "
                "sources")
        table, copied, copied_bytes = _download_official(dest, progress)
        mode, origin = "online", "official sources"

    previous = read_manifest(dest)
    unchanged = previous and previous.get("files") == table and previous.get("source") == origin
    if copied == 0 and unchanged:
        rows = previous["rows"]
    else:
        rows = count_rows(dest / RAW)
        manifest = {
            "format": FORMAT_VERSION,
            "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mode": mode,
            "source": origin,
            "files": table,
            "rows": rows,
        }
        text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
        _write_atomically(dest / MANIFEST, text)
    return {
        "mode": mode,
        "source": origin,
        "dest": str(dest),
        "files": len(table),
        "copied": copied,
        "bytes_copied": copied_bytes,
        "rows": rows,
        "manifest": str(dest / MANIFEST),
    }


def verify_data(data_dir: Path | str = Path("data")) -> dict:
    """Re-check every file of a prepared folder against its manifest (size and sha256).

    Returns ``{"files": n, "bytes": total}``; raises `NbforgetError` naming each missing or
    changed file.
    """
    data_dir = Path(data_dir)
    require_prepared(data_dir)
    manifest = read_manifest(data_dir)
    if not manifest or "files" not in manifest:
        raise NbforgetError(f"{data_dir / MANIFEST} is unreadable; run `nbforget data` again")
    problems = []
    for relative, expected in manifest["files"].items():
        path = data_dir / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif path.stat().st_size != expected["bytes"]:
            size = path.stat().st_size
            problems.append(f"{relative}: {size} bytes, expected {expected['bytes']}")
        elif sha256_of(path) != expected["sha256"]:
            problems.append(f"{relative}: sha256 differs from the manifest")
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        shown = "; ".join(problems[:10]) + more
        raise NbforgetError(f"data folder {data_dir} does not match its manifest: {shown}. "
                            "Run `nbforget data` again to restore the files")
    return {"files": len(manifest["files"]),
            "bytes": sum(entry["bytes"] for entry in manifest["files"].values())}


# ----------------------------------------------------------------------------- downloading


@dataclass(frozen=True)
class OnlineSource:
    """One official download: an archive whose wanted members lie under ``prefix`` (the path
    after the archive's top folder), or a single file (``prefix`` None) saved as ``name``."""

    folder: str
    url: str
    prefix: str | None = None
    suffixes: tuple[str, ...] = ("",)
    name: str = ""


MASSIVE_URL = ("https://amazon-massive-nlu-dataset.s3.amazonaws.com/"
               "amazon-massive-dataset-1.1.tar.gz")
ONLINE_SOURCES = (
    OnlineSource("sib200", "https://github.com/dadelani/sib-200/archive/"
                 "593cea88519930f776c1a4a1980b6a35b39dca57.tar.gz", "data/annotated/",
                 (".tsv", "labels.txt")),
    OnlineSource("xsid", "https://github.com/mainlp/xsid/archive/"
                 "761d926c3f2e9f6bea13192d2f39cec1d04d9777.tar.gz", "data/xSID-0.7/",
                 (".valid.conll", ".test.conll")),
    OnlineSource("massive", MASSIVE_URL, "data/", (".jsonl",)),
    OnlineSource("tatoeba", "https://github.com/facebookresearch/LASER/archive/"
                 "74bc6ae7ffb7cba670fe0f428d0ede9f666fb821.tar.gz", "data/tatoeba/v1/",
                 ("",)),
    OnlineSource("meta", "https://raw.githubusercontent.com/cldf-datasets/wals/"
                 "3a9efd69074e1ced1da69e31b9aebfd55006eb70/cldf/languages.csv",
                 name="wals_languages.csv"),
)
# meta/massive_locales.tsv exists only in mirrors; the package's language table holds the same.


def _open_url(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": "nbforget-data"})
    return urllib.request.urlopen(request, timeout=60)


def _save_stream(stream, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as handle:
        shutil.copyfileobj(stream, handle, CHUNK)
    os.replace(temporary, target)


def _download_official(dest: Path, progress: bool) -> tuple[dict, int, int]:
    previous = read_manifest(dest)
    if previous and previous.get("mode") == "online":
        try:
            verify_data(dest)
            return previous["files"], 0, 0
        except NbforgetError:
            pass  # incomplete or changed: download again
    (dest / MANIFEST).unlink(missing_ok=True)
    raw = dest / RAW
    written: list[str] = []
    for source in tqdm(ONLINE_SOURCES, desc="download data", disable=not progress):
        try:
            with _open_url(source.url) as response:
                if source.prefix is None:
                    _save_stream(response, raw / source.folder / source.name)
                    written.append(f"{source.folder}/{source.name}")
                    continue
                with tarfile.open(fileobj=response, mode="r|gz") as archive:
                    for member in archive:
                        parts = PurePosixPath(member.name).parts[1:]  # drop the top folder
                        inner = "/".join(parts)
                        wanted = (member.isfile() and ".." not in parts
                                  and inner.startswith(source.prefix)
                                  and inner.endswith(source.suffixes))
                        if not wanted:
                            continue
                        relative = f"{source.folder}/{inner[len(source.prefix):]}"
                        _save_stream(archive.extractfile(member), raw / relative)
                        written.append(relative)
        except (OSError, tarfile.TarError) as error:
            raise NbforgetError(f"downloading {source.url} failed ({error}); check the "
                                "connection and run `nbforget data` again, or use a mirror with "
                                "--source PATH") from None
    provenance = ["# Where each folder of raw/ comes from (downloaded by `nbforget data`)", ""]
    provenance += [f"- {source.folder}/: {source.url}" for source in ONLINE_SOURCES]
    _write_atomically(raw / "SOURCES.md", "\n".join(provenance) + "\n")
    written.append("SOURCES.md")
    table = {}
    for relative in sorted(written):
        path = raw / relative
        table[f"{RAW}/{relative}"] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    return table, len(table), sum(entry["bytes"] for entry in table.values())
