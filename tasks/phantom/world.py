"""The phantom world's generator: eight lesion classes rendered in two imaging modalities.

Every image is a pure function of an integer key (``seed``, ``stream``, ``modality``, ``split``, ``index``):
``numpy.random.default_rng(key)`` draws the lesion's latent parameters and the modality's nuisances, the
picture is drawn at 2x resolution and box-downsampled to 32x32 px, then quantised to uint8. So any subset
can be regenerated alone, and two processes draw the same pixels.

Classes come in four confusable pairs (same family, different detail):

================  ============  =====================================================================
family            class         what tells the pair apart (distributions overlap on purpose)
================  ============  =====================================================================
solid round       adenoma       no or one faint inner speck
                  hamartoma     one to four bright specks (popcorn)
irregular solid   carcinoma     radiating spikes, some short
                  fibroma       rounded lobes, a few with small bumps
ring              cyst          thin smooth wall, clear centre
                  abscess       thicker uneven wall, grainy centre, halo
diffuse           infiltrate    soft clumps in a cluster
                  fibrosis      thin curved strands
================  ============  =====================================================================

Modalities: ``hi`` is a crisp colour picture (skin-toned background, dark lesion, hairs, bubbles, dark
scope corners); ``lo`` is grey, blurred, noisy and low-contrast (the lesion is a faint bright shadow over
rib-like bands, with letter markers and scan lines). Captions (:func:`caption`) describe what is visible
in words shared with the class descriptions, never with the class names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

GENERATOR_VERSION = 2
IMAGE_SIZE = 32
_SS = 2  # supersampling factor: draw at 64 px, box-downsample to 32 px
_N = IMAGE_SIZE * _SS
_PX = 2.0 / _N  # one fine pixel in the [-1, 1] coordinate frame

STREAMS = {"task": 0, "pretrain": 1}
MODALITY_IDS = {"hi": 0, "lo": 1}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "corpus": 3}


@dataclass(frozen=True)
class LesionClass:
    """A class of the phantom world: its prompt name, its drawing kind and its confusable partner."""

    name: str
    kind: str
    partner: int


CLASSES: tuple[LesionClass, ...] = (
    LesionClass("adenoma", "solid", 1),
    LesionClass("hamartoma", "solid", 0),
    LesionClass("carcinoma", "spiculated", 3),
    LesionClass("fibroma", "lobulated", 2),
    LesionClass("cyst", "ring", 5),
    LesionClass("abscess", "ring", 4),
    LesionClass("infiltrate", "patchy", 7),
    LesionClass("fibrosis", "streaky", 6),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

_c = (np.arange(_N) + 0.5) * _PX - 1.0
_V, _U = np.meshgrid(_c, _c, indexing="ij")  # _U: x (columns), _V: y (rows), both in [-1, 1]


def rng_for(seed: int, stream: str, modality: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a SeedSequence keyed by all five coordinates (no shared state)."""
    key = [int(seed), STREAMS[stream], MODALITY_IDS[modality], SPLIT_IDS[split], int(index)]
    return np.random.default_rng(key)


