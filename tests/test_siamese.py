"""Tests of the Siamese embedding model, its loss and its Lightning training step."""

import lightning.pytorch as pl
import pytest
import torch

from olr.config import to_dict
from olr.errors import TrainingError
from olr.models.classifier import Classifier, ClassifierConfig
from olr.models.siamese import SiameseConfig, SiameseEmbedder, olr_loss, pairwise_label_dot
from olr.models.trunk import TrunkConfig
from olr.training.siamese import SiameseModule

TINY = TrunkConfig(channels=(4, 8), convs_per_stage=1)


def test_embedder_output_shape_is_batch_label_dim():
    model = SiameseEmbedder(5, SiameseConfig(trunk=TINY, dim=3))
    out = model(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 5, 3)


def test_label_groups_map_to_their_label():
    # Map j*k .. (j+1)*k - 1 of the label layer must become the vector of label j.
    config = SiameseConfig(trunk=TINY, dim=2, label_norm="none", scale_by_sqrt_dim=False)
    model = SiameseEmbedder(3, config)
    with torch.no_grad():
        model.label_conv.weight.zero_()
        model.label_conv.bias.copy_(torch.arange(6, dtype=torch.float32))
    out = model(torch.rand(1, 3, 8, 8))
    assert torch.equal(out[0], torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))


def test_loss_equals_hand_computed_value():
    a = torch.tensor([[[1.0, 2.0], [0.0, 1.0]]])  # (1, 2, 2)
    b = torch.tensor([[[3.0, 0.5], [2.0, 2.0]]])
    targets = torch.tensor([[0.5, 1.0]])
    # dots: 1*3 + 2*0.5 = 4 and 0*2 + 1*2 = 2; errors 3.5 and 1; mean of squares (12.25 + 1) / 2.
    assert torch.allclose(pairwise_label_dot(a, b), torch.tensor([[4.0, 2.0]]))
    assert olr_loss(a, b, targets).item() == pytest.approx(6.625)


def test_scale_by_sqrt_dim_divides_vectors():
    torch.manual_seed(0)
    plain = SiameseEmbedder(2, SiameseConfig(trunk=TINY, dim=4, scale_by_sqrt_dim=False))
    scaled = SiameseEmbedder(2, SiameseConfig(trunk=TINY, dim=4, scale_by_sqrt_dim=True))
    scaled.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 8, 8)
    plain.eval()
    scaled.eval()
    assert torch.allclose(scaled(x), plain(x) / 2.0)


def _module(target: str = "occlusion", **kwargs) -> SiameseModule:
    teacher = Classifier(3, ClassifierConfig(trunk=TINY))
    return SiameseModule(
        3,
        to_dict(SiameseConfig(trunk=TINY, dim=4)),
        {"epochs": 1, "batch_size": 4},
        target=target,
        teacher=None if target == "hard" else teacher,
        **kwargs,
    )


def test_targets_are_products_of_pair_probabilities():
    module = _module("temperature", temperature=2.0)
    images = torch.rand(6, 3, 16, 16)
    inputs, targets = module.pair_targets(images, torch.zeros(6, 3))
    p = torch.sigmoid(module.teacher(images) / 2.0)
    assert torch.allclose(targets, p[:3] * p[3:])
    assert torch.equal(inputs, images)


def test_hard_targets_use_labels():
    module = _module("hard")
    labels = torch.tensor([[1, 0, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1]])
    _, targets = module.pair_targets(torch.rand(4, 3, 8, 8), labels)
    assert torch.equal(targets, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))


def test_occlusion_targets_use_occluded_inputs():
    module = _module("occlusion")
    images = torch.rand(4, 3, 16, 16) + 1.0
    inputs, _ = module.pair_targets(images, torch.zeros(4, 3))
    assert (inputs == 0).any()
    assert inputs.shape == images.shape


def test_teacher_stays_in_eval_mode():
    module = _module()
    module.train()
    assert module.embedder.training
    assert not module.teacher.training


def test_collapse_raises_training_error():
    module = _module(collapse_fraction=0.5)
    module._epoch_zero_fraction = [1.0, 1.0]
    with pytest.raises(TrainingError, match="collapsed"):
        module.on_train_epoch_end()


def test_lightning_steps_run_and_teacher_frozen():
    module = _module()
    teacher_before = [p.clone() for p in module.teacher.parameters()]
    images = torch.randint(0, 256, (16, 16, 16, 3), dtype=torch.uint8)
    labels = torch.randint(0, 2, (16, 3))
    loader = torch.utils.data.DataLoader(list(zip(images, labels)), batch_size=8)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    for before, after in zip(teacher_before, module.teacher.parameters()):
        assert torch.equal(before, after)
