"""Every bad input a user reported: the command line exits non-zero with one message that names
the input (the key, the file and line, the value) and the fix; no traceback, no run marked complete.

Each case runs through the real command line, `nbforget.cli.main`, in this process; a few run it as
a subprocess too, so that the real stderr is seen. Most errors happen before anything trains. The
cases on damaged run folders share one unfinished quick run (one language step), made once for
this module and copied for each case. Data cases damage a copy of the prepared files they need
(data/ itself is never written).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbforget.cli import main
from nbforget.config import REPO_ROOT
from nbforget.runs import run_status

from conftest import QUICK_PROFILE, make_quick_config

QUICK = str(QUICK_PROFILE)
MASSIVE_TH = str(REPO_ROOT / "params" / "profiles" / "massive-th.yaml")  # th-TH trained, en-US held out
DATA = REPO_ROOT / "data"
QUICK_SIB200 = ("eng_Latn", "rus_Cyrl", "tha_Thai")  # the quick profile's languages in SIB-200


@dataclass
class Place:
    """One case's folder: where its runs go, and the files it may write."""

    root: Path
    runs: Path
    base_run: Path | None = None  # an unfinished quick run (copied into `runs` by cases that need it)
    base_model: Path | None = None  # the quick profile's base encoder folder

    def file(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def run_args(self, *extra: str, strategy: str = "vanilla", params: str = QUICK) -> list[str]:
        return ["run", "--params", params, "--strategy", strategy, "--quiet", "--set", f"runs_dir={self.runs}",
                *extra]

    def data_copy(self) -> Path:
        """The manifest and the quick languages' SIB-200 files, modification times kept."""
        target = self.root / "data"
        for code in QUICK_SIB200:
            shutil.copytree(DATA / "raw" / "sib200" / code, target / "raw" / "sib200" / code)
        shutil.copy2(DATA / "MANIFEST.json", target / "MANIFEST.json")
        return target

    def unfinished_run(self) -> Path:
        """A copy of the module's unfinished quick VANILLA run under `runs`; returns its folder."""
        root = self.base_run.parents[3]  # runs/<profile>/<strategy>/order-<order>/seed-<seed>-<digest>
        shutil.copytree(root, self.runs)
        return self.runs / self.base_run.relative_to(root)


@dataclass
class Case:
    name: str
    args: Callable[[Place], list[str]]  # sets up what it needs, returns the command line
    expected: tuple[str, ...]  # substrings the message must hold: the input named, the fix
    subprocess: bool = False  # also run as `python -m nbforget.cli`, to see the real stderr
    needs_run: bool = False
    needs_model: bool = False


def setting(name: str, value: str, *expected: str, strategy: str = "vanilla", **options) -> Case:
    """A `--set name=value` case (with `strategy`, one that reads the setting)."""
    return Case(f"set-{name}={value}", lambda place: place.run_args("--set", f"{name}={value}", strategy=strategy),
                expected, **options)


# --------------------------------------------------------------------------------------- cases


def _lora_targets(strategy: str) -> Case:
    return Case(f"lora-target-module-that-does-not-exist-{strategy}",
                lambda place: place.run_args("--set", "strategy.lora.target_modules=[nosuch]", strategy=strategy),
                ("strategy.lora.target_modules[0]", "'nosuch'", "query", "--set 'strategy.lora.target_modules="))


def _params_file(name: str, text: str, *expected: str, **options) -> Case:
    def args(place: Place) -> list[str]:
        return place.run_args(params=str(place.file(name, text)))

    return Case(f"params-{name}", args, tuple(expected), **options)


def _params_folder(place: Place) -> list[str]:
    (place.root / "profiles").mkdir()
    (place.root / "profiles" / "mine.yaml").write_text("seeds: [1]\n")
    return place.run_args(params=str(place.root / "profiles"))


def _latin1_profile(place: Place) -> Path:
    path = place.root / "latin1.yaml"
    path.write_bytes("# caf\u00e9\nseeds: [1]\n".encode("latin-1"))
    return path


def _runs_dir_file(place: Place) -> list[str]:
    place.file("taken", "a file\n")
    return ["run", "--params", QUICK, "--strategy", "vanilla", "--quiet", "--set", f"runs_dir={place.root / 'taken'}"]


def _runs_dir_below_a_file(place: Place) -> list[str]:
    place.file("taken", "a file\n")
    return ["run", "--params", QUICK, "--strategy", "vanilla", "--quiet",
            "--set", f"runs_dir={place.root / 'taken' / 'runs'}"]


def _model_folder_without_config(place: Place) -> list[str]:
    (place.root / "not-a-model").mkdir()
    return place.run_args("--set", f"model.name={place.root / 'not-a-model'}")


def _damaged_base_model(place: Place) -> list[str]:
    folder = place.root / "encoder"
    shutil.copytree(place.base_model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # inside the header: "invalid header length"
    return place.run_args("--set", f"model.name={folder}")


def _data_case(name: str, damage: Callable[[Path], None], *expected: str, **options) -> Case:
    def args(place: Place) -> list[str]:
        data = place.data_copy()
        damage(data)
        return place.run_args("--set", f"data_dir={data}")

    return Case(f"data-{name}", args, tuple(expected), **options)


def _cut_at_line(data: Path) -> None:
    path = data / "raw/sib200/tha_Thai/train.tsv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) // 2]))  # parses, into half the rows


def _cut_in_character(data: Path) -> None:
    path = data / "raw/sib200/tha_Thai/test.tsv"
    content = path.read_bytes()
    start = content.index(b"\xe0", 500)  # the first byte of a three-byte Thai character
    path.write_bytes(content[: start + 1])


def _cut_in_character_manifest_agrees(data: Path) -> None:
    """A cut file whose manifest entry was rewritten to match it: decoding still names the file."""
    _cut_in_character(data)
    manifest = json.loads((data / "MANIFEST.json").read_text())
    from nbforget.data.prepare import sha256_of

    path = data / "raw/sib200/tha_Thai/test.tsv"
    manifest["files"]["raw/sib200/tha_Thai/test.tsv"] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    (data / "MANIFEST.json").write_text(json.dumps(manifest))


def _same_size_other_content(data: Path) -> None:
    path = data / "raw/sib200/eng_Latn/train.tsv"
    content = bytearray(path.read_bytes())
    where = content.index(b" the ", 300)
    content[where + 1:where + 4] = b"THE"
    path.write_bytes(bytes(content))


def _unprepared(data: Path) -> None:
    (data / "MANIFEST.json").unlink()


def _damaged_run(name: str, damage: Callable[[Path], None], *expected: str, **options) -> Case:
    def args(place: Place) -> list[str]:
        damage(place.unfinished_run())
        return place.run_args()

    return Case(f"run-{name}", args, tuple(expected), needs_run=True, **options)


def _checkpoint(run: Path) -> Path:
    return run / json.loads((run / "progress.json").read_text())["checkpoint"]


def _cut_checkpoint(run: Path) -> None:
    checkpoint = _checkpoint(run)
    checkpoint.write_bytes(checkpoint.read_bytes()[:5])


def _profile_with_strategies(place: Place) -> list[str]:
    path = place.file("study.yaml", "languages: [en-US, ru-RU]\nstrategies:\n  - vanilla\n  - vanila\n")
    return ["grid", "--params", str(path), "--quiet", "--no-analyses", "--set", f"runs_dir={place.runs}"]


CASES = [
    # settings (--set), refused at load
    setting("strategy.lora.rank", "0", "strategy.lora.rank is 0", "--set strategy.lora.rank=0", "at least 1",
            strategy="shared_lora"),
    setting("strategy.lora.alpha", "-2", "strategy.lora.alpha is -2", "null for alpha = rank", strategy="shared_lora"),
    setting("strategy.lora.dropout", "1", "strategy.lora.dropout is 1.0", "[0, 1)", strategy="shared_lora"),
    setting("strategy.lora.target_modules", "[]", "strategy.lora.target_modules is []", "at least one module",
            strategy="shared_lora"),
    _lora_targets("shared_lora"),
    _lora_targets("nonshared_lora"),
    setting("train.epochs", "[1", "--set 'train.epochs=[1'", "not valid YAML", "close its brackets", subprocess=True),
    setting("model.name", "'tiny", "--set \"model.name='tiny\"", "not valid YAML"),
    setting("train.epochs", "0", "train.epochs is 0", "--set train.epochs=0", "at least 1"),
    setting("train.batch_size", "0", "train.batch_size is 0", "at least 1"),
    setting("train.learning_rate", "-1", "train.learning_rate is -1.0", "--set train.learning_rate=-1",
            "greater than 0"),
    setting("train.learning_rate", "0", "train.learning_rate is 0.0", "greater than 0"),
    setting("train.lora_learning_rate", "-0.002", "train.lora_learning_rate is -0.002", "greater than 0",
            strategy="shared_lora"),
    setting("model.pretrain_learning_rate", "-1", "model.pretrain_learning_rate is -1.0", "greater than 0"),
    setting("train.patience", "0", "train.patience is 0", "--set train.patience=0", "at least 1"),
    setting("train.max_train_examples", "0", "train.max_train_examples is 0", "at least 1, or null"),
    setting("train.max_eval_examples", "-5", "train.max_eval_examples is -5", "at least 1, or null"),
    setting("train.warmup_ratio", "2", "train.warmup_ratio is 2.0", "[0, 1]"),
    setting("model.max_length", "2", "model.max_length is 2", "--set model.max_length=2", "at least 8"),
    setting("model.num_heads", "0", "model.num_heads is 0", "at least 1"),
    setting("model.hidden_size", "65", "model.hidden_size must be divisible by model.num_heads", "65 by 2"),
    setting("strategy.merge.density", "2", "strategy.merge.density is 2.0", "(0, 1]", strategy="merge"),
    setting("strategy.merge.density", "0", "strategy.merge.density is 0.0", "(0, 1]", strategy="merge"),
    setting("strategy.reversion.alpha", "1.5", "strategy.reversion.alpha is 1.5", "[0, 1]", strategy="reversion"),
    setting("strategy.reversion.alpha", "-0.1", "strategy.reversion.alpha is -0.1", "[0, 1]", strategy="reversion"),
    setting("strategy.reversion.layer_alpha", "{layer.0: 2}", "strategy.reversion.layer_alpha.layer.0 is 2.0",
            "[0, 1]", strategy="reversion"),
    setting("strategy.regularization.fisher_batches", "0", "strategy.regularization.fisher_batches is 0",
            strategy="ewc"),
    setting("languages", "[xx-XX]", "unknown locale 'xx-XX'", "languages[0]", "nbforget languages"),
    setting("languages", "[en-US,ru-RU,en-US]", "languages has duplicates", "'en-US' is languages[0] and languages[2]",
            "list each locale once"),
    setting("languages", "[]", "languages is empty", "at least one locale"),
    setting("seeds", "[-1]", "seeds[0] is -1", "--set seeds=[-1]", "from 0"),
    setting("held_out_languages", "[th-TH]", "held_out_languages[0] is 'th-TH'", "also languages[2]",
            "--set held_out_languages=[th-TH]", "drop th-TH from held_out_languages", subprocess=True),
    setting("held_out_languages", "[xx-XX]", "unknown locale 'xx-XX'", "held_out_languages[0]",
            "--set held_out_languages=[xx-XX]", subprocess=True),
    setting("held_out_languages", "[de-DE,de-DE]", "held_out_languages has duplicates", "'de-DE'",
            "list each locale once"),
    setting("held_out_languages", "[de-BA]", "'de-BA'", "not in data set 'sib200'", "held_out_languages[0]",
            "drop it from held_out_languages"),
    Case("held-out-language-without-data",
         lambda place: place.run_args("--set", "held_out_languages=[de-DE]", params=MASSIVE_TH),
         ("held-out language 'de-DE'", "held_out_languages[0]", "no MASSIVE file for locale 'de-DE'",
          "drop it from held_out_languages"), subprocess=True),
    setting("model.name", "/no/such/folder", "'/no/such/folder'", "does not exist", "local model folder",
            subprocess=True),
    Case("model-folder-without-config", _model_folder_without_config, ("not-a-model", "no config.json")),
    Case("model-weights-damaged", _damaged_base_model,
         ("encoder/model.safetensors", "invalid header length", "cannot be read", "restore the folder"),
         needs_model=True),
    Case("runs-dir-is-a-file", _runs_dir_file, ("runs_dir", "taken", "is a file", "choose another path")),
    Case("runs-dir-below-a-file", _runs_dir_below_a_file, ("runs_dir", "taken", "is a file")),
    # the command line's own flags
    Case("strategy-misspelt", lambda place: place.run_args(strategy="vanila"),
         ("unknown strategy 'vanila'", "did you mean 'vanilla'?", "--strategy vanila")),
    Case("order-9", lambda place: place.run_args("--order", "9"), ("unknown paper order 9", "1 to 5", "--order 9")),
    Case("order-random-x", lambda place: place.run_args("--order", "random:x"),
         ("'random:x'", "must be an integer", "--order random:x")),
    Case("order-backwards", lambda place: place.run_args("--order", "backwards"),
         ("unknown order 'backwards'", "--order backwards")),
    Case("order-list-unknown-locale", lambda place: place.run_args("--order", "[en-US, xx-YY]"),
         ("unknown locale 'xx-YY'", "--order [en-US, xx-YY]")),
    Case("seed-negative", lambda place: place.run_args("--seed", "-1"), ("--seed -1", "from 0")),
    Case("set-without-value", lambda place: place.run_args("--set", "train.epochs"), ("'train.epochs'", "KEY=VALUE")),
    # params files
    Case("params-folder", _params_folder, ("is a folder", "mine.yaml", "--params"), subprocess=True),
    Case("params-missing", lambda place: place.run_args(params=str(place.root / "absent.yaml")),
         ("absent.yaml does not exist", "quick.yaml")),
    _params_file("syntax.yaml", "train:\n  epochs: 2\n   batch_size: 3\n", "syntax.yaml:3", "invalid YAML"),
    _params_file("empty.yaml", "", "profile", "empty.yaml is empty", "write {}"),
    _params_file("comments.yaml", "# nothing but a comment\n", "comments.yaml is empty"),
    _params_file("list.yaml", "- languages: [en-US]\n", "list.yaml", "got a list", "key: value"),
    _params_file("values.yaml", "languages: [en-US, ru-RU]\ntrain:\n  epochs: 2\n  learning_rate: -0.1\n",
                 "train.learning_rate is -0.1", "values.yaml:4"),
    _params_file("locale.yaml", "languages:\n  - en-US\n  - xx-XX\n", "unknown locale 'xx-XX'", "locale.yaml:3",
                 "languages[1]"),
    Case("params-latin1", lambda place: place.run_args(params=str(_latin1_profile(place))),
         ("latin1.yaml", "not UTF-8", "save it as UTF-8")),
    Case("grid-profile-strategy-misspelt", _profile_with_strategies,
         ("unknown strategy 'vanila'", "did you mean 'vanilla'?", "study.yaml", "strategies[1]")),
    Case("grid-set-strategy-misspelt", lambda place: ["grid", "--params", QUICK, "--quiet", "--no-analyses",
                                                      "--set", "strategies=[vanila]", "--set",
                                                      f"runs_dir={place.runs}"],
         ("did you mean 'vanilla'?", "strategies[0]")),
    # prepared data
    _data_case("cut-at-a-line", _cut_at_line, "tha_Thai/train.tsv", "MANIFEST.json", "nbforget data"),
    _data_case("cut-in-a-character", _cut_in_character, "tha_Thai/test.tsv", "nbforget data", subprocess=True),
    _data_case("cut-in-a-character-manifest-agrees", _cut_in_character_manifest_agrees, "tha_Thai/test.tsv",
               "not valid UTF-8", "nbforget data"),
    _data_case("changed-same-size", _same_size_other_content, "eng_Latn/train.tsv", "sha256", "nbforget data"),
    _data_case("missing-file", lambda data: (data / "raw/sib200/rus_Cyrl/dev.tsv").unlink(), "rus_Cyrl/dev.tsv",
               "is missing", "nbforget data"),
    _data_case("unprepared-folder", _unprepared, "not prepared", "MANIFEST.json", "nbforget data", "data_dir"),
    Case("data-dir-absent", lambda place: place.run_args("--set", f"data_dir={place.root / 'nowhere'}"),
         ("nowhere", "does not exist", "nbforget data")),
    # unfinished runs with damaged files
    _damaged_run("progress-truncated", lambda run: (run / "progress.json").write_text('{"steps": [{"st'),
                 "progress.json", "not a readable progress record", "delete"),
    _damaged_run("config-corrupt", lambda run: (run / "config.yaml").write_text("strategy: [vanilla\n"),
                 "config.yaml", "not valid YAML", "delete"),
    _damaged_run("checkpoint-truncated", _cut_checkpoint, "step-0.safetensors", "cannot be read", "delete",
                 subprocess=True),
    _damaged_run("checkpoint-missing", lambda run: _checkpoint(run).unlink(), "step-0.safetensors", "is missing",
                 "delete"),
]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory, data_ready) -> Path:
    """One quick VANILLA run stopped after its first language step (its checkpoint kept)."""
    from nbforget.engine import run_strategy

    config = make_quick_config(tmp_path_factory.mktemp("unfinished") / "runs")
    path = run_strategy(config, "vanilla", stop_after=1, progress=False)
    assert run_status(path) == "running" and (path / "progress.json").exists()
    return path


@pytest.fixture(scope="module")
def quick_base_model(data_ready) -> Path:
    from nbforget.models import base_model_dir

    config = make_quick_config(Path("unused"))
    return Path(base_model_dir(config.model, list(config.languages), config.data_path, progress=False))


@pytest.fixture
def place(tmp_path, request) -> Place:
    case = request.node.callspec.params["case"]
    place = Place(tmp_path / "case", tmp_path / "case" / "runs")
    place.root.mkdir()
    if case.needs_run:
        place.base_run = request.getfixturevalue("unfinished_run")
    if case.needs_model:
        place.base_model = request.getfixturevalue("quick_base_model")
    return place


# --------------------------------------------------------------------------------------- checks


def complete_runs(root: Path) -> list[Path]:
    return [status.parent for status in root.rglob("status") if run_status(status.parent) == "complete"]


def assert_refused(code: int, err: str, case: Case, place: Place) -> None:
    assert code != 0, f"{case.name}: exit status 0"
    assert "Traceback" not in err, err
    assert err.startswith("nbforget: error: "), err
    assert err.count("nbforget: error: ") == 1, err  # one message
    missing = [text for text in case.expected if text not in err]
    assert not missing, f"{case.name}: the message lacks {missing}:\n{err}"
    assert complete_runs(place.root) == []


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_is_refused_with_a_message_naming_it(case, place, capsys):
    argv = case.args(place)
    code = main(argv)
    err = capsys.readouterr().err
    assert_refused(code, err, case, place)


SUBPROCESS_CASES = [case for case in CASES if case.subprocess]


def test_the_subprocess_table_is_not_empty():
    assert len(SUBPROCESS_CASES) >= 4 and len(CASES) >= 40


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=lambda case: case.name)
def test_bad_input_in_a_subprocess_prints_no_traceback(case, place):
    argv = case.args(place)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"),
                                                                os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "nbforget.cli", *argv], capture_output=True, text=True,
                            env=environment, cwd=REPO_ROOT, timeout=300)
    assert_refused(result.returncode, result.stderr, case, place)


