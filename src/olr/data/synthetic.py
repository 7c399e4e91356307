"""Generate procedurally drawn faces with correlated CelebA-style labels and known ground truth.

Each label has a continuous intensity in [0, 1] (how open the mouth is, how wide the face is, how
dark the glasses are) and is 1 exactly when its intensity is above ``LABEL_THRESHOLD``. The
intensities come from a small ancestral model with CelebA-like dependencies (beards only on men,
lipstick mostly on women, gray hair and baldness with age, smiling opens the mouth). Faces are
drawn with vectorised numpy masks in coordinates relative to the image side, so any image size
works. Because the generator records where each face lies, ``measure_attributes`` can read some
attributes back from the pixels (how dark the mouth is, how dark the lenses are), independently of
any trained classifier.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr.data.cache import ImageCache, write_cache
from olr.errors import DataError, OlrError

SYNTHETIC_LABELS = (
    "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "No_Beard", "Mustache",
    "Goatee", "Wearing_Lipstick", "Heavy_Makeup", "Bangs", "Bald", "Black_Hair", "Blond_Hair",
    "Brown_Hair", "Gray_Hair", "Pale_Skin", "Chubby", "Narrow_Eyes", "Male", "Young",
)  # fmt: skip
LABEL_INDEX = {name: index for index, name in enumerate(SYNTHETIC_LABELS)}
LABEL_THRESHOLD = 0.5
HAIR_CLASSES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "other")
HAIR_RGB = np.array(
    [[30, 24, 22], [222, 190, 118], [112, 72, 42], [178, 176, 172], [150, 62, 30]], np.float32
)
CORRELATION_DRAWS = 200_000
CORRELATION_SEED = 20210204
# Spread of the logit noise; with it a bias b gives the label a probability of Phi(b / 1.5).
LOGIT_NOISE = 1.5
PIXEL_NOISE = 4.0  # standard deviation of the added pixel noise, on the 0..255 scale
PIXELS_PER_CHUNK = 2**21  # images are drawn in chunks of about this many pixels
# Per-image placement of the face, the columns of ``SyntheticData.geometry``.
GEOMETRY_COLUMNS = ("center_x", "center_y", "scale", "face_width")


@dataclass
class SyntheticData:
    """A generated dataset with its ground truth.

    Attributes:
        images: (N, S, S, 3) uint8 RGB faces.
        labels: (N, L) uint8 observed labels (clean labels with flips applied).
        clean_labels: (N, L) uint8 labels before flips; 1 iff the intensity > 0.5.
        intensities: (N, L) float32 attribute strengths in [0, 1].
        flipped: (N, L) bool, True where the observed label was flipped.
        label_names: the L names, ``SYNTHETIC_LABELS``.
        true_correlation: (L, L) float64 correlation of the clean labels under the model.
        geometry: (N, G) float32 face placement, columns ``GEOMETRY_COLUMNS``; see
            :func:`face_geometry`.
    """

    images: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    intensities: np.ndarray
    flipped: np.ndarray
    label_names: list[str]
    true_correlation: np.ndarray
    geometry: np.ndarray


def generate_synthetic(
    num_images: int, image_size: int = 64, seed: int = 0, flip_rate: float = 0.0
) -> SyntheticData:
    """Draw ``num_images`` synthetic faces with labels, intensities and flipped labels.

    Labels, drawing and flips use independent random streams derived from ``seed``, so changing
    ``flip_rate`` leaves the images and clean labels unchanged.

    Args:
        num_images: N, at least 1.
        image_size: side S in pixels, at least 8.
        seed: seed of all randomness; the same arguments give identical output.
        flip_rate: probability in [0, 1] that each observed label is flipped, independently.

    Returns:
        The images with their labels and ground truth.

    Raises:
        OlrError: for an invalid count, size or flip rate.
    """
    if num_images < 1:
        raise OlrError(f"num_images must be at least 1, got {num_images}")
    if image_size < 8:
        raise OlrError(f"image_size must be at least 8 pixels, got {image_size}")
    if not 0.0 <= flip_rate <= 1.0:
        raise OlrError(f"flip_rate must be between 0 and 1, got {flip_rate}")
    label_seed, draw_seed, flip_seed = np.random.SeedSequence(seed).spawn(3)
    intensities, latents = sample_attributes(num_images, np.random.default_rng(label_seed))
    clean = (intensities > LABEL_THRESHOLD).astype(np.uint8)
    images, geometry = render_faces_with_geometry(
        intensities, latents, image_size, np.random.default_rng(draw_seed)
    )
    flipped = np.random.default_rng(flip_seed).random(clean.shape) < flip_rate
    return SyntheticData(
        images=images,
        labels=clean ^ flipped.astype(np.uint8),
        clean_labels=clean,
        intensities=intensities,
        flipped=flipped,
        label_names=list(SYNTHETIC_LABELS),
        true_correlation=true_label_correlation(),
        geometry=geometry,
    )


def write_synthetic_cache(
    cache_dir: Path, num_images: int, image_size: int, seed: int, flip_rate: float
) -> ImageCache:
    """Generate a synthetic dataset and write it as an image cache with its ground truth.

    Args:
        cache_dir: output directory.
        num_images: N.
        image_size: side S in pixels.
        seed: generator seed.
        flip_rate: per-label flip probability.

    Returns:
        The opened cache; ``truth`` contains ``intensities``, ``flipped``, ``clean_labels``,
        ``true_correlation`` and ``geometry`` (N, G) float32 with columns ``GEOMETRY_COLUMNS``,
        and ids are ``synthetic_000000`` onwards.
    """
    data = generate_synthetic(num_images, image_size, seed, flip_rate)
    truth = {
        "intensities": data.intensities,
        "flipped": data.flipped,
        "clean_labels": data.clean_labels,
        "true_correlation": data.true_correlation,
        "geometry": data.geometry,
    }
    ids = [f"synthetic_{index:06d}" for index in range(num_images)]
    return write_cache(
        cache_dir, data.images, data.labels, ids, data.label_names, "synthetic", truth=truth
    )


@functools.lru_cache(maxsize=1)
def _cached_correlation() -> np.ndarray:
    intensities, _ = sample_attributes(CORRELATION_DRAWS, np.random.default_rng(CORRELATION_SEED))
    labels = (intensities > LABEL_THRESHOLD).astype(np.float64)
    return np.corrcoef(labels, rowvar=False)


def true_label_correlation() -> np.ndarray:
    """Estimate the correlation of the clean labels from 200,000 draws of the label model.

    The draws use a fixed seed, so the estimate is the same in every call and process.

    Returns:
        (L, L) float64 Pearson correlation matrix, rows and columns in ``SYNTHETIC_LABELS``
        order.
    """
    return _cached_correlation().copy()


def face_geometry(appearance: dict[str, np.ndarray], intensities: np.ndarray) -> np.ndarray:
    """Collect the placement of each drawn face, which is what locating its features needs.

    Image coordinates run from -1 (left or top edge) to 1 (right or bottom edge). A point at
    face coordinates (u, v) is drawn at x = center_x + scale * u, y = center_y + scale * v.

    Args:
        appearance: the drawing parameters, with (N,) ``center_x``, ``center_y`` and ``scale``.
        intensities: (N, L) label intensities, for the face width that Chubby sets.

    Returns:
        (N, 4) float32 with columns ``GEOMETRY_COLUMNS``: face centre x and y in image
        coordinates, image-coordinate units per face unit, and half-width of the face in face
        units.
    """
    columns = [appearance["center_x"], appearance["center_y"], appearance["scale"]]
    columns.append(_face_width(intensities[:, LABEL_INDEX["Chubby"]]))
    return np.stack(columns, axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Label model


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def sample_attributes(num: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Sample label intensities from the ancestral model.

    Each label's intensity is the sigmoid of a logit (a bias that depends on already sampled
    labels, plus normal noise), except the hair colours, which are one categorical choice, and
    No_Beard, which is one minus the strongest beard intensity.

    Args:
        num: number of draws.
        rng: the random generator.

    Returns:
        ``(intensities, latents)``: (num, L) float32 intensities in [0, 1] whose labels
        (intensity > 0.5) obey the model's rules, and drawing-only latents: ``hair_class``
        (num,) int index into ``HAIR_CLASSES`` and ``beard`` (num,) full-beard intensity.
    """
    values: dict[str, np.ndarray] = {}

    def draw(name: str, bias) -> np.ndarray:
        values[name] = _sigmoid(bias + rng.normal(0.0, LOGIT_NOISE, num))
        return (values[name] > LABEL_THRESHOLD).astype(np.float64)

    male = draw("Male", -0.3)
    young = draw("Young", 1.3 - 0.5 * male)
    old = 1.0 - young
    draw("Pale_Skin", -1.8 - 0.5 * male)
    draw("Chubby", -3.0 + 1.0 * male + 1.0 * old)
    smiling = draw("Smiling", -0.1 + 0.2 * young)
    draw("Mouth_Slightly_Open", -1.2 + 2.4 * smiling)
    draw("Narrow_Eyes", -2.0 + 0.8 * smiling)
    draw("Eyeglasses", -2.6 + 0.6 * male + 1.0 * old)
    bald = draw("Bald", -5.5 + 2.5 * male + 2.2 * old)
    draw("Bangs", -0.9 - 1.2 * male + 0.3 * young)
    values["Bangs"] *= 1.0 - bald  # bald and bangs are exclusive
    draw("Wearing_Hat", -2.8 + 0.3 * male)
    lipstick = draw("Wearing_Lipstick", 0.8 - 3.5 * male + 0.3 * young)
    draw("Heavy_Makeup", -1.6 + 2.2 * lipstick - 1.5 * male + 0.4 * young)
    beard = _sample_beards(values, male, old, rng, num)
    hair_class = _sample_hair(values, male, old, bald, rng, num)
    intensities = np.stack([values[name] for name in SYNTHETIC_LABELS], axis=1)
    return _exact_threshold(intensities), {"hair_class": hair_class, "beard": beard}


