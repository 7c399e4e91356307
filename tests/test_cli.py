"""End-to-end tests of the real ``olr`` command on tiny synthetic data."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from olr.cli import build_parser, main


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    status = main(["run", "--preset", "smoke", "--out", str(out), "--seed", "1"])
    assert status == 0
    return out


def test_run_writes_required_metrics(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    for path in (
        ("data", "num_labels"),
        ("data", "num_train"),
        ("data", "num_test"),
        ("classifier", "test", "mean_accuracy"),
        ("probe", "test", "mean_accuracy"),
        ("baseline", "majority", "test", "mean_accuracy"),
        ("untrained_probe", "test", "mean_accuracy"),
    ):
        value = metrics
        for key in path:
            value = value[key]
        assert value is not None, path
    for key in ("classifier", "probe", "baseline"):
        accuracy = metrics[key]["test"] if key != "baseline" else metrics[key]["majority"]["test"]
        assert 0.0 <= accuracy["mean_accuracy"] <= 1.0
    names = metrics["data"]["label_names"]
    assert set(metrics["classifier"]["test"]["per_label"]) == set(names)
    assert set(metrics["probe"]["test"]["per_label"]) == set(names)
    assert (
        metrics["data"]["num_train"] + metrics["data"]["num_val"] + metrics["data"]["num_test"]
        == metrics["data"]["num_images"]
    )


def test_run_writes_embeddings_numpy_can_read(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    tensors = load_file(str(smoke_run / "embeddings" / "test.safetensors"))
    num_labels = metrics["data"]["num_labels"]
    assert tensors["embeddings"].shape == (metrics["data"]["num_test"], num_labels, 8)
    assert tensors["embeddings"].dtype == np.float32
    assert tensors["labels"].shape == (metrics["data"]["num_test"], num_labels)


def test_run_writes_report_and_figures(smoke_run):
    html = (smoke_run / "report.html").read_text()
    assert "data:image/png;base64" in html
    for name in ("correlation.png", "per_label_accuracy.png", "reconstruction.png"):
        assert (smoke_run / "figures" / name).stat().st_size > 1000
    assert (smoke_run / "config.yaml").exists()
    assert (smoke_run / "log.txt").read_text().count("stage") > 5


def test_rerun_skips_finished_stages(smoke_run, capsys):
    before = (smoke_run / "metrics.json").read_text()
    assert main(["run", "--preset", "smoke", "--out", str(smoke_run), "--seed", "1"]) == 0
    log = (smoke_run / "log.txt").read_text()
    assert "stage classifier already done, skipped" in log
    assert (
        json.loads(before)["probe"] == json.loads((smoke_run / "metrics.json").read_text())["probe"]
    )


def test_rerun_with_other_config_is_rejected(smoke_run, capsys):
    status = main(["run", "--preset", "smoke", "--out", str(smoke_run), "--seed", "2"])
    assert status == 2
    assert "another config" in capsys.readouterr().err


def test_edit_writes_side_by_side_png(smoke_run, tmp_path):
    cache_ids = json.loads((smoke_run / "cache" / "meta.json").read_text())["ids"]
    out = tmp_path / "edited.png"
    status = main(
        [
            "edit",
            "--run",
            str(smoke_run),
            "--image",
            cache_ids[0],
            "--add",
            "Eyeglasses",
            "--remove",
            "Smiling",
            "--scale",
            "1.5",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    with Image.open(out) as image:
        assert image.width > image.height


def test_edit_unknown_label_is_an_error(smoke_run, tmp_path, capsys):
    status = main(
        [
            "edit",
            "--run",
            str(smoke_run),
            "--image",
            "nope",
            "--add",
            "Wings",
            "--out",
            str(tmp_path / "x.png"),
        ]
    )
    assert status == 2
    assert "Wings" in capsys.readouterr().err


def test_embed_command_writes_split(smoke_run, tmp_path):
    out = tmp_path / "test.safetensors"
    assert main(["embed", "--run", str(smoke_run), "--split", "test", "--out", str(out)]) == 0
    assert load_file(str(out))["embeddings"].ndim == 3


def test_report_on_missing_run_is_an_error(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path / "none")]) == 2
    assert "metrics.json" in capsys.readouterr().err


def test_celeba_without_data_root_is_an_error(tmp_path, capsys):
    assert main(["run", "--dataset", "celeba", "--out", str(tmp_path / "r")]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_help_lists_commands():
    text = build_parser().format_help()
    for command in ("run", "demo", "prepare", "embed", "evaluate", "ablate", "report", "edit"):
        assert command in text


def test_console_script_runs_help():
    result = subprocess.run(
        [sys.executable, "-m", "olr.cli", "run", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--on-bad-image" in result.stdout


def test_ablate_reuses_teacher_run(smoke_run, tmp_path):
    out = tmp_path / "ablation"
    status = main(
        [
            "ablate",
            "--preset",
            "smoke",
            "--seed",
            "1",
            "--out",
            str(out),
            "--teacher-run",
            str(smoke_run),
            "--modes",
            "occlusion,hard",
        ]
    )
    assert status == 0
    ablation = json.loads((out / "metrics.json").read_text())["ablation"]
    assert set(ablation) == {"occlusion", "hard"}
    for values in ablation.values():
        assert 0.0 <= values["probe_accuracy"] <= 1.0
        assert "correlation_fidelity" in values
        assert "pca_auc" in values
    assert (out / "classifier").resolve() == (smoke_run / "classifier").resolve()
    assert "Ablation" in (out / "report.html").read_text()


def test_ablate_rejects_unknown_mode(tmp_path, capsys):
    status = main(["ablate", "--preset", "smoke", "--out", str(tmp_path / "a"), "--modes", "soft"])
    assert status == 2
    assert "soft" in capsys.readouterr().err


def test_ablate_rejects_teacher_run_with_other_seed(smoke_run, tmp_path, capsys):
    status = main(
        [
            "ablate",
            "--preset",
            "smoke",
            "--seed",
            "5",
            "--out",
            str(tmp_path / "a"),
            "--teacher-run",
            str(smoke_run),
            "--modes",
            "hard",
        ]
    )
    assert status == 2
    assert "seed" in capsys.readouterr().err


def test_error_is_printed_once_and_logged(tmp_path, capsys):
    out = tmp_path / "r"
    missing = tmp_path / "none"
    args = ["prepare", "--dataset", "celeba", "--data-root", str(missing), "--out", str(out)]
    assert main(args) == 2
    assert capsys.readouterr().err.count(f"{missing} not found") == 1
    assert f"{missing} not found" in (out / "log.txt").read_text()


def test_edit_rejects_non_png_output(smoke_run, tmp_path, capsys):
    cache_ids = json.loads((smoke_run / "cache" / "meta.json").read_text())["ids"]
    status = main(
        [
            "edit",
            "--run",
            str(smoke_run),
            "--image",
            cache_ids[0],
            "--add",
            "Eyeglasses",
            "--out",
            str(tmp_path / "edited.jpg"),
        ]
    )
    assert status == 2
    assert ".png" in capsys.readouterr().err


def test_edit_rejects_label_added_and_removed(smoke_run, tmp_path, capsys):
    cache_ids = json.loads((smoke_run / "cache" / "meta.json").read_text())["ids"]
    status = main(
        [
            "edit",
            "--run",
            str(smoke_run),
            "--image",
            cache_ids[0],
            "--add",
            "Smiling",
            "--remove",
            "Smiling",
            "--out",
            str(tmp_path / "e.png"),
        ]
    )
    assert status == 2
    assert "Smiling" in capsys.readouterr().err


def test_embed_one_split_leaves_run_embeddings(smoke_run, tmp_path):
    before = (smoke_run / "embeddings" / "train.safetensors").stat().st_mtime_ns
    out = tmp_path / "val.safetensors"
    assert main(["embed", "--run", str(smoke_run), "--split", "val", "--out", str(out)]) == 0
    assert (smoke_run / "embeddings" / "train.safetensors").stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".*"))


def test_evaluate_with_other_pca_label_replaces_pca(smoke_run):
    assert main(["evaluate", "--run", str(smoke_run), "--pca-label", "Smiling"]) == 0
    pca = json.loads((smoke_run / "metrics.json").read_text())["pca"]
    assert pca["label"] == "Smiling"
    assert "Mouth_Slightly_Open" not in pca
    assert [p.name for p in (smoke_run / "figures").glob("pca_*.png")] == ["pca_Smiling.png"]


def _fake_celeba(root, count: int = 12):
    from olr.data.celeba import CELEBA_LABELS

    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(1, count + 1):
        name = f"{index:06d}.jpg"
        pixels = rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
        rows.append(name + " " + " ".join(rng.choice(["-1", "1"], len(CELEBA_LABELS))))
    rows.append("000099.jpg 1 -1")  # a row with too few columns
    text = f"{len(rows)}\n" + " ".join(CELEBA_LABELS) + "\n" + "\n".join(rows) + "\n"
    (root / "list_attr_celeba.txt").write_text(text)


def test_prepare_skip_counts_bad_rows(tmp_path, capsys):
    _fake_celeba(tmp_path / "celeba")
    args = [
        "prepare",
        "--preset",
        "smoke",
        "--dataset",
        "celeba",
        "--data-root",
        str(tmp_path / "celeba"),
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 2
    assert "list_attr_celeba.txt:15" in capsys.readouterr().err
    assert main([*args, "--on-bad-image", "skip"]) == 0
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert data["num_images"] == 12
    assert data["num_dropped_rows"] == 1
    assert "1 bad label rows skipped" in capsys.readouterr().out


def test_prepare_lists_bad_rows_and_bad_images_together(tmp_path, capsys):
    _fake_celeba(tmp_path / "celeba")
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    args = [
        "prepare",
        "--preset",
        "smoke",
        "--dataset",
        "celeba",
        "--data-root",
        str(tmp_path / "celeba"),
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "list_attr_celeba.txt:15" in err
    assert "000003.jpg" in err
    assert not (tmp_path / "run" / "cache" / "meta.json").exists()


def test_version_and_verbose_after_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("olr ")
    args = build_parser().parse_args(["report", "--run", "x", "-v"])
    assert args.verbose is True
    assert build_parser().parse_args(["report", "--run", "x"]).verbose is False
