"""From a case's 8 labels to a drawable lesion and its two views (synthetic stand-in dataset).

Every label changes what the lesion looks like:
  DIAG  body colour, border irregularity and colour variegation
  PN    a dark mesh: regular (typical) or broken, uneven (atypical)
  STR   radial lines at the border: all around (regular) or a few in one sector (irregular)
  PIG   dark blotches: one central (regular) or several off-centre (irregular)
  RS    white scar-like patches and blue-grey peppering
  DaG   dots: even ring pattern (regular) or scattered, uneven sizes (irregular)
  BWV   a soft blue-white overlay
  VS    red vessels: branching (regular) or dotted and squiggly (irregular)
The dermoscopy view shows the structures sharply; the clinical view frames the lesion small,
off-centre and blurred with faint structures, so it carries less of the label signal.
"""

from __future__ import annotations

import numpy as np

from src.data.synthetic.render import RGB, Layer, Lesion, Shape, View

# Class index constants follow the class order of src/data/specs/derm7pt.yaml.
ABS, REG, IR = 0, 1, 2
TYP, ATP = 1, 2
PRS = 1

# DIAG classes BCC, NEV, MEL, MISC, SK: body colour, border irregularity, border softness.
_DIAG_LOOK: tuple[tuple[RGB, float, float], ...] = (
    ((205, 150, 150), 0.08, 0.10),  # BCC: pink, pearly, soft border
    ((150, 95, 60), 0.04, 0.06),  # NEV: medium brown, round
    ((75, 45, 40), 0.20, 0.02),  # MEL: dark, irregular, sharp
    ((150, 65, 90), 0.06, 0.08),  # MISC: red-purple
    ((180, 140, 85), 0.12, 0.04),  # SK: tan, lobulated
)
_MEL_SECOND: RGB = (40, 30, 45)
_DARK: RGB = (45, 28, 22)
_VESSEL: RGB = (185, 35, 45)


def _jitter(colour: RGB, rng: np.random.Generator, amount: int = 12) -> RGB:
    c = np.asarray(colour) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in c.clip(0, 255))  # type: ignore[return-value]


def _blob(rng: np.random.Generator, centre: np.ndarray, radius: float, wobble: float) -> np.ndarray:
    """Closed polygon around `centre` with a radius varying smoothly with angle."""
    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += wobble * rng.uniform(0.3, 1.0) / k * 2 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * r.clip(0.35, None)
    return np.stack([centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta)], axis=1)


def _mesh(rng: np.random.Generator, atypical: bool) -> list[Shape]:
    """Two families of parallel lines (a rhombic net); atypical nets are uneven and broken."""
    shapes = []
    base = rng.uniform(0, np.pi)
    for family in (0, 1):
        angle = base + family * np.pi / 2 + rng.normal(0, 0.1)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        if atypical:
            offsets = np.sort(rng.uniform(-1.1, 1.1, size=rng.integers(7, 12)))
        else:
            offsets = np.arange(-1.1, 1.1, 0.2) + rng.uniform(0, 0.2)
        for off in offsets:
            if atypical:
                # broken segments of varying thickness
                t = np.sort(rng.uniform(-1.2, 1.2, size=4))
                for a, b in ((t[0], t[1]), (t[2], t[3])):
                    pts = np.stack([normal * off + direction * a, normal * off + direction * b])
                    shapes.append(Shape("line", pts, width=rng.uniform(0.03, 0.08)))
            else:
                pts = np.stack([normal * off - direction * 1.2, normal * off + direction * 1.2])
                shapes.append(Shape("line", pts, width=0.03))
    return shapes


def _streaks(rng: np.random.Generator, irregular: bool) -> list[Shape]:
    if irregular:
        start = rng.uniform(0, 2 * np.pi)
        angles = start + rng.uniform(0, rng.uniform(1.2, 2.4), size=rng.integers(4, 9))
        lengths = rng.uniform(0.15, 0.5, size=angles.size)
    else:
        n = int(rng.integers(16, 25))
        angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
        lengths = np.full(n, 0.3)
    shapes = []
    for a, length in zip(angles, lengths):
        d = np.array([np.cos(a), np.sin(a)])
        pts = np.stack([d * 0.8, d * (0.9 + length)])
        shapes.append(Shape("line", pts, width=0.04))
    return shapes


def _pigment(rng: np.random.Generator, irregular: bool) -> list[Shape]:
    if not irregular:
        return [Shape("poly", _blob(rng, rng.normal(0, 0.05, 2), 0.45, 0.03))]
    shapes = []
    for _ in range(rng.integers(2, 5)):
        centre = rng.uniform(-0.6, 0.6, 2)
        shapes.append(Shape("poly", _blob(rng, centre, rng.uniform(0.15, 0.35), 0.3)))
    return shapes


def _dots(rng: np.random.Generator, irregular: bool) -> list[Shape]:
    if irregular:
        side = rng.uniform(0, 2 * np.pi)
        centre = 0.4 * np.array([np.cos(side), np.sin(side)])
        return [
            Shape("dots", centre + rng.normal(0, 0.3, (1, 2)), width=rng.uniform(0.03, 0.1))
            for _ in range(rng.integers(10, 22))
        ]
    pts = []
    for ring_r, n in ((0.35, 8), (0.65, 14)):
        theta = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
        pts.append(ring_r * np.stack([np.cos(theta), np.sin(theta)], axis=1))
    return [Shape("dots", np.concatenate(pts), width=0.05)]


