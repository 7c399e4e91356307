"""Command-line interface: ``olr run``, ``demo``, ``prepare``, ``embed``, ``evaluate``, ``ablate``,
``report`` and ``edit``.

Example:
    olr run --dataset celeba --data-root data/celeba --image-size 64 --preset cpu --out runs/a
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path

from olr import __version__
from olr.errors import OlrError

logger = logging.getLogger("olr")

STAGE_HELP = (
    "stages: prepare, classifier, siamese, embed, decoder, autoencoder, probe, correlation, pca, "
    "disagreement, editing, report"
)


def add_data_arguments(parser: argparse.ArgumentParser, with_out: bool = True) -> None:
    """Add the options shared by ``run``, ``prepare`` and ``ablate``."""
    group = parser.add_argument_group("data and run")
    group.add_argument(
        "--config", type=Path, help="YAML file of config keys, e.g. configs/celeba64.yaml"
    )
    group.add_argument(
        "--preset",
        choices=("smoke", "demo", "cpu", "paper"),
        help="smoke: seconds, for tests; demo: synthetic faces in minutes; cpu: a useful result "
        "on a 2-core CPU in under an hour on 10,000 images at 64 px; paper: the published "
        "setting (178 px, k=32, 38 labels) for a GPU",
    )
    group.add_argument(
        "--dataset",
        choices=("celeba", "folder", "synthetic"),
        help="celeba (flat, official or CSV layout), folder (images + labels.csv) or the "
        "built-in synthetic faces (default)",
    )
    group.add_argument("--data-root", type=Path, help="dataset folder (celeba and folder)")
    group.add_argument("--labels-csv", type=Path, help="label CSV for --dataset folder")
    group.add_argument("--image-size", type=int, help="square side in pixels the models see")
    group.add_argument("--seed", type=int, help="seed for splits, initialisation and occlusion")
    group.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        help="error (default): stop before training and list every bad image or label row; "
        "skip: drop them and report the count",
    )
    group.add_argument("--max-images", type=int, help="use only the first N images (quick trials)")
    group.add_argument("--accelerator", help="auto (default), cpu, gpu or mps")
    group.add_argument("--devices", help="devices per node, e.g. 1, 4 or auto")
    group.add_argument("--num-nodes", type=int, help="nodes of a multi-node DDP run")
    group.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set siamese.optim.lr=3e-4 (repeatable)",
    )
    if with_out:
        group.add_argument("--out", type=Path, required=True, help="run folder for all outputs")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``olr`` command."""
    parser = argparse.ArgumentParser(
        prog="olr",
        description="Occlusion-based Latent Representations: turn the binary labels of a "
        "multi-label image dataset into one embedding vector per label per image, and measure "
        "what the embeddings capture.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"olr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    formatter = argparse.ArgumentDefaultsHelpFormatter
    run = commands.add_parser(
        "run",
        formatter_class=formatter,
        help="prepare, train, embed, probe, analyse and report in one go",
        description="Run every stage into --out. A stage whose outputs exist is skipped, so "
        "rerunning the same command after an interruption goes on where it stopped. " + STAGE_HELP,
    )
    add_data_arguments(run)
    run.add_argument("--redo-from", metavar="STAGE", help="run this stage and all later ones again")

    demo = commands.add_parser(
        "demo",
        formatter_class=formatter,
        help="olr run on the built-in synthetic faces (no download, a few minutes)",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    demo.add_argument(
        "--preset",
        choices=("smoke", "demo"),
        default="demo",
        help="demo (default, a few minutes on a laptop CPU) or smoke (seconds)",
    )
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set data.synthetic_images=6000 (repeatable)",
    )

    prepare = commands.add_parser(
        "prepare", formatter_class=formatter, help="decode the images into the cache and split"
    )
    add_data_arguments(prepare)

    embed = commands.add_parser(
        "embed", formatter_class=formatter, help="write the (N, L, k) embeddings of a run's split"
    )
    embed.add_argument("--run", type=Path, required=True, help="a finished run folder")
    embed.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default="all",
        help="which split to embed; all writes train, val and test",
    )
    embed.add_argument(
        "--out",
        type=Path,
        help="output .safetensors file (one split) or folder (all); default <run>/embeddings",
    )

    evaluate = commands.add_parser(
        "evaluate",
        formatter_class=formatter,
        help="rerun probe, correlation, PCA, disagreement and the report of a run",
    )
    evaluate.add_argument("--run", type=Path, required=True, help="a run folder with embeddings")
    evaluate.add_argument("--pca-label", help="label for the PCA figure (default from config)")

    ablate = commands.add_parser(
        "ablate",
        formatter_class=formatter,
        help="train the Siamese model with occlusion, temperature and hard targets",
        description="Reuse one teacher and train one Siamese model per target mode with the same "
        "budget and seed; compare probe accuracy, correlation fidelity and PCA AUC.",
    )
    add_data_arguments(ablate)
    ablate.add_argument(
        "--teacher-run",
        type=Path,
        help="reuse the cache, splits and teacher of this finished run (same data options)",
    )
    ablate.add_argument(
        "--modes", default="occlusion,temperature,hard", help="comma-separated target modes"
    )

    report = commands.add_parser(
        "report", formatter_class=formatter, help="write <run>/report.html"
    )
    report.add_argument("--run", type=Path, required=True, help="a run folder")

    edit = commands.add_parser(
        "edit", formatter_class=formatter, help="add or remove attributes of an image and decode it"
    )
    edit.add_argument("--run", type=Path, required=True, help="a run with a trained decoder")
    edit.add_argument("--image", required=True, help="an image file, or an image id of the run")
    edit.add_argument(
        "--add", action="append", default=[], metavar="LABEL", help="label to add (repeatable)"
    )
    edit.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="LABEL",
        help="label to remove (repeatable)",
    )
    edit.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="factor on the sampled vectors of added labels; >1 stronger",
    )
    edit.add_argument(
        "--remove-mode",
        choices=("zero", "shrink"),
        default="zero",
        help="zero the vector, or replace it by a sample scaled to a small norm",
    )
    edit.add_argument("--seed", type=int, default=0, help="seed of the sampled vectors")
    edit.add_argument("--out", type=Path, default=Path("edited.png"), help="output PNG")
    for subparser in commands.choices.values():
        subparser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


def setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    """Send library logs to stderr and, when given, to ``log_file``."""
    level = logging.DEBUG if verbose else logging.INFO
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    logger.setLevel(level)
    logger.propagate = False
    # Lightning's own info lines (GPU available, TPU available) repeat every stage.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    # The frozen teacher inside the Siamese module is in eval mode on purpose.
    warnings.filterwarnings("ignore", r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def log_to_files(message: str) -> None:
    """Write ``message`` as an ERROR line to the run's ``log.txt`` only.

    ``main`` prints the same error to stderr, so logging it to stderr as well would show every
    error twice.
    """
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def overrides_from(args: argparse.Namespace) -> dict:
    """Turn the data options and ``--set`` values of ``args`` into a nested override dict."""
    from olr.config import merge, parse_override

    values: dict = {"data": {}, "trainer": {}}
    data_keys = {
        "dataset": "dataset",
        "data_root": "data_root",
        "labels_csv": "labels_csv",
        "image_size": "image_size",
        "on_bad_image": "on_bad_image",
        "max_images": "max_images",
    }
    for arg, key in data_keys.items():
        value = getattr(args, arg, None)
        if value is not None:
            values["data"][key] = str(value) if isinstance(value, Path) else value
    for arg in ("accelerator", "num_nodes"):
        if getattr(args, arg, None) is not None:
            values["trainer"][arg] = getattr(args, arg)
    devices = getattr(args, "devices", None)
    if devices is not None:
        values["trainer"]["devices"] = int(devices) if str(devices).isdigit() else devices
    if getattr(args, "seed", None) is not None:
        values["seed"] = args.seed
    for text in getattr(args, "overrides", []):
        values = merge(values, parse_override(text))
    return values


def start_run(args: argparse.Namespace, preset: str | None, extra: dict | None = None):
    """Resolve the config of a run command, set up logging into the run folder, start it."""
    from olr.config import merge, resolve_config
    from olr.pipeline.rundir import RunDir

    overrides = overrides_from(args)
    if extra:
        overrides = merge(extra, overrides)
    config = resolve_config(preset, getattr(args, "config", None), overrides)
    run = RunDir(args.out, config)
    if run.primary:
        setup_logging(args.verbose, args.out / "log.txt")
    else:
        # Other processes of a distributed run repeat the primary's lines; keep only warnings.
        logger.setLevel(logging.WARNING)
    run.start(" ".join(shlex.quote(a) for a in sys.argv))
    return run


def command_run(args: argparse.Namespace) -> int:
    from olr.pipeline.runner import run_pipeline

    run = start_run(args, args.preset)
    metrics = run_pipeline(run, redo_from=args.redo_from)
    print_summary(run, metrics)
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from olr.pipeline.runner import run_pipeline

    args.verbose = getattr(args, "verbose", False)
    args.config = None
    run = start_run(args, args.preset, extra={"data": {"dataset": "synthetic"}})
    metrics = run_pipeline(run)
    print_summary(run, metrics)
    return 0


def command_prepare(args: argparse.Namespace) -> int:
    from olr.pipeline.runner import pipeline_stages, run_pipeline

    run = start_run(args, args.preset)
    run_pipeline(run, [s for s in pipeline_stages() if s.name == "prepare"])
    data = run.metrics().get("data", {})
    print(
        f"cache: {run.cache_dir} ({data.get('num_images')} images, "
        f"{data.get('num_skipped', 0)} bad images and "
        f"{data.get('num_dropped_rows', 0)} bad label rows skipped)"
    )
    return 0


def load_run(run_dir: Path):
    """Open an existing run folder with its stored config."""
    import yaml

    from olr.config import RunConfig, from_dict
    from olr.pipeline.rundir import RunDir

    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise OlrError(f"{run_dir} is not a run folder (no config.yaml); run `olr run` first")
    values = yaml.safe_load(config_path.read_text()) or {}
    values.pop("run_info", None)
    return RunDir(run_dir, from_dict(RunConfig, values))


def command_embed(args: argparse.Namespace) -> int:
    from olr.analysis.embed import load_embeddings, save_embeddings
    from olr.pipeline.training_stages import embed_splits, load_embedder

    run = load_run(args.run)
    setup_logging(args.verbose)
    embedder = load_embedder(run.root / "siamese" / "embedder.safetensors")
    folder = run.root / "embeddings"
    if args.split == "all":
        target = args.out or folder
        embed_splits(run, embedder, target)
        print(f"embeddings written to {target}/{{train,val,test}}.safetensors")
        return 0
    target = args.out or folder / f"{args.split}.safetensors"
    if target.suffix != ".safetensors":
        raise OlrError(f"--out {target} must end in .safetensors")
    scratch = target.parent / f".{target.stem}.embedding"
    embed_splits(run, embedder, scratch, (args.split,))
    data = load_embeddings(scratch / f"{args.split}.safetensors")
    save_embeddings(target, data)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.split} embeddings {data.embeddings.shape} written to {target}")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from olr.pipeline.runner import pipeline_stages, run_pipeline

    run = load_run(args.run)
    setup_logging(args.verbose, run.root / "log.txt")
    if args.pca_label:
        run.config.analysis.pca_label = args.pca_label
    # The PCA of the previous label would otherwise stay beside the new one.
    run.drop_metrics("pca")
    for old_figure in run.figures.glob("pca_*.png"):
        old_figure.unlink()
    names = ("probe", "correlation", "pca", "disagreement", "report")
    stages = [s for s in pipeline_stages() if s.name in names]
    metrics = run_pipeline(run, stages, redo_from="probe")
    print_summary(run, metrics)
    return 0


