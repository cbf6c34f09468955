"""The phantom world's pictures: a lesion's latent parameters drawn as a high-end or a low-end image.

Drawn at :data:`SUPERSAMPLING` times the resolution on a [-1, 1] x [-1, 1] grid, box-downsampled to
:data:`IMAGE_SIZE` px and quantised to uint8 (``round(255 * clip(v, 0, 1))``). ``hi`` is a crisp colour picture
(skin-toned background, dark lesion, hairs, bubbles, dark scope corners); ``lo`` is grey, blurred, noisy and
low-contrast (the lesion a faint bright shadow over rib-like bands, with letter markers and scan lines).
Each renderer draws its nuisances from the image's generator after the lesion's parameters, in a fixed order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMAGE_SIZE = 32
SUPERSAMPLING = 2  # draw at 64 px, box-downsample to 32 px
_SS = SUPERSAMPLING
_N = IMAGE_SIZE * _SS
_PX = 2.0 / _N  # one fine pixel in the [-1, 1] coordinate frame

_c = (np.arange(_N) + 0.5) * _PX - 1.0
_V, _U = np.meshgrid(_c, _c, indexing="ij")  # _U: x (columns), _V: y (rows), both in [-1, 1]


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