def _regression(rng: np.random.Generator, raw: str) -> list[Layer]:
    layers = []
    if raw in ("white areas", "combinations"):
        patches = [
            Shape("poly", _blob(rng, rng.uniform(-0.5, 0.5, 2), rng.uniform(0.2, 0.35), 0.2))
            for _ in range(rng.integers(1, 3))
        ]
        layers.append(Layer((235, 228, 225), patches, alpha=0.85, blur=0.04))
    if raw in ("blue areas", "combinations"):
        pts = rng.uniform(-0.5, 0.5, 2) + rng.normal(0, 0.2, (40, 2))
        layers.append(Layer((110, 120, 150), [Shape("dots", pts, width=0.025)], alpha=0.9))
    return layers


def _vessels(rng: np.random.Generator, irregular: bool) -> list[Shape]:
    if irregular:
        shapes = [Shape("dots", rng.uniform(-0.7, 0.7, (30, 2)), width=0.035)]
        for _ in range(rng.integers(2, 5)):
            start = rng.uniform(-0.6, 0.6, 2)
            pts = start + np.cumsum(rng.normal(0, 0.08, (8, 2)), axis=0)
            shapes.append(Shape("line", pts, width=0.025))
        return shapes
    shapes = []

    def branch(p: np.ndarray, angle: float, length: float, depth: int) -> None:
        q = p + length * np.array([np.cos(angle), np.sin(angle)])
        shapes.append(Shape("line", np.stack([p, q]), width=0.015 * (depth + 1)))
        if depth > 0:
            for turn in (-0.5, 0.5):
                branch(q, angle + turn + rng.normal(0, 0.15), length * 0.65, depth - 1)

    for _ in range(rng.integers(1, 3)):
        start = rng.uniform(-0.4, 0.4, 2)
        branch(start, rng.uniform(0, 2 * np.pi), 0.35, 3)
    return shapes


def design_lesion(labels: tuple[int, ...], raw_rs: str, rng: np.random.Generator) -> Lesion:
    """The lesion of one case. `raw_rs` is the raw regression_structures value (kind of RS)."""
    diag, pn, st, pig, rs, dag, bwv, vs = labels
    body, wobble, softness = _DIAG_LOOK[diag]
    body = _jitter(body, rng)
    outline = _blob(rng, np.zeros(2), 1.0, wobble)
    outline[:, 1] *= rng.uniform(0.75, 1.0)
    layers: list[Layer] = []
    if diag == 2:  # melanoma: a second, darker colour region (coarse: visible in both views)
        second = _blob(rng, rng.uniform(-0.4, 0.4, 2), rng.uniform(0.35, 0.55), 0.25)
        layers.append(Layer(_MEL_SECOND, [Shape("poly", second)], blur=0.08, structure=False))
    if pig != ABS:
        layers.append(Layer(_DARK, _pigment(rng, pig == IR), alpha=0.75, blur=0.06))
    if pn != ABS:
        layers.append(Layer(_DARK, _mesh(rng, pn == ATP), alpha=0.9))
    if rs == PRS:
        layers.extend(_regression(rng, raw_rs))
    if dag != ABS:
        layers.append(Layer(_DARK, _dots(rng, dag == IR), alpha=0.95))
    if bwv == PRS:
        veil = _blob(rng, rng.uniform(-0.3, 0.3, 2), rng.uniform(0.45, 0.65), 0.15)
        layers.append(Layer((125, 150, 200), [Shape("poly", veil)], alpha=0.65, blur=0.12))
    if vs != ABS:
        layers.append(Layer(_VESSEL, _vessels(rng, vs == IR), alpha=0.9))
    if st != ABS:
        streak_colour: RGB = tuple(int(v * 0.7) for v in body)  # type: ignore[assignment]
        layers.append(Layer(streak_colour, _streaks(rng, st == IR), clip=False))
    skin = _jitter((222, 178, 155), rng, 20)
    return Lesion(skin, outline, body, softness, layers)


def frame_size(rng: np.random.Generator, long_side: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a photo: long side in `long_side`, 4:3, 3:2 or 5:4, mostly landscape."""
    long = int(rng.integers(long_side[0], long_side[1] + 1))
    short = round(long / rng.choice([4 / 3, 3 / 2, 5 / 4]))
    return (long, short) if rng.random() < 0.8 else (short, long)


def dermoscopy_view(rng: np.random.Generator, w: int, h: int) -> View:
    """Large, centred, sharp: the lesion fills a good part of the frame."""
    m = min(w, h)
    centre = (w / 2 + rng.normal(0, 0.04) * m, h / 2 + rng.normal(0, 0.04) * m)
    light = tuple(float(g) for g in rng.uniform(0.96, 1.03, 3))
    return View(
        w, h, centre, m * rng.uniform(0.26, 0.34), rng.uniform(0, 2 * np.pi), 1.0, 0.0, light
    )  # type: ignore[arg-type]


def clinical_view(rng: np.random.Generator, w: int, h: int) -> View:
    """Small, off-centre, blurred, with faint structures and a stronger colour cast."""
    m = min(w, h)
    centre = (w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65))
    light = tuple(float(g) for g in rng.uniform(0.9, 1.06, 3))
    return View(
        w,
        h,
        centre,
        m * rng.uniform(0.09, 0.14),
        rng.uniform(0, 2 * np.pi),
        structure=0.35,
        blur=m * 0.006,
        light=light,  # type: ignore[arg-type]
    )
