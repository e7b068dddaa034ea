"""``konak models``: pull, list, verify, remove, path, rollback, quantize, bench."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from konak.edge_models.errors import CORRUPT, ModelError
from konak.edge_models.manifest import Manifest
from konak.edge_models.overlay import effective_manifest
from konak.edge_models.pull import Puller
from konak.edge_models.settings import ENV_CONFIG, ENV_MODELS_DIR, ModelSettings, load_config
from konak.edge_models.sources import RegistryClients
from konak.edge_models.store import ModelStore, check_model_id

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir",
        help="models directory (default: $KONAK_MODELS_DIR, "
        "the config's [models] dir, /var/lib/konak/models for root, "
        "~/.local/share/konak/models otherwise)",
    )
    common.add_argument(
        "--config", type=Path, help=f"konak TOML config ([models] table); default ${ENV_CONFIG}"
    )
    common.add_argument(
        "--manifest",
        type=Path,
        help="use this manifest instead of the packaged one (the local overlay still applies)",
    )
    common.add_argument(
        "--accept-license",
        action="append",
        default=[],
        metavar="ID",
        help="accept this non-commercial license (repeatable; or KONAK_ACCEPT_LICENSES)",
    )
    return common


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``models`` subcommands to ``parser``."""
    common = _common()
    subs = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = subs.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    pull = add("pull", cmd_pull, "fetch, verify and install models or sets (default: 'default')")
    pull.add_argument("names", nargs="*", default=["default"], metavar="SET|MODEL")
    pull.add_argument("--force", action="store_true", help="fetch again even if installed")
    lst = add("list", cmd_list, "installed models (--all: the whole manifest and its sets)")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--json", action="store_true")
    verify = add("verify", cmd_verify, "re-hash installed files; quarantine corrupt ones")
    verify.add_argument("models", nargs="*", metavar="MODEL")
    remove = add("remove", cmd_remove, "remove models and the files only they use")
    remove.add_argument("models", nargs="+", metavar="MODEL")
    path = add("path", cmd_path, "print what the daemon loads for a model")
    path.add_argument("model", metavar="MODEL")
    rollback = add("rollback", cmd_rollback, "make the previous version of a model current")
    rollback.add_argument("model", metavar="MODEL")
    quant = add("quantize", cmd_quantize, "build int8/float16 variants and measure them")
    quant.add_argument("model", metavar="MODEL")
    quant.add_argument("--mode", choices=["int8", "float16", "all"], default="all")
    bench = add("bench", cmd_bench, "load time, steady cost, RTF and peak RSS per model")
    bench.add_argument("names", nargs="+", metavar="SET|MODEL")
    bench.add_argument(
        "--json-out",
        type=Path,
        help="write results as JSON here (default: bench-models.json in the current directory)",
    )
    bench.add_argument("--repeats", type=int, default=3, help="repeats per measurement")


def settings_from(args: argparse.Namespace) -> ModelSettings:
    """Parse flags, environment and config file into settings (the only place that reads them)."""
    config_path = args.config or (
        Path(os.environ[ENV_CONFIG]) if ENV_CONFIG in os.environ else None
    )
    return ModelSettings.resolve(
        models_dir=args.models_dir,
        accept_licenses=args.accept_license,
        environ=os.environ,
        config=load_config(config_path),
    )


def _open(args: argparse.Namespace) -> tuple[ModelSettings, ModelStore, Manifest]:
    settings = settings_from(args)
    store = ModelStore(settings.models_dir)
    return settings, store, effective_manifest(store, args.manifest)