# ------------------------------------------------------------------------------ the grid (slow)


def _grid(place: Place, *extra: str) -> list[str]:
    return ["grid", "--params", QUICK, "--quiet", "--no-analyses", "--set", "strategies=[vanilla]",
            "--set", f"runs_dir={place.runs}", *extra]


def _cut_checkpoint_header(run: Path) -> None:
    checkpoint = _checkpoint(run)
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])  # its length promises more header than is left


def _grid_on_damaged_run(place: Place) -> list[str]:
    _cut_checkpoint_header(place.unfinished_run())
    return _grid(place)


def _grid_on_damaged_model(place: Place) -> list[str]:
    _damaged_base_model(place)
    return _grid(place, "--set", f"model.name={place.root / 'encoder'}")


GRID_CASES = [
    Case("grid-run-checkpoint-invalid-header", _grid_on_damaged_run,
         ("step-0.safetensors", "invalid header length", "vanilla.py", "1 notebook(s) failed", "delete"),
         needs_run=True),
    Case("grid-base-model-invalid-header", _grid_on_damaged_model,
         ("encoder/model.safetensors", "invalid header length", "1 notebook(s) failed"), needs_model=True),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", GRID_CASES, ids=lambda case: case.name)
def test_grid_reports_a_damaged_file_by_name(case, place, capsys):
    """The grid runs each strategy in a papermill kernel; its failure report names the file."""
    argv = case.args(place)
    code = main(argv)
    err = capsys.readouterr().err
    assert_refused(code, err, case, place)
