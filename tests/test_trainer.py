"""Tests of the Lightning Trainer builder: wrong placement settings become OlrError."""

import pytest

from olr.config import TrainerConfig
from olr.errors import OlrError
from olr.training.trainer import build_trainer


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"precision": "float8"}, "precision"),
        ({"accelerator": "cpu", "devices": "x"}, "devices"),
        ({"accelerator": "warp-drive"}, "accelerator"),
    ],
)
def test_invalid_trainer_settings_raise_olr_error(tmp_path, settings, word):
    config = TrainerConfig(**settings)
    with pytest.raises(OlrError, match="invalid trainer settings") as info:
        build_trainer(config, tmp_path, "classifier", 1, "val/loss", "min")
    assert word in str(info.value)


def test_valid_cpu_trainer_is_built(tmp_path):
    trainer, checkpoint = build_trainer(
        TrainerConfig(accelerator="cpu", devices=1), tmp_path, "classifier", 2, "val/loss", "min"
    )
    assert trainer.max_epochs == 2
    assert checkpoint.monitor == "val/loss"