# ------------------------------------------------------------------------------------------ latent params
def sample_lesion(rng: np.random.Generator, label: int) -> dict[str, Any]:
    """Draw the latent lesion parameters of class ``label`` (geometry in [-1, 1] image coordinates)."""
    kind = CLASSES[label].kind
    p: dict[str, Any] = {
        "label": label,
        "kind": kind,
        "cx": float(np.clip(rng.normal(0, 0.12), -0.25, 0.25)),
        "cy": float(np.clip(rng.normal(0, 0.12), -0.25, 0.25)),
        "r": float(rng.uniform(0.24, 0.46)),
        "theta": float(rng.uniform(0, 2 * np.pi)),
        "ell": float(rng.uniform(0.0, 0.25)),
        "edge": float(rng.uniform(0.008, 0.05)),
        "specks": [],
    }
    if kind == "solid":
        if label == 0:  # adenoma: mostly plain, one in seven with one faint speck
            n = int(rng.random() < 0.15)
            lo, hi = 0.25, 0.6
        else:  # hamartoma: popcorn specks, sometimes only one faint one
            n = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15]))
            lo, hi = 0.35, 1.0
        p["specks"] = _specks(rng, n, p["r"], lo, hi)
    elif kind == "spiculated":
        n = int(rng.integers(5, 12))
        base = float(rng.uniform(0.3, 0.75))  # short spikes look like bumps: overlaps with fibroma
        p["core"] = float(rng.uniform(0.7, 0.9))
        p["spikes"] = [
            (float(a), float(base * rng.uniform(0.6, 1.4)), float(rng.uniform(0.02, 0.035)))
            for a in rng.uniform(0, 2 * np.pi, n)
        ]
        p["ell"] *= 0.5
    elif kind == "lobulated":
        p["lobes"] = (
            int(rng.integers(3, 7)),
            float(rng.uniform(0.1, 0.28)),
            float(rng.uniform(0, 2 * np.pi)),
        )
        n_bumps = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
        p["spikes"] = [
            (float(a), float(rng.uniform(0.08, 0.25)), float(rng.uniform(0.015, 0.03)))
            for a in rng.uniform(0, 2 * np.pi, n_bumps)
        ]
        p["core"] = 1.0
    elif kind == "ring":
        if label == 4:  # cyst: thin smooth wall, nearly clear centre
            p["wall"] = float(rng.uniform(0.035, 0.07))
            p["irregular"] = float(rng.uniform(0.0, 0.06))
            p["fill"] = float(rng.uniform(0.0, 0.22))
            p["halo"] = 0.0
        else:  # abscess: thicker uneven wall, grainy centre, a soft halo
            p["wall"] = float(rng.uniform(0.05, 0.11))
            p["irregular"] = float(rng.uniform(0.04, 0.16))
            p["fill"] = float(rng.uniform(0.15, 0.5))
            p["halo"] = float(rng.uniform(0.0, 0.35))
        p["wobble"] = (int(rng.integers(3, 6)), float(rng.uniform(0, 2 * np.pi)))
        p["grain"] = rng.uniform(0.0, 1.0, (8, 8)).tolist()
    elif kind == "patchy":
        n = int(rng.integers(3, 8))
        p["blobs"] = [
            (
                float(p["cx"] + p["r"] * rng.normal(0, 0.6)),
                float(p["cy"] + p["r"] * rng.normal(0, 0.6)),
                float(rng.uniform(0.05, 0.14)),
                float(rng.uniform(0.5, 1.0)),
            )
            for _ in range(n)
        ]
    elif kind == "streaky":
        n = int(rng.integers(3, 8))
        strands = []
        for _ in range(n):
            pts = np.array([p["cx"], p["cy"]]) + p["r"] * rng.uniform(-1, 1, (3, 2))
            strands.append((pts.tolist(), float(rng.uniform(0.012, 0.028)), float(rng.uniform(0.6, 1.0))))
        p["strands"] = strands
        p["haze"] = float(rng.uniform(0.1, 0.4))
    return p