def cmd_pull(args: argparse.Namespace, clients: RegistryClients | None = None) -> int:
    """Pull models; non-zero when any model failed."""
    settings, store, manifest = _open(args)
    puller = Puller(store, manifest, accepted_licenses=settings.accepted_licenses, clients=clients)
    report = puller.pull(args.names, force=args.force)
    for result in report.results:
        where = f" from {result.source}" if result.source else ""
        print(f"{result.model_id}: {result.status}{where}")
    for failure in report.failures:
        print(
            f"{failure.model_id}: FAILED [{failure.error.code}] {failure.error.message}",
            file=sys.stderr,
        )
    if report.failures:
        first = report.failures[0].error
        ids = ", ".join(f.model_id for f in report.failures)
        raise ModelError(
            f"{len(report.failures)} model(s) failed: {ids}. {first.message}", code=first.code
        )
    print(f"models in {store.root}: {len(report.results)} ok")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print installed models, or the whole manifest with --all."""
    _, store, manifest = _open(args)
    installed = {r.id: r for r in store.installed()}
    rows: list[dict[str, Any]] = []
    ids = sorted(manifest.models) if args.all else sorted(installed)
    for model_id in ids:
        model = manifest.models.get(model_id)
        rec = installed.get(model_id)
        state = (
            "-"
            if rec is None
            else ("ok" if model is None or rec.digest == model.digest else "outdated")
        )
        rows.append(
            {
                "id": model_id,
                "installed": state,
                "role": model.role if model else "?",
                "engine": model.engine if model else "?",
                "license": model.license if model else (rec.license if rec else "?"),
                "bytes": rec.size_bytes if rec else (model.size_bytes if model else 0),
                "source": rec.source if rec else "",
            }
        )
    if args.json:
        sets = {s.id: list(s.models) for s in manifest.sets.values()}
        print(json.dumps({"models_dir": str(store.root), "models": rows, "sets": sets}, indent=2))
        return 0
    if not rows:
        print(
            f"no models installed in {store.root} (`konak models pull` installs them; "
            f"--models-dir or {ENV_MODELS_DIR} reads another folder)"
        )
        return 0
    print(f"models in {store.root}:")
    print(f"{'model':28} {'state':8} {'role':13} {'license':16} {'MB':>7}  source")
    for row in rows:
        print(
            f"{row['id']:28} {row['installed']:8} {row['role']:13} {row['license']:16} "
            f"{int(row['bytes']) / 1e6:7.1f}  {row['source']}"
        )
    if args.all:
        for model_set in manifest.sets.values():
            print(f"set {model_set.id}: {' '.join(model_set.models)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash installed models; report and quarantine corrupt files."""
    _, store, _ = _open(args)
    with store.lock():
        checked = [r.id for r in store.installed() if not args.models or r.id in args.models]
        problems = store.verify(args.models or None)
    for problem in problems:
        moved = f" (moved to {problem.quarantined_to})" if problem.quarantined_to else ""
        print(f"{problem.model_id}: {problem.path}: {problem.reason}{moved}")
    if problems:
        bad = sorted({p.model_id for p in problems})
        raise ModelError(
            f"{', '.join(bad)}: corrupt or missing files; run `konak models pull {' '.join(bad)}`",
            code=CORRUPT,
        )
    print(f"{len(checked)} model(s) verified, all files match")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove models."""
    for model_id in args.models:  # every id is checked before anything is removed
        check_model_id(model_id)
    _, store, manifest = _open(args)
    with store.lock():
        for model_id in args.models:
            if not store.remove(model_id):
                manifest.model(model_id)  # unknown ids get the unknown_model error
                print(f"{model_id}: not installed")
            else:
                print(f"{model_id}: removed")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    """Print the path the daemon loads."""
    _, store, manifest = _open(args)
    if store.record(args.model) is None:
        manifest.model(args.model)
    print(store.path(args.model))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Swap the current and previous versions of a model."""
    _, store, _ = _open(args)
    with store.lock():
        rec = store.rollback(args.model)
    print(f"{args.model}: current is now {rec.digest[:12]} (from {rec.source})")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """Quantize a model and record the variants in the overlay."""
    from konak.edge_models.quantize import quantize_model

    _, store, manifest = _open(args)
    modes = ("int8", "float16") if args.mode == "all" else (args.mode,)
    report = quantize_model(store, manifest, args.model, modes=modes)
    print(report.table())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmark models and print the table."""
    from konak.edge_models.bench import bench_models, render_table

    _, store, manifest = _open(args)
    results = bench_models(
        store, manifest, args.names, repeats=args.repeats, manifest_path=args.manifest
    )
    print(render_table(results))
    out = args.json_out or Path("bench-models.json")
    out.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m konak.edge_models.cli``), same as ``konak models``."""
    parser = argparse.ArgumentParser(prog="konak models")
    register(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except ModelError as exc:
        print(f"konak models: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