def _sample_beards(values, male, old, rng, num) -> np.ndarray:
    """Fill Mustache, Goatee and No_Beard; return the full-beard intensity (0 for women)."""
    beard = _sigmoid(-1.0 + 0.8 * old + rng.normal(0.0, LOGIT_NOISE, num)) * male
    has_beard = (beard > LABEL_THRESHOLD).astype(np.float64)
    values["Mustache"] = _sigmoid(-2.0 + 1.5 * has_beard + rng.normal(0.0, LOGIT_NOISE, num)) * male
    values["Goatee"] = _sigmoid(-1.8 + 1.0 * has_beard + rng.normal(0.0, LOGIT_NOISE, num)) * male
    strongest = np.maximum(beard, np.maximum(values["Mustache"], values["Goatee"]))
    values["No_Beard"] = 1.0 - strongest
    return beard


def _sample_hair(values, male, old, bald, rng, num) -> np.ndarray:
    """Pick one hair colour class per draw and fill the four hair colour intensities."""
    weights = np.empty((num, len(HAIR_CLASSES)))
    weights[:] = [0.25, 0.16, 0.22, 0.04, 0.33]
    weights[:, 1] *= 1.0 - 0.65 * male  # blond mostly on women
    weights[:, 3] *= 1.0 + 9.0 * old  # gray mostly when not young
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    hair_class = (rng.random((num, 1)) > cumulative).sum(axis=1)
    hair_class = np.minimum(hair_class, len(HAIR_CLASSES) - 1)
    for index, name in enumerate(HAIR_CLASSES[:4]):
        # The chosen colour is clearly present (0.55..1); the others are traces below 0.5.
        chosen = 0.55 + 0.45 * rng.random(num)
        trace = 0.4 * rng.random(num)
        strength = np.where(hair_class == index, chosen, trace)
        # A bald head shows no hair colour, so every colour label is 0.
        values[name] = np.where(bald > 0, 0.4 * strength, strength)
    return hair_class


