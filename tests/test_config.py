"""Tests of presets, YAML config files and command-line overrides."""

import pytest

from olr.config import PRESETS, RunConfig, parse_override, resolve_config, to_dict
from olr.errors import OlrError


def test_every_preset_resolves():
    for preset in PRESETS:
        config = resolve_config(preset)
        assert isinstance(config, RunConfig)


def test_paper_preset_uses_paper_settings():
    config = resolve_config("paper")
    assert config.data.image_size == 178
    assert config.siamese.model.dim == 32
    assert config.siamese.occlusion_min == 0.33
    assert config.siamese.occlusion_max == 0.66
    assert config.data.drop_labels == ["Wearing_Necklace", "Wearing_Necktie"]
    assert config.data.test_fraction == 0.05


def test_override_parses_nested_key_and_float():
    assert parse_override("siamese.optim.lr=3e-4") == {"siamese": {"optim": {"lr": 3e-4}}}
    config = resolve_config("smoke", overrides=parse_override("siamese.optim.lr=3e-4"))
    assert config.siamese.optim.lr == pytest.approx(3e-4)


def test_unknown_key_names_the_key():
    with pytest.raises(OlrError, match="learning_rate"):
        resolve_config(overrides={"siamese": {"optim": {"learning_rate": 1.0}}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(OlrError, match="data.image_size"):
        resolve_config(overrides={"data": {"image_size": "big"}})


def test_invalid_choice_is_rejected():
    with pytest.raises(OlrError, match="siamese.target"):
        resolve_config(overrides={"siamese": {"target": "soft"}})


def test_yaml_file_between_preset_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  image_size: 48\nseed: 3\n")
    config = resolve_config("smoke", path, {"seed": 5})
    assert config.data.image_size == 48
    assert config.seed == 5


def test_config_round_trips_through_dict():
    config = resolve_config("cpu")
    assert resolve_config(overrides=to_dict(config)) == config


def test_missing_data_root_for_celeba():
    with pytest.raises(OlrError, match="--data-root"):
        resolve_config(overrides={"data": {"dataset": "celeba"}})


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"classifier": {"optim": {"epochs": 0}}}, "classifier.optim.epochs"),
        ({"siamese": {"optim": {"epochs": -1}}}, "siamese.optim.epochs"),
        ({"decoder": {"optim": {"batch_size": 0}}}, "decoder.optim.batch_size"),
        ({"siamese": {"optim": {"lr": 0.0}}}, "siamese.optim.lr"),
        ({"siamese": {"model": {"dim": 0}}}, "siamese.model.dim"),
    ],
)
def test_non_positive_counts_are_rejected(overrides, key):
    with pytest.raises(OlrError, match=key):
        resolve_config("smoke", overrides=overrides)


def test_max_images_must_be_positive():
    data = {"dataset": "folder", "data_root": "images", "max_images": -5}
    with pytest.raises(OlrError, match="max_images"):
        resolve_config("smoke", overrides={"data": data})
    config = resolve_config("smoke", overrides={"data": {**data, "max_images": 5}})
    assert config.data.max_images == 5


def test_max_images_with_synthetic_data_is_rejected():
    with pytest.raises(OlrError, match="synthetic_images"):
        resolve_config("smoke", overrides={"data": {"max_images": 10}})


def test_bad_occlusion_settings_are_rejected_early():
    with pytest.raises(OlrError, match="occlusion_fill"):
        resolve_config("smoke", overrides={"siamese": {"occlusion_fill": "grey"}})
    with pytest.raises(OlrError, match="occlusion_min"):
        resolve_config("smoke", overrides={"siamese": {"occlusion_min": 0.8}})