def command_ablate(args: argparse.Namespace) -> int:
    from olr.pipeline.ablation import run_ablation

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    run = start_run(args, args.preset)
    metrics = run_ablation(run, modes, args.teacher_run)
    for mode, values in metrics.get("ablation", {}).items():
        print(f"{mode:12s} " + "  ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    print(f"report: {run.root / 'report.html'}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from olr.report.html import write_report

    setup_logging(args.verbose)
    print(f"report: {write_report(args.run)}")
    return 0


def command_edit(args: argparse.Namespace) -> int:
    from olr.pipeline.edit_command import edit_image

    run = load_run(args.run)
    setup_logging(args.verbose)
    path = edit_image(
        run, args.image, args.add, args.remove, args.scale, args.remove_mode, args.seed, args.out
    )
    print(f"original | reconstruction | edit written to {path}")
    return 0


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def print_summary(run, metrics: dict) -> None:
    """Print the headline numbers and where the outputs are."""

    def get(*keys):
        value = metrics
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    rows = [
        ("teacher test accuracy", get("classifier", "test", "mean_accuracy")),
        ("probe test accuracy", get("probe", "test", "mean_accuracy")),
        ("untrained-network probe", get("untrained_probe", "test", "mean_accuracy")),
        ("majority baseline", get("baseline", "majority", "test", "mean_accuracy")),
        ("correlation fidelity", get("correlation", "fidelity")),
        ("reconstruction SSIM", get("reconstruction", "test", "ssim")),
        ("edit success (add)", get("editing", "add", "success_rate")),
    ]
    for name, value in rows:
        if value is not None:
            print(f"{name:26s} {_fmt(value)}")
    teacher = get("classifier", "test", "mean_accuracy")
    probe = get("probe", "test", "mean_accuracy")
    majority = get("baseline", "majority", "test", "mean_accuracy")
    for name, value in (("teacher", teacher), ("probe", probe)):
        if value is not None and majority is not None and value <= majority:
            print(
                f"warning: the {name} is not above the majority baseline; train longer or "
                "use more images before reading the analyses"
            )
    print(f"outputs:  {run.root}")
    print(f"metrics:  {run.metrics_path}")
    if (run.root / "report.html").exists():
        print(f"report:   {run.root / 'report.html'}")


COMMANDS = {
    "run": command_run,
    "demo": command_demo,
    "prepare": command_prepare,
    "embed": command_embed,
    "evaluate": command_evaluate,
    "ablate": command_ablate,
    "report": command_report,
    "edit": command_edit,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``olr`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        args.verbose = False
    setup_logging(getattr(args, "verbose", False))
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    try:
        return COMMANDS[args.command](args)
    except OlrError as error:
        log_to_files(str(error))
        print(f"olr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("olr: interrupted; rerun the same command to go on where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
