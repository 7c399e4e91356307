"""Diagnose why measured edits fail: does the teacher still read the labels on reconstructions?

Example: ``python benchmarks/edit_diagnosis.py runs/celeba64``. For the test split it prints the
teacher's mean accuracy on the real images and on their decoded reconstructions. It also prints
how far the teacher's probability of each label moves when that label's vector is zeroed or
replaced by a sample of its fitted distribution. A decoder whose output barely depends on a
label's vector cannot make an edit that the teacher notices, whatever the distribution fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from olr.analysis.editing import edit_embeddings, fit_label_gaussians
from olr.analysis.embed import load_embeddings
from olr.cli import load_run
from olr.data.cache import ImageCache
from olr.pipeline.reconstruction_stages import load_decoder
from olr.pipeline.training_stages import load_teacher
from olr.training.batches import to_float_images


@torch.no_grad()
def teacher_probabilities(teacher, decoder, embeddings: torch.Tensor) -> np.ndarray:
    """Return the teacher's (N, L) probabilities on the decoded images, padded back to S."""
    _, images = decoder(embeddings)
    return torch.sigmoid(teacher(F.pad(images, (1, 1, 1, 1), mode="replicate"))).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("--scale", type=float, default=1.0, help="factor on added samples")
    args = parser.parse_args(argv)
    run = load_run(args.run)
    cache = ImageCache.open(run.cache_dir)
    test = load_embeddings(run.root / "embeddings" / "test.safetensors")
    train = load_embeddings(run.root / "embeddings" / "train.safetensors")
    teacher, decoder = load_teacher(run), load_decoder(run)
    gaussians = fit_label_gaussians(train.embeddings, train.labels, train.label_names)
    embeddings = torch.from_numpy(test.embeddings)
    labels = test.labels.astype(bool)
    with torch.no_grad():
        real = torch.sigmoid(
            teacher(to_float_images(torch.from_numpy(np.asarray(cache.images[test.indices]))))
        )
    plain = teacher_probabilities(teacher, decoder, embeddings)
    rows = []
    for index, name in enumerate(test.label_names):
        zeroed = edit_embeddings(embeddings, gaussians, [], [index])
        added = edit_embeddings(embeddings, gaussians, [index], [], args.scale, seed=index)
        rows.append(
            {
                "label": name,
                "teacher_accuracy_real": float(
                    ((real[:, index] >= 0.5).numpy() == labels[:, index]).mean()
                ),
                "teacher_accuracy_reconstruction": float(
                    ((plain[:, index] >= 0.5) == labels[:, index]).mean()
                ),
                "mean_p_plain": float(plain[:, index].mean()),
                "mean_p_removed": float(
                    teacher_probabilities(teacher, decoder, zeroed)[:, index].mean()
                ),
                "mean_p_added": float(
                    teacher_probabilities(teacher, decoder, added)[:, index].mean()
                ),
            }
        )
    summary = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "label"}
    print(json.dumps({"mean_over_labels": summary, "per_label": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