def _specks(rng: np.random.Generator, n: int, r: float, lo: float, hi: float) -> list[tuple[float, ...]]:
    """``n`` bright dots inside 0.55 r of the centre: (dx, dy, sigma, intensity)."""
    out = []
    for _ in range(n):
        rad, ang = 0.55 * r * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        out.append(
            (
                float(rad * np.cos(ang)),
                float(rad * np.sin(ang)),
                float(rng.uniform(0.02, 0.035)),
                float(rng.uniform(lo, hi)),
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ drawing
def _polar(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Elliptic polar coordinates (rho, phi) around the lesion centre, rotated by theta."""
    dx, dy = _U - p["cx"], _V - p["cy"]
    c, s = np.cos(p["theta"]), np.sin(p["theta"])
    x, y = c * dx + s * dy, -s * dx + c * dy
    x, y = x / (1 + p["ell"]), y * (1 + p["ell"])
    return np.hypot(x, y), np.arctan2(y, x)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _spike_map(rho: np.ndarray, phi: np.ndarray, r0: float, spikes: list) -> np.ndarray:
    """Tapered rays from radius ~r0 outwards: (angle, length, width) each."""
    out = np.zeros_like(rho)
    for ang, length, width in spikes:
        delta = np.angle(np.exp(1j * (phi - ang)))
        along, across = rho * np.cos(delta), rho * np.abs(np.sin(delta))
        frac = np.clip((along - 0.5 * r0) / (0.5 * r0 + length), 0.0, 1.0)
        taper = 1.0 - frac
        ray = np.exp(-((across / (width * taper + 1e-3)) ** 2)) * (along > 0) * (frac < 1.0)
        out = np.maximum(out, ray * np.sqrt(taper))
    return out


def _smooth_field(rng: np.random.Generator, cells: int) -> np.ndarray:
    """A smooth random field in [-1, 1]-ish: cells x cells Gaussian values, bilinearly upsampled."""
    return _upsample(rng.normal(0, 1, (cells, cells)))


def _upsample(grid: np.ndarray) -> np.ndarray:
    m = _interp_matrix(grid.shape[0])
    return m @ grid @ m.T


def _interp_matrix(cells: int) -> np.ndarray:
    pos = np.clip((np.arange(_N) + 0.5) / _N * cells - 0.5, 0, cells - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, cells - 1)
    w = pos - lo
    m = np.zeros((_N, cells))
    m[np.arange(_N), lo] += 1 - w
    m[np.arange(_N), hi] += w
    return m


def _blur_matrix(sigma: float) -> np.ndarray:
    """(N, N) Gaussian blur operator with reflected borders: blurred = B @ img @ B.T."""
    idx = np.arange(_N)
    rad = int(np.ceil(3 * sigma))
    b = np.zeros((_N, _N))
    for off in range(-rad, rad + 1):
        j = idx + off
        j = np.where(j < 0, -j - 1, j)
        j = np.where(j >= _N, 2 * _N - j - 1, j)
        np.add.at(b, (idx, j), np.exp(-0.5 * (off / sigma) ** 2))
    return b / b.sum(axis=1, keepdims=True)


def lesion_maps(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's density ``D`` (body, in [0, 1]) and its bright specks ``S`` at 64 px."""
    rho, phi = _polar(p)
    r, kind = p["r"], p["kind"]
    if kind == "solid":
        body = _sigmoid((r - rho) / p["edge"])
    elif kind in ("spiculated", "lobulated"):
        R = r * p["core"]
        if "lobes" in p:
            k, amp, ph = p["lobes"]
            R = R * (1 + amp * np.cos(k * phi + ph) + 0.4 * amp * np.cos((k + 1) * phi + 2 * ph))
        body = np.maximum(_sigmoid((R - rho) / p["edge"]), _spike_map(rho, phi, r * p["core"], p["spikes"]))
    elif kind == "ring":
        k, ph = p["wobble"]
        R = r * (1 + p["irregular"] * np.cos(k * phi + ph))
        rim = np.exp(-(((rho - R) / p["wall"]) ** 2))
        inside = _sigmoid((R - rho) / 0.02)
        grain = 0.4 + 0.6 * np.clip(_upsample(np.asarray(p["grain"])), 0, 1) if p["fill"] > 0.1 else 1.0
        halo = p["halo"] * np.exp(-(((rho - R) / (3 * p["wall"] + 0.05)) ** 2)) * (rho > R)
        body = np.clip(np.maximum(rim, p["fill"] * inside * grain) + halo, 0, 1)
    elif kind == "patchy":
        body = np.zeros_like(rho)
        for bx, by, s, a in p["blobs"]:
            body += a * np.exp(-((_U - bx) ** 2 + (_V - by) ** 2) / (2 * s * s))
        body = np.clip(body, 0, 1)
    elif kind == "streaky":
        t = np.linspace(0, 1, 24)[:, None]
        body = p["haze"] * np.exp(-((rho / r) ** 2))
        for pts, width, a in p["strands"]:
            (x0, y0), (x1, y1), (x2, y2) = pts
            bx = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * x1 + t**2 * x2
            by = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t**2 * y2
            d2 = np.min((_U.ravel()[None] - bx) ** 2 + (_V.ravel()[None] - by) ** 2, axis=0).reshape(_N, _N)
            body = np.maximum(body, a * np.exp(-d2 / (width * width)))
    else:  # pragma: no cover - CLASSES only names the kinds above
        raise ValueError(f"unknown lesion kind {kind!r}")
    specks = np.zeros_like(rho)
    for dx, dy, s, a in p["specks"]:
        specks = np.maximum(
            specks, a * np.exp(-((_U - p["cx"] - dx) ** 2 + (_V - p["cy"] - dy) ** 2) / (2 * s * s))
        )
    return body, specks


def _curve(rng: np.random.Generator, width: float) -> np.ndarray:
    """A thin curve across the whole image (a hair or a scratch): Gaussian profile of ``width``."""
    a = rng.uniform(0, np.pi)
    off = rng.uniform(-0.7, 0.7)
    bend = rng.uniform(-0.6, 0.6)
    along = np.cos(a) * _U + np.sin(a) * _V
    across = -np.sin(a) * _U + np.cos(a) * _V - off - bend * along**2
    return np.exp(-((across / width) ** 2))


def _downsample(img: np.ndarray) -> np.ndarray:
    shape = (IMAGE_SIZE, _SS, IMAGE_SIZE, _SS, *img.shape[2:])
    return img.reshape(shape).mean(axis=(1, 3))


def render_hi(rng: np.random.Generator, p: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """A crisp colour picture (32, 32, 3) uint8 of lesion ``p`` and the nuisances drawn for it."""
    body, specks = lesion_maps(p)
    skin = np.array([0.86, 0.68, 0.57]) + rng.normal(0, 0.045, 3)
    light = 1 + rng.normal(0, 0.07) * _U + rng.normal(0, 0.07) * _V + 0.035 * _smooth_field(rng, 6)
    img = skin[None, None] * light[..., None]
    tint = rng.random()
    if tint < 0.6:
        colour, colour_word = np.array([0.42, 0.26, 0.17]) * rng.uniform(0.55, 1.15), "brown"
    elif tint < 0.85:
        colour, colour_word = np.array([0.72, 0.36, 0.36]) * rng.uniform(0.8, 1.1), "pink"
    else:
        colour, colour_word = np.array([0.22, 0.17, 0.2]) * rng.uniform(0.7, 1.3), "dark"
    alpha = rng.uniform(0.55, 0.95) * body[..., None]
    img = img * (1 - alpha) + colour[None, None] * alpha
    white = np.array([0.96, 0.93, 0.9])
    img = img * (1 - specks[..., None]) + white * specks[..., None]
    nuis: dict[str, Any] = {"colour": colour_word, "hairs": 0, "bubbles": 0, "corners": False}
    if rng.random() < 0.35:
        nuis["hairs"] = int(rng.integers(1, 3))
        for _ in range(nuis["hairs"]):
            h = _curve(rng, rng.uniform(0.009, 0.016))[..., None] * rng.uniform(0.5, 0.9)
            img = img * (1 - h) + np.array([0.12, 0.08, 0.06]) * h
    if rng.random() < 0.25:
        nuis["bubbles"] = int(rng.integers(1, 4))
        for _ in range(nuis["bubbles"]):
            bx, by, br = rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9), rng.uniform(0.05, 0.14)
            ring = np.exp(-(((np.hypot(_U - bx, _V - by) - br) / 0.015) ** 2))
            img = img + 0.35 * ring[..., None]
    if rng.random() < 0.3:
        nuis["corners"] = True
        scope = _sigmoid((rng.uniform(1.0, 1.25) - np.hypot(_U, _V)) / 0.02)
        img = img * scope[..., None]
    img = _downsample(img) + rng.normal(0, 0.012, (IMAGE_SIZE, IMAGE_SIZE, 3))
    return _to_uint8(img), nuis


# How strongly the low end degrades a lesion: its contrast over the background, the weight of bright
# specks relative to the body, the Gaussian blur sigma (in 64 px drawing pixels) and the pixel noise sigma;
# each drawn uniformly per image from its range (the speck weight is fixed).
LO_LOOK: dict[str, Any] = {"contrast": (0.22, 0.42), "specks": 0.9, "blur": (1.1, 2.0), "noise": (0.02, 0.04)}


def render_lo(rng: np.random.Generator, p: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """A grey, blurred, noisy, low-contrast picture (32, 32) uint8 of lesion ``p`` and its nuisances."""
    body, specks = lesion_maps(p)
    img = rng.uniform(0.18, 0.4) + rng.normal(0, 0.06) * _U + rng.normal(0, 0.06) * _V
    img = img + 0.03 * _smooth_field(rng, 5)
    nuis: dict[str, Any] = {"bands": 0, "marker": False, "lines": False}
    if rng.random() < 0.6:
        nuis["bands"] = int(rng.integers(2, 5))
        bend = rng.uniform(-0.5, 0.5)
        for y0 in rng.uniform(-0.9, 0.9, nuis["bands"]):
            img = img + rng.uniform(0.03, 0.08) * np.exp(
                -(((_V - y0 - bend * _U**2) / rng.uniform(0.05, 0.1)) ** 2)
            )
    contrast = rng.uniform(*LO_LOOK["contrast"])
    img = img + contrast * (body + LO_LOOK["specks"] * specks)
    if rng.random() < 0.5:
        nuis["marker"] = True
        sx, sy = rng.choice([-1, 1], 2)
        box = (np.abs(_U - sx * 0.78) < 0.1) & (np.abs(_V - sy * 0.82) < 0.07)
        img = np.where(box, rng.uniform(0.6, 0.85), img)
    blur = _blur_matrix(rng.uniform(*LO_LOOK["blur"]))
    img = blur @ img @ blur.T
    if rng.random() < 0.3:
        nuis["lines"] = True
        img = img + 0.03 * np.cos(_V * np.pi * rng.uniform(9, 14))
    img = _downsample(img) + rng.normal(0, rng.uniform(*LO_LOOK["noise"]), (IMAGE_SIZE, IMAGE_SIZE))
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    return _to_uint8(img), nuis


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def draw(
    seed: int, stream: str, modality: str, split: str, index: int, label: int
) -> tuple[np.ndarray, dict]:
    """Image ``index`` of (stream, modality, split) with class ``label``: uint8 pixels and its attributes
    (the latent lesion parameters plus the nuisances drawn), a pure function of its arguments."""
    rng = rng_for(seed, stream, modality, split, index)
    p = sample_lesion(rng, label)
    img, nuis = (render_hi if modality == "hi" else render_lo)(rng, p)
    return img, {**p, **nuis, "modality": modality}


def fingerprint(seed: int) -> str:
    """12 hex digits of the SHA-256 of the first image of every split of world ``seed``: changes whenever
    the generator (or the numerics under it) draws different pixels, so a cache keyed by it is never stale."""
    digest = hashlib.sha256(f"v{GENERATOR_VERSION}-{seed}".encode())
    for modality in MODALITY_IDS:
        for split in ("train", "val", "test"):
            digest.update(draw(seed, "task", modality, split, 0, 0)[0].tobytes())
    return digest.hexdigest()[:12]


def split_labels(n: int) -> list[int]:
    """Balanced labels for a split of ``n`` images: 0, 1, ..., K-1, 0, 1, ... (counts differ by at most 1)."""
    return [i % len(CLASSES) for i in range(n)]


# ----------------------------------------------------------------------------------------------- captions
MODALITY_WORDS = {"hi": "crisp colour scan", "lo": "grey low-dose scan"}
_MODALITY_VARIANTS = {
    "hi": (("crisp colour scan", 0.6), ("colour scan", 0.25), ("crisp scan", 0.15)),
    "lo": (("grey low-dose scan", 0.6), ("low-dose scan", 0.25), ("grey scan", 0.15)),
}
NAMED = {"hi": 0.5, "lo": 0.5}  # share of captions that name a class, per modality
SWAPPED = 0.48  # share of named captions that name the partner class instead
NAME_ONLY = 0.1  # share of named captions that are only "a <modality> image of <name>."
_NOUNS = {"hi": ("lesion", "spot", "growth"), "lo": ("lesion", "opacity", "shadow", "spot")}


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


_OUTLINED = ("solid", "lobulated", "spiculated")  # kinds with an outline and a filled inside
_SHAPE_WORDS = {  # kind -> shape words (kinds with two sets: the first where the feature is marked)
    "solid": (("oval", "elongated"), ("round", "circular", "regular round")),
    "spiculated": (("spiky", "star-shaped", "radiating", "irregular"), ("bumpy", "spiky")),
    "lobulated": (("lobulated", "bumpy", "star-shaped"), ("lobulated", "bumpy", "lumpy", "wavy")),
    "ring": (("ring-shaped", "hollow", "ring-like"),),
    "patchy": (("patchy", "blotchy", "clustered"),),
    "streaky": (("streaky", "stringy", "web-like"),),
}
_NUISANCE_WORDS = {  # modality -> (attribute, words): nuisances mentioned with probability 0.6 each
    "lo": (("bands", "rib bands"), ("marker", "a letter marker"), ("lines", "scan lines")),
    "hi": (("hairs", "hairs"), ("bubbles", "bubbles"), ("corners", "dark corners")),
}


def visible_words(rng: np.random.Generator, a: dict[str, Any]) -> dict[str, str]:
    """Appearance phrases for what is visible in an image with attributes ``a`` (from :func:`draw`).

    Keys: size, shape, colour, margin, inner, extra (nuisances); a missing key means "not mentioned".
    Low-end images lose fine detail: specks and wall thickness are rarely visible, margins look blurry.
    Several synonyms per finding, as figure captions written by many authors have. The phrases are drawn
    from ``rng`` in the order of the keys above (size, shape, margin, inner, extra).
    """
    lo = a["modality"] == "lo"
    spikes = [s[1] for s in a.get("spikes", [])]
    long_spikes = bool(spikes) and float(np.mean(spikes)) > 0.3
    words = {
        "size": _size_words(rng, a["r"]),
        "shape": _shape_words(rng, a, long_spikes),
        "margin": _margin_words(rng, a, lo, long_spikes),
        "inner": _inner_words(rng, a, lo),
        "colour": None if lo else a["colour"],
        "extra": ", ".join(_nuisance_words(rng, a, lo)) or None,
    }
    return {key: value for key, value in words.items() if value is not None}


def _size_words(rng: np.random.Generator, r: float) -> str | None:
    if r < 0.3:
        return "small"
    if r > 0.4:
        return "large"
    return "medium" if rng.random() < 0.4 else None


def _shape_words(rng: np.random.Generator, a: dict[str, Any], long_spikes: bool) -> str:
    """The shape; solid, spiculated and lobulated lesions are worded by elongation, spike or lobe depth."""
    kind = a["kind"] if a["kind"] in _SHAPE_WORDS else "streaky"
    marked = {"solid": a.get("ell", 0) > 0.15, "spiculated": long_spikes}.get(kind)
    if kind == "lobulated":
        marked = a["lobes"][1] > 0.22
    options = _SHAPE_WORDS[kind]
    return _pick(rng, options[0] if marked or len(options) == 1 else options[1])


def _margin_words(rng: np.random.Generator, a: dict[str, Any], lo: bool, long_spikes: bool) -> str:
    """The outline (always blurry on the low end), then sometimes what the lobes or short spikes add."""
    kind = a["kind"]
    if lo:
        margin = _pick(rng, ("a blurry outline", "a soft outline", "a hazy outline", "blurred edges"))
    elif kind == "ring":
        margin = ("an uneven " if a["irregular"] > 0.08 else "a smooth ") + _pick(rng, ("wall", "rim"))
    elif kind == "spiculated" and long_spikes:
        margin = _pick(rng, ("a jagged edge", "radiating lines", "thin spikes", "radiating spikes"))
    elif kind in _OUTLINED:
        sharp = (
            _pick(rng, ("a sharp", "a crisp", "a well-defined", "a clean"))
            if a["edge"] < 0.025
            else _pick(rng, ("a fuzzy", "a soft", "a blurred"))
        )
        margin = f"{sharp} {_pick(rng, ('edge', 'border', 'outline'))}"
    else:
        margin = _pick(rng, ("no clear border", "an ill-defined border", "soft edges"))
    if kind == "lobulated" and rng.random() < 0.5:
        margin += " and " + _pick(rng, ("rounded lobes", "broad lobes", "smooth bulges", "a wavy edge"))
    elif kind == "spiculated" and not long_spikes and rng.random() < 0.5:
        margin += " and " + _pick(rng, ("short spikes", "small bumps"))
    return margin


def _inner_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> str | None:
    """What is inside the lesion, or None when nothing inside is visible."""
    kind = a["kind"]
    if kind in _OUTLINED:
        return _speck_words(rng, [s[3] for s in a.get("specks", [])], lo)
    if kind == "ring":
        return _ring_inside_words(rng, a, lo)
    if kind == "patchy":
        many = len(a["blobs"]) > 4
        return _pick(
            rng,
            ("several soft clumps", "scattered clumps", "a cluster of soft blotches")
            if many
            else ("a few clumps", "a few soft spots"),
        )
    inner = _pick(rng, ("thin strands", "fine lines", "thread-like lines", "thin curved streaks"))
    return inner + " and a faint haze" if a["haze"] > 0.2 else inner


def _speck_words(rng: np.random.Generator, specks: list[float], lo: bool) -> str | None:
    """The fill of an outlined lesion with specks of brightness ``specks`` (faint ones vanish on the low end)."""
    seen = [s for s in specks if s > (0.85 if lo else 0.45)]
    if lo and specks and not seen:
        return None  # too faint to see behind the blur: not mentioned
    if len(seen) >= 2:
        return _pick(rng, ("bright specks", "white dots", "popcorn specks", "bright dots inside"))
    if len(seen) == 1:
        return _pick(rng, ("a bright speck", "one white dot", "a brighter dot"))
    if specks:
        return _pick(rng, ("a faint speck", "a faint dot"))
    if lo:
        return _pick(rng, ("even fill", "even brightness"))
    return _pick(rng, ("uniform fill", "even colour", "plain inside", "solid even fill"))


def _ring_inside_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> str | None:
    """A ring's centre, wall thickness (thin walls vanish on the low end) and halo."""
    parts = []
    if a["fill"] < 0.15:
        parts.append(
            _pick(rng, ("a clear centre", "an empty centre", "a darker centre" if lo else "a clear middle"))
        )
    elif a["fill"] > 0.25:
        parts.append(_pick(rng, ("a grainy centre", "a murky centre", "a filled centre")))
    if a["wall"] > (0.085 if lo else 0.07):
        parts.append(_pick(rng, ("a thick wall", "a thick rim")))
    elif not lo and a["wall"] < 0.05:
        parts.append(_pick(rng, ("a thin wall", "a thin rim")))
    if a["halo"] > 0.15 and rng.random() < 0.6:
        parts.append("a soft halo")
    return " and ".join(parts) or None


def _nuisance_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> list[str]:
    """The nuisances mentioned: the low end's look, then each present nuisance with probability 0.6."""
    extras = [_pick(rng, ("faint", "hazy", "noisy", "low contrast", "on a grey background"))] if lo else []
    for key, words in _NUISANCE_WORDS["lo" if lo else "hi"]:
        if a[key] and rng.random() < 0.6:
            extras.append(words)
    return extras


# ------------------------------------------------------------------------------------------------ remarks
_REMARKS: dict[str, tuple[str, ...]] = {
    # what a figure caption adds after the finding, per (modality or kind) and condition; every phrase is
    # true of the images it is attached to (see :func:`remarks`)
    "any": (
        "the {noun} is seen in the middle of the image.",
        "it is {size} in size.",
        "the {noun} looks {shape} rather than {other}.",
        "it may look different in another scan.",
        "one {noun} only, near the centre.",
        "a {shape} or {shape2} {noun}.",
        "it can sometimes look {shape2}, but it is {shape}.",
        "at this size, some of them look {shape2}.",
        "as seen here, most of them are {shape}.",
        "it shows no more than one {noun}.",
    ),
    "hi": (
        "the {noun} lies on pink or tan skin.",
        "the skin around it is even and pale.",
        "the {noun} is {colour} on skin-coloured background.",
        "hairs or bubbles may cross the skin.",
        "the lesion is flat and its colour is darker than the skin.",
        "it looks like a {colour} patch on the skin.",
    ),
    "lo": (
        "fine detail is hidden by blur and noise.",
        "for a low-dose scan, the {noun} shows little detail.",
        "detail is lost in the noise, so it is easy to miss.",
        "the {noun} is brighter than the grey around it.",
        "its edge fades into the grey background.",
        "small detail is smeared and softened by blur.",
        "the {noun} is barely visible, almost lost in the noise.",
        "it is very faint and often too hazy to see well.",
        "the background is slightly brighter on one side.",
    ),
    "bands": ("rib bands cross it.", "it is crossed by rib bands.", "rib bands are nearby."),
    "solid": (
        "a disc of even fill throughout.",
        "a simple disc, uniformly filled.",
        "the body is evenly coloured.",
        "nothing inside it except even fill.",
        "the {noun} is not hollow.",
    ),
    "plain": (
        "no specks or dots are seen inside.",
        "without specks, lobes or spikes.",
        "nothing in its core.",
    ),
    "specks": (
        "specks near its centre, like popcorn.",
        "a speckled core.",
        "its inside is dotted and sprinkled with bright points.",
        "{count} bright specks in it.",
        "the fill is broken by bright specks.",
        "the core holds white dots.",
        "a tiny speck may show as a bright point.",
        "inner specks are seen in the middle.",
    ),
    "spiculated": (
        "thin rays pointing outwards from a dense core.",
        "spikes of different lengths and varying length, tapering out.",
        "its border sends out spikes reaching into the background.",
        "the edge breaks into thin spikes all around, like a star.",
        "many thin spikes around a solid body.",
    ),
    "lobulated": (
        "the edge bulges out into smooth lobes.",
        "it looks like a few joined round bumps, like a flower.",
        "deep lobes can make it look star-shaped.",
        "the border is made of rounded lobes rather than lines.",
        "its lobes are broad and smooth.",
    ),
    "ring": (
        "a rim enclosing a space.",
        "a round rim around the centre, not solid.",
    ),
    "thick": (
        "a thick-walled ring, rimmed by a rough wobbly wall.",
        "the wall is thicker than a thin rim.",
        "the wall is rough and of uneven thickness.",
    ),
    "thin": (
        "a thin-walled ring.",
        "a fine smooth rim of even thickness.",
        "the wall has the same thickness all around.",
        "a ring whose wall is of even width.",
    ),
    "filled": ("grainy debris in its centre.", "the centre is partly filled.", "murky fill inside the rim."),
    "clear": ("the centre is clear and empty, with nothing inside.", "the centre is nearly empty."),
    "halo": ("a halo outside the wall.", "a soft halo spreading outside."),
    "patchy": (
        "clumps grouped together in a small area.",
        "soft patches that merge into one patch.",
        "a group of clumps of different sizes, close together.",
        "{count} clumps spreading over an area.",
        "opacities of varying size clustered in a group.",
    ),
    "streaky": (
        "strands crossing each other in a tangle.",
        "threads forming a web pattern.",
        "long curved strands, thin like hairs.",
        "each strand is thin and curved.",
        "thin lines that curve and cross over each other.",
    ),
}
_COUNTS = ("two", "three", "four", "five", "six", "seven")
REMARKED = 0.6  # share of captions followed by one remark sentence


def remarks(a: dict[str, Any], w: dict[str, str]) -> list[str]:
    """The remark groups of :data:`_REMARKS` that are true of an image with attributes ``a`` and
    appearance words ``w`` (from :func:`visible_words`)."""
    lo, kind = a["modality"] == "lo", a["kind"]
    keys = ["any", "lo" if lo else "hi"]
    if lo and a["bands"]:
        keys.append("bands")
    if kind in ("solid", "lobulated", "spiculated"):
        keys.append(kind)
        keys.append("specks" if "speck" in w.get("inner", "") or "dot" in w.get("inner", "") else "plain")
    if kind == "ring":
        keys += ["ring", "thick" if a["wall"] > 0.07 else "thin", "filled" if a["fill"] > 0.25 else "clear"]
        if a["halo"] > 0.15:
            keys.append("halo")
    if kind in ("patchy", "streaky"):
        keys.append(kind)
    return keys


def _remark(rng: np.random.Generator, a: dict[str, Any], w: dict[str, str], noun: str) -> str:
    """One remark sentence about the image, drawn among those true of it (:func:`remarks`)."""
    keys = remarks(a, w)
    if a["kind"] in ("ring", "patchy", "streaky") or "specks" in keys:
        keys = [k for k in keys if k != "any" or rng.random() < 0.3]  # the telling remarks come more often
    phrase = _pick(rng, _REMARKS[_pick(rng, keys)])
    count = len(a.get("specks", [])) or len(a.get("blobs", [])) or 2
    shapes = _SHAPES[a["kind"]]
    others = [s for k, v in _SHAPES.items() if k != a["kind"] for s in v]
    return phrase.format(
        noun=noun,
        size=w.get("size", "medium"),
        shape=w["shape"],
        shape2=_pick(rng, shapes),
        other=_pick(rng, others),
        colour=w.get("colour", "grey"),
        count=_COUNTS[min(max(count, 2), 7) - 2],
    )


_SHAPES = {
    "solid": ("round", "oval", "circular"),
    "spiculated": ("spiky", "star-shaped", "radiating"),
    "lobulated": ("lobulated", "bumpy", "lumpy"),
    "ring": ("ring-shaped", "hollow", "ring-like"),
    "patchy": ("patchy", "blotchy", "clustered"),
    "streaky": ("streaky", "stringy", "web-like"),
}


def caption(rng: np.random.Generator, a: dict[str, Any], named: float | None = None) -> str:
    """A pretraining caption for an image with attributes ``a``, like a figure caption in a paper.

    Appearance words come from :func:`visible_words`, each dropped with probability 0.2. A class name is
    added to a fraction ``named`` (default :data:`NAMED` of the modality) of the captions; a fraction :data:`SWAPPED` of those name the
    partner class instead (so a name mostly tells the pair, only weakly the class: captions in the wild
    are noisy about diagnoses), and a fraction :data:`NAME_ONLY` of named captions are the bare
    "a <modality> image of <name>." with no appearance words.
    """
    mod = str(
        rng.choice(
            [v for v, _ in _MODALITY_VARIANTS[a["modality"]]],
            p=[q for _, q in _MODALITY_VARIANTS[a["modality"]]],
        )
    )
    seen = visible_words(rng, a)
    w = {k: v for k, v in seen.items() if k == "shape" or rng.random() > 0.2}
    noun = _pick(rng, _NOUNS[a["modality"]])
    desc = " ".join(x for x in (w.get("size"), w["shape"], w.get("colour"), noun) if x)
    details = [x for x in (w.get("margin"), w.get("inner")) if x]
    detail = " and ".join(details)
    art = "an" if desc[0] in "aeiou" else "a"
    style = int(rng.integers(4))
    if style == 0:
        text = f"{mod} of {art} {desc}" + (f" with {detail}" if detail else "")
    elif style == 1:
        text = f"a {mod} image of {art} {desc}" + (f" with {detail}" if detail else "")
    elif style == 2:
        text = f"{desc}" + (f", {detail}" if detail else "") + f", {mod}"
    else:
        text = f"{mod}: the {noun} is {w['shape']}" + (f" and has {detail}" if detail else "")
    if "extra" in w:
        text += f"; {w['extra']}"
    text += "."
    if rng.random() < REMARKED:
        text += " " + _remark(rng, a, seen, noun)
    if rng.random() < (NAMED[a["modality"]] if named is None else named):
        label = a["label"]
        if rng.random() < SWAPPED:
            label = CLASSES[label].partner
        name = CLASS_NAMES[label]
        if rng.random() < NAME_ONLY:
            return f"a {mod} image of {name}."
        form = int(rng.integers(3))
        text = (
            f"a {mod} image of {name}. {text}"
            if form == 0
            else (f"{text} {name}." if form == 1 else f"{text} likely {name}.")
        )
    return text


def corpus(
    seed: int, n: int, lo_fraction: float = 0.1, named_lo: float | None = None
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """A captioned pretraining corpus of ``n`` images drawn from the ``pretrain`` stream (disjoint from the
    task's splits by construction of the keys): RGB pixels (n, 32, 32, 3) uint8 (low-end grey repeated),
    captions, labels and a boolean low-end mask. Classes are uniform; a ``lo_fraction`` of images is low-end,
    and a ``named_lo`` share of the low-end captions names a class (default :data:`NAMED`).
    """
    plan = np.random.default_rng([int(seed), STREAMS["pretrain"], 99])
    labels = plan.integers(0, len(CLASSES), n)
    is_lo = plan.random(n) < lo_fraction
    pixels = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    captions = []
    for i in range(n):
        mod = "lo" if is_lo[i] else "hi"
        img, attrs = draw(seed, "pretrain", mod, "corpus", i, int(labels[i]))
        pixels[i] = img[..., None] if img.ndim == 2 else img
        named = named_lo if mod == "lo" else None
        captions.append(caption(np.random.default_rng([int(seed), STREAMS["pretrain"], 98, i]), attrs, named))
    return pixels, captions, labels, is_lo