def _exact_threshold(intensities: np.ndarray) -> np.ndarray:
    """Cast to float32 without letting rounding move a value across the threshold."""
    labels = intensities > LABEL_THRESHOLD
    result = intensities.astype(np.float32)
    above = np.nextafter(np.float32(LABEL_THRESHOLD), np.float32(1.0))
    result[labels] = np.maximum(result[labels], above)
    result[~labels] = np.minimum(result[~labels], np.float32(LABEL_THRESHOLD))
    return np.clip(result, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Drawing


def render_faces(
    intensities: np.ndarray, latents: dict, image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw one face per row of ``intensities``.

    Args:
        intensities: (N, L) float32 label intensities, columns in ``SYNTHETIC_LABELS`` order.
        latents: ``hair_class`` and ``beard`` from :func:`sample_attributes`.
        image_size: side S in pixels.
        rng: source of the appearance jitter (position, scale, colours) and pixel noise.

    Returns:
        (N, S, S, 3) uint8 RGB images.
    """
    return render_faces_with_geometry(intensities, latents, image_size, rng)[0]


def render_faces_with_geometry(
    intensities: np.ndarray, latents: dict, image_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the faces as :func:`render_faces` does and also return where each face lies.

    The same rng state gives the same placement, colours and noise whatever the intensities,
    so two calls that differ only in one intensity draw the same face with that attribute
    changed.

    Args:
        intensities: (N, L) float32 label intensities, columns in ``SYNTHETIC_LABELS`` order.
        latents: ``hair_class`` and ``beard`` from :func:`sample_attributes`.
        image_size: side S in pixels.
        rng: source of the appearance jitter and pixel noise.

    Returns:
        ``(images, geometry)``: (N, S, S, 3) uint8 RGB images and (N, 4) float32 geometry with
        columns ``GEOMETRY_COLUMNS`` (see :func:`face_geometry`).
    """
    num = len(intensities)
    appearance = _sample_appearance(num, rng)
    appearance["hair_rgb"] = _hair_colours(latents["hair_class"], rng)
    appearance["beard"] = latents["beard"]
    images = np.empty((num, image_size, image_size, 3), dtype=np.uint8)
    chunk = max(1, PIXELS_PER_CHUNK // (image_size * image_size))
    for start in range(0, num, chunk):
        part = slice(start, min(start + chunk, num))
        params = {name: value[part] for name, value in appearance.items()}
        canvas = _draw_chunk(intensities[part], params, image_size)
        canvas += PIXEL_NOISE * rng.standard_normal(canvas.shape, dtype=np.float32)
        images[part] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
    return images, face_geometry(appearance, intensities)


def _sample_appearance(num: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image nuisance parameters that no label describes."""
    skin_dark = rng.beta(2.0, 3.0, num)[:, None]
    return {
        "center_x": rng.uniform(-0.06, 0.06, num),
        "center_y": rng.uniform(0.02, 0.12, num),
        "scale": rng.uniform(0.85, 1.0, num),
        "background": rng.uniform(60, 200, (num, 3)),
        "clothes": rng.uniform(20, 200, (num, 3)),
        "skin": (1 - skin_dark) * [236, 198, 170] + skin_dark * [120, 78, 55],
        "iris": rng.uniform(20, 110, (num, 3)),
        "hat": rng.uniform(10, 230, (num, 3)),
        "frame": rng.uniform(0, 80, (num, 1)) * [1, 1, 1],
        "brightness": rng.uniform(0.88, 1.12, num),
        "tint": rng.uniform(0.94, 1.06, (num, 3)),
    }


def _hair_colours(hair_class: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return HAIR_RGB[hair_class] * rng.uniform(0.85, 1.12, (len(hair_class), 1))


class _Frame:
    """Face-relative pixel coordinates of a chunk, with helpers that return soft coverage masks.

    ``u`` (B, 1, W) grows to the right and ``v`` (B, H, 1) downwards, in units where the face
    is about 1 wide. Every mask is (B, H, W) float32 in [0, 1] with about one pixel of
    antialiased edge.
    """

    def __init__(self, u: np.ndarray, v: np.ndarray, pixels: np.ndarray) -> None:
        self.u = u
        self.v = v
        self.pixels = pixels  # (B, 1, 1) pixels per face unit

    @classmethod
    def for_chunk(cls, params: dict, size: int) -> _Frame:
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
        scale = _column(params["scale"])
        u = (axis[None, None, :] - _column(params["center_x"])) / scale
        v = (axis[None, :, None] - _column(params["center_y"])) / scale
        return cls(u, v, scale * (size / 2.0))

    @classmethod
    def for_geometry(cls, geometry: np.ndarray, size: int, offset: int) -> _Frame:
        """Frame of (B, size, size) images cut from the centre of images of side size + 2 offset."""
        full = size + 2 * offset
        axis = (np.arange(full, dtype=np.float32) + 0.5) / full * 2.0 - 1.0
        axis = axis[offset : offset + size]
        center_x, center_y, scale = (_column(geometry[:, column]) for column in range(3))
        u = (axis[None, None, :] - center_x) / scale
        v = (axis[None, :, None] - center_y) / scale
        return cls(u, v, scale * (full / 2.0))

    def window(self, canvas: np.ndarray, u0: float, u1: float, v0: float, v1: float):
        """Restrict drawing to the pixels near the face-unit box ``[u0, u1] x [v0, v1]``.

        Drawing only there is exact as long as the feature lies inside the box, and it is
        much cheaper than evaluating every mask on the whole image.

        Returns:
            ``(frame, view)``: a frame and a canvas view for the box, or ``(None, None)``
            when the box is outside every image of the chunk.
        """
        margin = 2.0 / float(self.pixels.min())
        columns = np.flatnonzero(
            ((self.u >= u0 - margin) & (self.u <= u1 + margin)).any(axis=(0, 1))
        )
        rows = np.flatnonzero(((self.v >= v0 - margin) & (self.v <= v1 + margin)).any(axis=(0, 2)))
        if columns.size == 0 or rows.size == 0:
            return None, None
        cols = slice(columns[0], columns[-1] + 1)
        lines = slice(rows[0], rows[-1] + 1)
        sub = _Frame(self.u[:, :, cols], self.v[:, lines, :], self.pixels)
        return sub, canvas[:, :, lines, cols]

    def edge(self, distance: np.ndarray) -> np.ndarray:
        """Coverage from a signed distance in face units (positive inside)."""
        return np.clip(distance * self.pixels + 0.5, 0.0, 1.0)

    def ellipse(self, cu, cv, a, b) -> np.ndarray:
        radius = np.sqrt(((self.u - cu) / a) ** 2 + ((self.v - cv) / b) ** 2)
        return self.edge((1.0 - radius) * np.minimum(a, b))

    def box(self, u0, u1, v0, v1) -> np.ndarray:
        across = np.minimum(self.u - u0, u1 - self.u)
        along = np.minimum(self.v - v0, v1 - self.v)
        return self.edge(np.minimum(across, along))

    def below(self, v0) -> np.ndarray:
        return self.edge(self.v - v0)


def _column(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _blend(canvas: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Paint ``colour`` ((B, 3) or (3,)) over a (3, B, H, W) canvas with coverage (B, H, W)."""
    colour = np.asarray(colour, dtype=np.float32).T
    canvas += alpha * (colour.reshape(*colour.shape, *(1,) * (4 - colour.ndim)) - canvas)


def _ramp(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map intensities linearly from [low, high] to [0, 1], clipped; a (B, 1, 1) column."""
    return np.clip((_column(values) - low) / (high - low), 0.0, 1.0)


def _draw_chunk(intensities: np.ndarray, params: dict, size: int) -> np.ndarray:
    """Draw a chunk of faces into a (3, B, S, S) float32 canvas on the 0..255 scale.

    Colour planes come first because numpy loops over a trailing axis of length 3 are slow.
    """
    attr = {name: intensities[:, index] for name, index in LABEL_INDEX.items()}
    frame = _Frame.for_chunk(params, size)
    canvas = np.empty((3, len(intensities), size, size), dtype=np.float32)
    canvas[:] = params["background"].T[:, :, None, None] * (1.0 + 0.06 * frame.v)
    looks = {
        "skin": _skin_colour(params["skin"], attr["Pale_Skin"]),
        "hair": params["hair_rgb"],
        "face_width": _column(_face_width(attr["Chubby"])),
        "hair_cover": 1.0 - _ramp(attr["Bald"], 0.35, 0.65),
    }
    layers = (
        _draw_body, _draw_back_hair, _draw_face, _draw_age_lines, _draw_top_hair, _draw_eyes,
        _draw_nose, _draw_beards, _draw_mouth, _draw_glasses, _draw_hat,
    )  # fmt: skip
    for layer in layers:
        layer(canvas, frame, attr, params, looks)
    canvas *= (params["brightness"][:, None] * params["tint"]).T.astype(np.float32)[..., None, None]
    return canvas


def _face_width(chubby: np.ndarray) -> np.ndarray:
    """Half-width of the face ellipse in face units; a chubbier face is wider."""
    return 0.47 + 0.13 * chubby


def _skin_colour(base: np.ndarray, pale: np.ndarray) -> np.ndarray:
    # Paleness moves the tone continuously towards a very light skin colour.
    weight = (0.85 * pale**1.3)[:, None]
    return (1 - weight) * base + weight * np.array([250, 232, 222])


def _draw_body(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -1.1, 1.1, 0.28, 2.25)
    if sub is None:
        return
    _blend(view, sub.ellipse(0.0, 1.5, 1.05, 0.7), params["clothes"])
    _blend(view, sub.box(-0.2, 0.2, 0.3, 1.0), looks["skin"] * 0.9)


def _draw_back_hair(canvas, frame, attr, params, looks) -> None:
    # Long hair behind the face, longer the less male; at length 0 the face hides it.
    length = _column(np.clip(1.2 * (1.0 - attr["Male"]), 0.0, 1.0))
    sub, view = frame.window(canvas, -0.7, 0.7, -0.75, 1.25)
    if sub is None:
        return
    hair = sub.ellipse(0.0, -0.1 + 0.3 * length, 0.5 + 0.14 * length, 0.62 + 0.4 * length)
    _blend(view, hair * looks["hair_cover"], looks["hair"])


def _draw_face(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.62, 0.62, -0.66, 0.66)
    _blend(view, sub.ellipse(0.0, 0.0, looks["face_width"], 0.64), looks["skin"])


def _draw_age_lines(canvas, frame, attr, params, looks) -> None:
    strength = _ramp(1.0 - attr["Young"], 0.3, 0.8) * 0.8
    sub, view = frame.window(canvas, -0.3, 0.3, -0.36, 0.0)
    skin = looks["skin"]
    for v in (-0.34, -0.27):  # forehead wrinkles
        _blend(view, sub.box(-0.2, 0.2, v - 0.008, v + 0.008) * strength, skin * 0.72)
    for left in (-0.27, 0.13):  # bags under the eyes
        _blend(view, sub.box(left, left + 0.14, -0.03, -0.016) * strength, skin * 0.78)


def _draw_top_hair(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.7, 0.7, -0.85, 0.02)
    if sub is None:
        return
    cover, width = looks["hair_cover"], looks["face_width"]
    scalp = sub.ellipse(0.0, -0.1, width + 0.06, 0.72)
    _blend(view, scalp * (1.0 - cover) * sub.edge(-0.3 - sub.v), looks["skin"] * 1.03)
    hairline = -0.42 + 0.3 * _column(attr["Bangs"])  # bangs bring the fringe down the forehead
    crown = scalp * sub.edge(hairline - sub.v)
    sides = scalp * sub.edge(np.abs(sub.u) - width + 0.06) * sub.edge(-sub.v)
    _blend(view, np.maximum(crown, sides) * cover, looks["hair"])


def _draw_eyes(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.45, 0.45, -0.25, 0.2)
    makeup = _column(attr["Heavy_Makeup"])
    openness = 1.0 - 0.7 * _column(attr["Narrow_Eyes"])
    brow = np.where(attr["Bald"][:, None] > 0.5, [60, 50, 45], looks["hair"] * 0.7)
    for side in (-1.0, 1.0):
        cu = side * 0.2
        _blend(view, sub.ellipse(cu, -0.08, 0.12, 0.07) * 0.75 * makeup, [120, 60, 115])
        _blend(view, sub.ellipse(cu * 1.5, 0.12, 0.1, 0.06) * 0.35 * makeup, [220, 110, 120])
        _blend(view, sub.ellipse(cu, -0.1, 0.085, 0.045 * openness), [242, 242, 240])
        iris = sub.ellipse(cu, -0.1, 0.035, np.minimum(0.035, 0.045 * openness))
        _blend(view, iris, params["iris"])
        _blend(view, sub.ellipse(cu, -0.2, 0.1, 0.02), brow)


def _draw_nose(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.06, 0.06, -0.02, 0.22)
    _blend(view, sub.ellipse(0.0, 0.1, 0.045, 0.11), looks["skin"] * 0.82)


def _draw_mouth(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.22, 0.22, 0.15, 0.48)
    half_width = _column(0.16 + 0.04 * attr["Smiling"])
    across = np.clip(sub.u / half_width, -1.0, 1.0) ** 2
    # A smile raises the corners; a low smile intensity gives a slight frown.
    centre = 0.33 - 0.08 * (_column(attr["Smiling"]) - 0.3) * across
    opening = 0.08 * _column(attr["Mouth_Slightly_Open"]) * (1.0 - across)
    within = sub.edge(half_width - np.abs(sub.u))
    distance = np.abs(sub.v - centre)
    lipstick = (np.clip(1.6 * attr["Wearing_Lipstick"] - 0.3, 0, 1) * 0.9)[:, None]
    natural = looks["skin"] * [0.82, 0.55, 0.55]
    lips = (1 - lipstick) * natural + lipstick * np.array([205, 25, 55])
    _blend(view, sub.edge(opening + 0.022 - distance) * within, lips)
    _blend(view, sub.edge(opening - distance) * within, [55, 18, 24])


def _draw_beards(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.62, 0.62, 0.13, 0.66)
    colour = np.where(attr["Bald"][:, None] > 0.5, [70, 55, 45], looks["hair"] * 0.8)
    full = _ramp(params["beard"], 0.3, 0.7) * 0.85
    jaw = sub.ellipse(0.0, 0.0, looks["face_width"], 0.64) * sub.below(0.15)
    _blend(view, jaw * full, colour)
    mustache = _ramp(attr["Mustache"], 0.3, 0.7) * 0.9
    _blend(view, sub.box(-0.19, 0.19, 0.22, 0.28) * mustache, colour)
    goatee = _ramp(attr["Goatee"], 0.3, 0.7) * 0.9
    _blend(view, sub.ellipse(0.0, 0.5, 0.12, 0.11) * goatee, colour)


def _draw_glasses(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.35, 0.35, -0.2, 0.0)
    glasses = attr["Eyeglasses"]
    frame_alpha = _ramp(glasses, 0.4, 0.5)
    lens_alpha = _ramp(glasses, 0.4, 1.0) * 0.8  # darker lenses for stronger intensity
    for side in (-1.0, 1.0):
        outer = sub.ellipse(side * 0.2, -0.1, 0.13, 0.095)
        inner = sub.ellipse(side * 0.2, -0.1, 0.11, 0.075)
        _blend(view, inner * lens_alpha, [25, 25, 35])
        _blend(view, (outer - inner) * frame_alpha, params["frame"])
    _blend(view, sub.box(-0.09, 0.09, -0.12, -0.1) * frame_alpha, params["frame"])


def _draw_hat(canvas, frame, attr, params, looks) -> None:
    sub, view = frame.window(canvas, -0.75, 0.75, -1.1, -0.44)
    if sub is None:
        return
    hat = _column(attr["Wearing_Hat"])
    alpha = _ramp(attr["Wearing_Hat"], 0.45, 0.55)
    height = 0.22 + 0.2 * hat  # a stronger intensity gives a taller crown
    crown = sub.ellipse(0.0, -0.47, 0.6, height) * sub.edge(-0.47 - sub.v)
    brim = sub.box(-0.72, 0.72, -0.53, -0.46)
    _blend(view, np.maximum(crown, brim) * alpha, params["hat"])


# ---------------------------------------------------------------------------------------------
# Measuring attributes from the pixels

MEASURABLE_LABELS = ("Mouth_Slightly_Open", "Eyeglasses", "Bangs", "Blond_Hair")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma weights
# Regions in face units as (u0, u1, v0, v1), placed from the drawing code above.
MOUTH_BOX = (-0.10, 0.10, 0.27, 0.40)  # the dark opening grows from v = 0.33 up to 0.08 each way
LENS_CENTRES = ((-0.2, -0.1), (0.2, -0.1))
LENS_RADII = (0.10, 0.065)  # inside the lens, which is 0.11 x 0.075
FOREHEAD_BOX = (-0.08, 0.08, -0.38, -0.23)  # the fringe comes down to v = -0.42 + 0.3 * Bangs
CHEEK_BOXES = ((-0.38, -0.25, -0.02, 0.04), (0.25, 0.38, -0.02, 0.04))  # bare skin
CROWN_BOX = (-0.25, 0.25, -0.72, -0.50)  # hair above the hairline (a hat covers it)


def measure_attributes(
    images: np.ndarray, geometry: np.ndarray, label_names: list[str], offset_pixels: int = 0
) -> dict[str, np.ndarray]:
    """Read attribute strengths back from synthetic faces at the places the generator drew them.

    Every measure is higher for more of the attribute:

    - Mouth_Slightly_Open: the darkness (1 - mean luma) of the mouth box.
    - Eyeglasses: the darkness inside the two lenses.
    - Bangs: the mean absolute RGB difference between the upper forehead and the bare cheeks,
      because a fringe covers the forehead with hair.
    - Blond_Hair: green minus blue of the crown hair, because only blond hair is clearly yellow.
      A hat covers the crown, so a hat of a yellowish colour also scores high.

    The generator draws glasses only above intensity 0.4, and a hair colour does not vary with
    its intensity. For those two labels the measure separates images with and without the label
    but ranks the intensities only coarsely.

    Args:
        images: (N, H, H, 3) RGB, uint8 or float in [0, 1].
        geometry: (N, 4) rows of ``SyntheticData.geometry`` for these images.
        label_names: labels to measure, each in ``MEASURABLE_LABELS``.
        offset_pixels: the images are the centre of the drawn images with this many pixels cut
            from each side (1 for decoder outputs, which are 2 pixels smaller than the input).

    Returns:
        {label: (N,) float64 measurement}, on the scale of pixel values in [0, 1].

    Raises:
        DataError: for images or geometry of the wrong shape or range, or regions outside
            the images.
        OlrError: for a label without a measure or a negative offset.
    """
    images = np.asarray(images)
    _check_images(images)
    _check_geometry(geometry, len(images))
    unknown = [name for name in label_names if name not in MEASURABLE_LABELS]
    if unknown:
        raise OlrError(f"no pixel measure for labels {unknown}: use some of {MEASURABLE_LABELS}")
    if offset_pixels < 0:
        raise OlrError(f"offset_pixels must be 0 or more, got {offset_pixels}")
    size = images.shape[1]
    # Chunks bound the memory of the float copy and the masks for large sets of large images.
    chunk = max(1, PIXELS_PER_CHUNK // (size * size))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in label_names}
    for start in range(0, len(images), chunk):
        part = slice(start, start + chunk)
        pixels = images[part].astype(np.float32)
        if images.dtype == np.uint8:
            pixels /= 255.0
        frame = _Frame.for_geometry(np.asarray(geometry[part], np.float32), size, offset_pixels)
        for name in label_names:
            parts[name].append(_MEASURES[name](pixels, frame))
    return {name: np.concatenate(values) for name, values in parts.items()}


def _check_images(images: np.ndarray) -> None:
    """Raise DataError unless images are (N, H, H, 3), uint8 or float in [0, 1]."""
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"images must be (N, H, H, 3) RGB, got shape {images.shape}")
    if images.dtype == np.uint8:
        return
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    if images.size and not (np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise DataError(
            f"float images must lie in [0, 1], got values from {images.min()} to {images.max()}"
        )


def _check_geometry(geometry: np.ndarray, count: int) -> None:
    shape = np.shape(geometry)
    if shape != (count, len(GEOMETRY_COLUMNS)):
        raise DataError(
            f"geometry must be ({count}, {len(GEOMETRY_COLUMNS)}) with columns "
            f"{GEOMETRY_COLUMNS}, got shape {shape}; take it from the truth of the image cache"
        )
    if not np.isfinite(geometry).all() or np.min(geometry[:, 2], initial=1.0) <= 0:
        raise DataError("geometry must be finite with a positive scale column")


def _region_mean(values: np.ndarray, weights: np.ndarray, region: str) -> np.ndarray:
    """Coverage-weighted mean of (B, H, W) values over each image's region."""
    total = weights.sum(axis=(1, 2), dtype=np.float64)
    if (total <= 0).any():
        raise DataError(
            f"the {region} region lies outside image {int(np.argmin(total))}: check the "
            "geometry rows and offset_pixels"
        )
    return (values * weights).sum(axis=(1, 2), dtype=np.float64) / total


def _union(masks: list[np.ndarray]) -> np.ndarray:
    return np.maximum.reduce(masks)


def _mouth_darkness(pixels: np.ndarray, frame: _Frame) -> np.ndarray:
    return 1.0 - _region_mean(pixels @ LUMA, frame.box(*MOUTH_BOX), "mouth")


def _lens_darkness(pixels: np.ndarray, frame: _Frame) -> np.ndarray:
    lenses = _union([frame.ellipse(u, v, *LENS_RADII) for u, v in LENS_CENTRES])
    return 1.0 - _region_mean(pixels @ LUMA, lenses, "lens")


def _fringe_contrast(pixels: np.ndarray, frame: _Frame) -> np.ndarray:
    cheeks = _union([frame.box(*box) for box in CHEEK_BOXES])
    skin = np.stack([_region_mean(pixels[..., c], cheeks, "cheek") for c in range(3)], axis=1)
    difference = np.abs(pixels - skin[:, None, None, :].astype(np.float32)).sum(axis=3)
    return _region_mean(difference, frame.box(*FOREHEAD_BOX), "forehead")


def _crown_yellowness(pixels: np.ndarray, frame: _Frame) -> np.ndarray:
    return _region_mean(pixels[..., 1] - pixels[..., 2], frame.box(*CROWN_BOX), "crown")


_MEASURES = {
    "Mouth_Slightly_Open": _mouth_darkness,
    "Eyeglasses": _lens_darkness,
    "Bangs": _fringe_contrast,
    "Blond_Hair": _crown_yellowness,
}
