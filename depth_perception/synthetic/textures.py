"""Procedural materials evaluated at world-space texture coordinates.

Every texture is a pure function of the surface coordinates (s, t) in metres (see
``SceneBuilder.add_polygon``), the surface's parameters and its base albedo, so a surface point
keeps its colour from frame to frame and from any viewpoint: the textures are real multi-view
cues, not screen-space noise. All functions are vectorised over N points: s, t are (N,) float32,
params (4, N), albedo (3, N), and they return (3, N) float32 albedo in [0, 1]. Masks are
applied by arithmetic blending, which numpy runs far faster than masked assignment.

``params[0]`` is always a per-surface random variant in [0, 1) that offsets the noise so two
surfaces with the same material do not look identical; the other three are material specific
(documented per material below).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Material ids (uint8 in the surface table).
PLAIN = 0  # painted / plastic; p1: noise amplitude (0 -> 0.08)
WALLPAPER = 1  # vertical stripes; p1: stripe period (m)
WOOD = 2  # grain along s
FABRIC = 3  # woven cloth
TILES = 4  # square tiles / paving slabs; p1: tile size (m), p2: grout darkness (0..1)
PLANKS = 5  # wooden floor boards; p1: board width (m), p2: board length (m)
CARPET = 6
ASPHALT = 7  # road (s along the road, t = lateral offset); p1: edge-line offset, p2: lane width
GRASS = 8
FACADE = 9  # building wall with a window grid; p1: column spacing, p2: storey height, p3: window
BRICK = 10
FOLIAGE = 11
BARK = 12
METAL = 13
GLASS = 14  # car windows
SIGN = 15  # round traffic sign on its plate; p1: plate width, p2: plate height, p3: kind
TRAFFIC_LIGHT = 16  # housing with three lamps; p1: width, p2: height, p3: lit lamp 0..2
WINDOW = 17  # indoor window: frame + outside view; p1: width, p2: height
PICTURE = 18  # framed painting; p1: width, p2: height
BOOKS = 19  # bookshelf front; p1: shelf spacing
DOOR = 20  # panelled door; p1: width, p2: height
FENCE = 21  # vertical bars; p2: height
# Materials of the randomised domain (``randomized``); the default worlds never use them.
PHOTO = 22  # photograph tile (``photos``); p1: tile size (m), p2: tile index; albedo: its gain
FBM = 23  # fractal value noise between two colours; p1: wavelength (m), p2: contrast, p3: hue
VORONOI = 24  # cells with dark borders; p1: cell size (m), p2: border darkness, p3: variance
STRIPES = 25  # oriented stripes; p1: period (m), p2: angle (rad), p3: duty (> 1: smooth wave)
DEAD_LEAVES = 26  # occluding discs of several sizes; p1: largest disc cell (m), p3: colourfulness
NUM_MATERIALS = 27

_TWO_PI = np.float32(2.0 * np.pi)


def _mix32(h: np.ndarray) -> np.ndarray:
    """Integer avalanche (uint32 in, uint32 out); deterministic on every platform."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


# 256 x 256 lattice of random values; lookups are cheaper than hashing per pixel. Built from an
# integer hash (not a numpy Generator) so it is bit-identical across numpy versions.
_TABLE = (
    _mix32(np.arange(65536, dtype=np.uint32) + np.uint32(0x9E3779B9)) >> np.uint32(8)
).astype(np.float32) * np.float32(1.0 / 16777216.0)


def cell_hash(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Random value in [0, 1) per integer lattice cell (ix, iy), intp arrays."""
    return np.take(_TABLE, ((iy & 255) << 8) | (ix & 255))


# The four corners of every lattice cell packed into one complex128 (4 x float32), so value
# noise needs one gather per point instead of four.
_IDX = np.arange(65536)
_QUAD = (
    np.stack(
        [
            _TABLE,
            _TABLE[(_IDX & 0xFF00) | ((_IDX + 1) & 255)],
            _TABLE[((_IDX + 256) & 0xFF00) | (_IDX & 255)],
            _TABLE[((_IDX + 256) & 0xFF00) | ((_IDX + 1) & 255)],
        ],
        axis=1,
    )
    .astype(np.float32)
    .view(np.complex128)
    .ravel()
)


def vnoise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth 2D value noise in [0, 1] with unit lattice spacing (float32 in and out)."""
    fx = np.floor(x)
    fy = np.floor(y)
    tx = x - fx
    ty = y - fy
    tx = tx * tx * (3.0 - 2.0 * tx)
    ty = ty * ty * (3.0 - 2.0 * ty)
    cell = (fx.astype(np.intp) & 255) | ((fy.astype(np.intp) & 255) << 8)
    q = np.take(_QUAD, cell).view(np.float32).reshape(-1, 4)
    a, b, c, d = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    ab = a + (b - a) * tx
    cd = c + (d - c) * tx
    return ab + (cd - ab) * ty


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _f(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32)


def _blend(out: np.ndarray, mask: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """``out`` (3, n) with the columns where ``mask`` holds replaced by ``value``.

    Arithmetic blending: much faster than masked assignment for scattered masks.
    """
    return out + (value - out) * _f(mask)


def _rgb(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)[:, None]


def _offset(prm: np.ndarray) -> np.ndarray:
    return prm[0] * np.float32(97.0)


def tex_plain(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    amp = prm[1] + np.float32(0.08) * _f(prm[1] <= 0)
    f = 0.93 + amp * (vnoise(s * 1.3 + off, t * 1.3) - 0.5) + 0.05 * vnoise(s * 9.0, t * 9.0 + off)
    return alb * f


def tex_wallpaper(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    period = np.maximum(prm[1], np.float32(0.05))
    ph = _frac(s / period)
    stripe = 1.0 - 0.14 * _f(ph >= 0.5)
    fine = 0.04 * np.sin(_TWO_PI * (ph * 2.0 + t * 6.0))
    f = stripe * (0.95 + 0.05 * vnoise(s * 2.0, t * 2.0 + _offset(prm))) + fine
    return alb * f


def tex_wood(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    warp = vnoise(s * 0.7 + off, t * 2.5)
    grain = np.sin(_TWO_PI * (t * 9.0 + 1.8 * warp))
    f = 0.82 + 0.09 * grain + 0.12 * vnoise(s * 3.0, t * 25.0 + off)
    return alb * f


def tex_fabric(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    weave = np.sin(_TWO_PI * 28.0 * s) * np.sin(_TWO_PI * 28.0 * t)
    f = 0.84 + 0.14 * vnoise(s * 2.5 + off, t * 2.5) + 0.06 * weave
    return alb * f


def tex_tiles(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    size = np.maximum(prm[1], np.float32(0.05))
    a = s / size
    b = t / size
    fa = np.floor(a)
    fb = np.floor(b)
    ra = a - fa
    rb = b - fb
    edge = np.minimum(np.minimum(ra, 1.0 - ra), np.minimum(rb, 1.0 - rb)) * size
    tile = 0.86 + 0.16 * cell_hash(fa.astype(np.intp), fb.astype(np.intp) + 7)
    f = tile * (0.95 + 0.07 * vnoise(s * 7.0 + _offset(prm), t * 7.0))
    grout = np.clip(prm[2], 0.0, 1.0) * 0.5 * _f(edge < 0.006)
    return alb * (f * (1.0 - grout))


def tex_planks(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    width = np.maximum(prm[1], np.float32(0.05))
    length = np.maximum(prm[2], np.float32(0.3))
    b = t / width
    row = np.floor(b)
    irow = row.astype(np.intp)
    a = s / length + cell_hash(irow, irow * 3 + 11)
    col = np.floor(a)
    plank = 0.78 + 0.3 * cell_hash(col.astype(np.intp), irow)
    seam = ((b - row) < 0.05) | ((a - col) * length < 0.006)
    grain = np.sin(_TWO_PI * (t * 30.0 + 2.0 * vnoise(s * 0.8 + _offset(prm), t * 8.0)))
    f = plank * (0.93 + 0.06 * grain) * (1.0 - 0.45 * _f(seam))
    return alb * f


def tex_carpet(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    f = 0.78 + 0.16 * vnoise(s * 25.0, t * 25.0 + off) + 0.1 * vnoise(s * 1.5 + off, t * 1.5)
    return alb * f


def tex_asphalt(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    f = (
        0.74
        + 0.16 * vnoise(s * 0.35 + off, t * 0.35)
        + 0.12 * vnoise(s * 11.0, t * 11.0)
        + 0.05 * vnoise(s * 40.0, t * 40.0)
    )
    at = np.abs(t)
    edge = prm[1]
    lane = prm[2]
    dash = _frac(s / 9.0) < 0.42
    centre = (at < 0.07) & dash
    # dashed divider between two lanes of the same direction, only where the road is wide
    divider = (np.abs(at - lane) < 0.06) & dash & (edge > lane + 1.5)
    edge_line = np.abs(at - edge) < 0.07
    mark = centre | divider | edge_line
    return _blend(alb * f, mark, np.float32(0.82) * (0.92 + 0.08 * f))


def tex_grass(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    g1 = vnoise(s * 1.2 + off, t * 1.2)
    g2 = vnoise(s * 13.0, t * 13.0 + off)
    col = alb * (0.6 + 0.3 * g1 + 0.25 * g2)
    # dry patches: shift towards yellow where the low-frequency noise is high
    dry = np.clip((g1 - 0.6) * 2.0, 0.0, 1.0)
    return col + dry * (col * _rgb(1.25, 1.05, 0.55) - col)


def tex_facade(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    spacing = np.maximum(prm[1], np.float32(1.0))
    storey = np.maximum(prm[2], np.float32(2.0))
    wfrac = np.clip(prm[3], 0.2, 0.8)
    a = s / spacing
    b = t / storey
    col_i = np.floor(a)
    row_i = np.floor(b)
    fa = a - col_i
    fb = b - row_i
    wall = 0.88 + 0.1 * vnoise(s * 0.4 + off, t * 0.4) + 0.06 * vnoise(s * 6.0, t * 6.0)
    ground = row_i < 1.0
    gf = _f(ground)
    half = wfrac * 0.5 + (0.42 - wfrac * 0.5) * gf
    in_col = np.abs(fa - 0.5) < half
    upper_row = (fb > 0.3) & (fb < 0.82)
    ground_row = (fb > 0.05) & (fb < 0.72)
    win = in_col & ((ground & ground_row) | (~ground & upper_row))
    sill = (~win) & in_col & (np.abs(fb - 0.28) < 0.025) & ~ground
    wall = wall * (1.0 - 0.3 * _f(sill))
    lum = 0.35 + 0.9 * cell_hash(col_i.astype(np.intp) + 17, row_i.astype(np.intp))
    return _blend(alb * wall, win, _rgb(0.16, 0.2, 0.25) * lum)


def tex_brick(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    b = t / 0.075
    row = np.floor(b)
    irow = row.astype(np.intp)
    a = s / 0.23 + 0.5 * (irow & 1)
    col = np.floor(a)
    brick = 0.8 + 0.3 * cell_hash(col.astype(np.intp), irow + 5)
    mortar = ((b - row) < 0.13) | ((a - col) < 0.043)
    f = brick * (0.92 + 0.08 * vnoise(s * 20.0 + _offset(prm), t * 20.0))
    return _blend(alb * f, mortar, np.float32(0.72))


def tex_foliage(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    f1 = vnoise(s * 2.2 + off, t * 2.2)
    f2 = vnoise(s * 9.0, t * 9.0 + off)
    col = alb * (0.35 + 0.45 * f1 + 0.45 * f2)
    light = np.clip(f1 + f2 - 1.1, 0.0, 1.0) * 0.5
    return col + light * (_rgb(0.55, 0.65, 0.2) - col)


def tex_bark(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    return alb * (0.7 + 0.35 * vnoise(s * 14.0 + _offset(prm), t * 1.6))


def tex_metal(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    return alb * (0.9 + 0.12 * vnoise(s * 3.0 + _offset(prm), t * 0.5))


def tex_glass(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    # sky reflection: brighter streaks that depend on the surface position only
    return alb * (0.7 + 0.5 * vnoise(s * 0.6 + _offset(prm), t * 0.6) ** 2)


def tex_sign(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    half_w = np.maximum(prm[1] * 0.5, np.float32(0.05))
    half_h = np.maximum(prm[2] * 0.5, np.float32(0.05))
    du = (s - half_w) / half_w
    dv = (t - half_h) / half_w
    r = np.sqrt(du * du + dv * dv)
    prohibit = prm[3] < 0.5  # red ring on white; else a blue disc
    out = _blend(np.full((3, len(s)), 0.55, dtype=np.float32), r < 0.95, alb)
    out = _blend(out, (r < 0.68) & prohibit, np.float32(0.92))
    bar = (r < 0.68) & (np.abs(dv) < 0.14) & (np.abs(du) < 0.5)
    return _blend(out, bar, 0.95 - 0.87 * _f(prohibit))


def tex_traffic_light(
    s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray
) -> np.ndarray:
    width = np.maximum(prm[1], np.float32(0.1))
    height = np.maximum(prm[2], np.float32(0.3))
    lit = np.rint(prm[3])
    out = alb * (0.9 + 0.1 * vnoise(s * 10.0, t * 10.0))
    colours = ((1.0, 0.12, 0.08), (1.0, 0.75, 0.1), (0.15, 1.0, 0.35))
    du = s - width * 0.5
    for k in range(3):
        # lamps top to bottom: red, amber, green; the unlit ones glow faintly
        dv = t - height * (0.8 - 0.3 * k)
        lamp = du * du + dv * dv < (0.32 * width) ** 2
        bright = 0.18 + 0.82 * _f(lit == k)
        out = _blend(out, lamp, _rgb(*colours[k]) * bright)
    return out


def tex_window(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    width = np.maximum(prm[1], np.float32(0.2))
    height = np.maximum(prm[2], np.float32(0.2))
    frame = (
        (s < 0.06)
        | (s > width - 0.06)
        | (t < 0.06)
        | (t > height - 0.06)
        | (np.abs(s - width * 0.5) < 0.03)
        | (np.abs(t - height * 0.62) < 0.03)
    )
    h = np.clip(t / height, 0.0, 1.0)
    canopy = vnoise(s * 4.0 + _offset(prm), t * 4.0)
    mix = np.clip((h - 0.25 - 0.25 * canopy) * 4.0, 0.0, 1.0)
    trees = _rgb(0.3, 0.45, 0.2) * (0.7 + 0.5 * canopy)
    out = trees + (_rgb(0.78, 0.88, 0.98) - trees) * mix
    return _blend(out, frame, alb)


def tex_picture(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    width = np.maximum(prm[1], np.float32(0.1))
    height = np.maximum(prm[2], np.float32(0.1))
    off = _offset(prm)
    frame = (s < 0.04) | (s > width - 0.04) | (t < 0.04) | (t > height - 0.04)
    out = np.stack(
        [
            vnoise(s * 3.0 + off, t * 3.0),
            vnoise(s * 3.0 + off + 17.0, t * 3.0 + 5.0),
            vnoise(s * 3.0 + off + 31.0, t * 3.0 + 11.0),
        ]
    )
    return _blend(0.12 + 0.85 * out * out, frame, alb)


def tex_books(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    spacing = np.maximum(prm[1], np.float32(0.2))
    b = t / spacing
    row = np.floor(b)
    irow = row.astype(np.intp)
    fb = b - row
    a = s / 0.045 + cell_hash(irow, irow + 3) * 7.0
    book = np.floor(a).astype(np.intp)
    hue = np.stack(
        [cell_hash(book, irow), cell_hash(book + 101, irow), cell_hash(book + 57, irow + 9)]
    )
    top = 0.55 + 0.35 * cell_hash(book + 13, irow + 1)
    gap = (fb > top) | (cell_hash(book + 29, irow) < 0.08)
    out = _blend(0.12 + 0.65 * hue, gap, np.float32(0.1))
    return _blend(out, fb < 0.07, alb)


def tex_door(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    width = np.maximum(prm[1], np.float32(0.3))
    height = np.maximum(prm[2], np.float32(1.0))
    out = tex_wood(s, t * 0.2, prm, alb)
    groove = (
        (
            (np.abs(s - 0.12) < 0.012)
            | (np.abs(s - (width - 0.12)) < 0.012)
            | (np.abs(t - 0.12) < 0.012)
            | (np.abs(t - (height - 0.12)) < 0.012)
            | (np.abs(t - height * 0.5) < 0.012)
        )
        & (s > 0.1)
        & (s < width - 0.1)
        & (t > 0.1)
        & (t < height - 0.1)
    )
    out = out * (1.0 - 0.35 * _f(groove))
    du = s - (width - 0.09)
    dv = t - 1.0
    return _blend(out, du * du + dv * dv < 0.03**2, _rgb(0.75, 0.72, 0.62))


def tex_fence(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    height = np.maximum(prm[2], np.float32(0.3))
    bar = (_frac(s / 0.14) < 0.35) | (t < 0.06) | (t > height - 0.06)
    # between the bars: a dark, blurred backdrop (the fence is modelled as an opaque panel)
    back = (0.15 + 0.12 * vnoise(s * 2.0 + _offset(prm), t * 2.0)) * _rgb(0.8, 0.95, 0.7)
    return _blend(back, bar, alb)


def _second_colour(alb: np.ndarray, hue: np.ndarray) -> np.ndarray:
    """A second colour of a two-colour pattern: the albedo's channels rotated and rescaled."""
    rot = np.stack([alb[1], alb[2], alb[0]])
    return np.clip(rot * (0.5 + hue) + 0.1 * (hue - 0.5), 0.0, 1.0)


def tex_photo(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    from depth_perception.synthetic.photos import photo_bank

    bank = photo_bank()
    size = bank.size
    scale = np.float32(size) / np.maximum(prm[1], np.float32(0.05))
    tile = np.clip(prm[2].astype(np.intp), 0, bank.count - 1)
    off = _offset(prm) * np.float32(size)
    # mirrored repeat: seamless tiling of crops that are not periodic themselves
    ix = (s * scale + off).astype(np.intp) % (2 * size)
    iy = (off * np.float32(0.37) - t * scale).astype(np.intp) % (2 * size)
    ix = np.minimum(ix, 2 * size - 1 - ix)
    iy = np.minimum(iy, 2 * size - 1 - iy)
    texel = np.take(bank.packed, (tile * size + iy) * size + ix).view(np.uint8).reshape(-1, 4)
    rgb = texel[:, :3].T.astype(np.float32)
    # albedo = the tile's mean colour times a colour shift; dividing by the mean keeps that
    # shift and makes ``filter_detail`` fade to the right colour
    gain = alb / np.take(bank.means, tile, axis=1)
    return rgb * (gain * np.float32(1.0 / 255.0))


def tex_fbm(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    off = _offset(prm)
    freq = np.float32(1.0) / np.maximum(prm[1], np.float32(0.02))
    a = s * freq + off
    b = t * freq
    f = vnoise(a, b) * 0.533 + vnoise(a * 2.03 + 5.1, b * 2.03) * 0.267
    f += vnoise(a * 4.1 + 9.7, b * 4.1) * 0.133 + vnoise(a * 8.3, b * 8.3 + 3.3) * 0.067
    contrast = np.clip(prm[2], 0.0, 1.0)
    m = np.clip((f - 0.5) * (1.0 + 5.0 * contrast) + 0.5, 0.0, 1.0)
    return alb + (_second_colour(alb, prm[3]) - alb) * m


def tex_voronoi(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    size = np.maximum(prm[1], np.float32(0.02))
    a = s / size + _offset(prm)
    b = t / size
    fa = np.floor(a)
    fb = np.floor(b)
    ia = fa.astype(np.intp)
    ib = fb.astype(np.intp)
    ra = a - fa
    rb = b - fb
    d1 = np.full(len(s), 9.0, dtype=np.float32)
    d2 = np.full(len(s), 9.0, dtype=np.float32)
    best = np.zeros(len(s), dtype=np.float32)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx = ia + dx
            cy = ib + dy
            h = cell_hash(cx, cy)
            px = np.float32(dx) + cell_hash(cx + 71, cy + 29) - ra
            py = np.float32(dy) + h - rb
            d = px * px + py * py
            closer = d < d1
            d2 = np.where(closer, d1, np.minimum(d2, d))
            d1 = np.where(closer, d, d1)
            best = np.where(closer, h, best)
    var = np.clip(prm[3], 0.0, 1.0)
    cell = 1.0 + var * (best - 0.5) * 1.6
    col = alb * cell + (_second_colour(alb, best) - alb) * (var * best * 0.6)
    border = np.clip((np.sqrt(d2) - np.sqrt(d1)) * 8.0, 0.0, 1.0)
    return col * (1.0 - np.clip(prm[2], 0.0, 1.0) * (1.0 - border))


def tex_stripes(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    period = np.maximum(prm[1], np.float32(0.01))
    u = (s * np.cos(prm[2]) + t * np.sin(prm[2])) / period + _offset(prm)
    duty = prm[3]
    smooth = _f(duty > 1.0)
    square = _f(_frac(u) < np.clip(duty, 0.05, 0.95))
    wave = 0.5 + 0.5 * np.sin(_TWO_PI * u)
    m = square + (wave - square) * smooth
    return alb + (_second_colour(alb, _frac(prm[0] * 7.0)) - alb) * m


def tex_dead_leaves(s: np.ndarray, t: np.ndarray, prm: np.ndarray, alb: np.ndarray) -> np.ndarray:
    size = np.maximum(prm[1], np.float32(0.02))
    off = _offset(prm)
    colourful = np.clip(prm[3], 0.0, 1.0)
    out = alb * (0.75 + 0.25 * vnoise(s / size + off, t / size))
    # coarse to fine layers of discs, each disc inside its own lattice cell (no neighbour
    # search); later (finer) layers occlude earlier ones, as leaves falling on top
    for k in range(4):
        cell = size * np.float32(0.55**k)
        a = s / cell + off + np.float32(0.37 * k)
        b = t / cell + np.float32(0.61 * k)
        ia = np.floor(a).astype(np.intp)
        ib = np.floor(b).astype(np.intp)
        h1 = cell_hash(ia + 13 * k, ib)
        h2 = cell_hash(ia, ib + 31 * k + 7)
        h3 = cell_hash(ia + 5, ib + 11 * k + 3)
        r = 0.22 + 0.26 * h1
        cxp = ia + 0.5 + (h2 - 0.5) * (1.0 - 2.0 * r)
        cyp = ib + 0.5 + (h3 - 0.5) * (1.0 - 2.0 * r)
        inside = (a - cxp) ** 2 + (b - cyp) ** 2 < r * r
        lum = 0.35 + 1.3 * h2
        tint = np.stack([h1, h3, cell_hash(ia + 17, ib + 19)])
        leaf = alb * lum + (tint - alb * lum) * colourful
        out = _blend(out, inside, leaf)
    return np.clip(out, 0.0, 1.0)


TEXTURES: tuple[Callable[..., np.ndarray], ...] = (
    tex_plain,
    tex_wallpaper,
    tex_wood,
    tex_fabric,
    tex_tiles,
    tex_planks,
    tex_carpet,
    tex_asphalt,
    tex_grass,
    tex_facade,
    tex_brick,
    tex_foliage,
    tex_bark,
    tex_metal,
    tex_glass,
    tex_sign,
    tex_traffic_light,
    tex_window,
    tex_picture,
    tex_books,
    tex_door,
    tex_fence,
    tex_photo,
    tex_fbm,
    tex_voronoi,
    tex_stripes,
    tex_dead_leaves,
)
if len(TEXTURES) != NUM_MATERIALS:  # pragma: no cover - guards edits of the table above
    raise RuntimeError("TEXTURES must list one function per material id")


def apply_textures(
    material: np.ndarray, s: np.ndarray, t: np.ndarray, params: np.ndarray, albedo: np.ndarray
) -> np.ndarray:
    """Evaluate every point's own material.

    Args:
        material: (N,) uint8 material ids.
        s, t: (N,) float32 texture coordinates (m).
        params: (4, N) float32 material parameters.
        albedo: (3, N) float32 base albedo.

    Returns:
        (3, N) float32 textured albedo.
    """
    counts = np.bincount(material, minlength=NUM_MATERIALS)
    present = np.flatnonzero(counts)
    if len(present) == 1:
        return TEXTURES[present[0]](s, t, params, albedo)
    out = np.empty((3, len(material)), dtype=np.float32)
    for m in present:
        idx = np.flatnonzero(material == m)
        res = TEXTURES[m](
            np.take(s, idx), np.take(t, idx), np.take(params, idx, axis=1),
            np.take(albedo, idx, axis=1),
        )  # fmt: skip
        for c in range(3):
            out[c][idx] = res[c]
    return out


# Level of detail. Per material: the size (m) of its finest pattern, or, where it depends on
# params[1] (tile size, board width, stripe period), the factor applied to params[1]; and the
# mean of the pattern relative to the albedo (what a blurred view of it averages to).
_DETAIL_SIZE = np.zeros(NUM_MATERIALS, dtype=np.float32)
_DETAIL_PARAM = np.zeros(NUM_MATERIALS, dtype=np.float32)
_DETAIL_MEAN = np.ones(NUM_MATERIALS, dtype=np.float32)
for _m, _size, _param, _mean in (
    (PLAIN, 0.15, 0.0, 0.93),
    (WALLPAPER, 0.0, 0.5, 0.88),
    (WOOD, 0.08, 0.0, 0.88),
    (FABRIC, 0.04, 0.0, 0.91),
    (TILES, 0.0, 0.3, 0.92),
    (PLANKS, 0.0, 0.5, 0.85),
    (CARPET, 0.05, 0.0, 0.91),
    (GRASS, 0.1, 0.0, 0.78),
    (FACADE, 0.3, 0.0, 0.8),
    (BRICK, 0.075, 0.0, 0.86),
    (FOLIAGE, 0.12, 0.0, 0.8),
    (BARK, 0.07, 0.0, 0.87),
    (METAL, 0.3, 0.0, 0.96),
    (GLASS, 1.0, 0.0, 0.85),
    (BOOKS, 0.045, 0.0, 0.6),
    (FENCE, 0.14, 0.0, 0.7),
    # randomised-domain materials: detail relative to their size parameter
    (PHOTO, 0.0, 4.0 / 128.0, 1.0),
    (FBM, 0.0, 0.125, 1.0),
    (VORONOI, 0.0, 0.3, 1.0),
    (STRIPES, 0.0, 0.5, 1.0),
    (DEAD_LEAVES, 0.0, 0.1, 1.0),
):
    _DETAIL_SIZE[_m], _DETAIL_PARAM[_m], _DETAIL_MEAN[_m] = _size, _param, _mean


def filter_detail(
    col: np.ndarray,
    albedo: np.ndarray,
    material: np.ndarray | int,
    params: np.ndarray,
    footprint: np.ndarray,
) -> np.ndarray:
    """Fade textures towards their mean colour where a pixel covers more than their detail.

    A cheap stand-in for mip-mapping: without it, fine periodic patterns (bricks, grout, weave)
    alias into moire that shimmers from frame to frame. Materials with no entry (asphalt with
    its lane markings, signs, windows, pictures, doors) keep their detail.

    Args:
        col: (3, n) textured albedo.
        albedo: (3, n) base albedo.
        material: material id of all points, or (n,) ids.
        params: (4, n) material parameters.
        footprint: (n,) surface length covered by one pixel (m).
    """
    size = np.take(_DETAIL_SIZE, material)
    factor = np.take(_DETAIL_PARAM, material)
    mean = np.take(_DETAIL_MEAN, material)
    if np.ndim(material) == 0:
        if size == 0 and factor == 0:
            return col
        size = size + factor * params[1]
    else:
        size = size + factor * params[1]
        size = np.where(size > 0, size, np.float32(np.inf))
    fade = np.clip(footprint / size - 0.5, 0.0, 1.0)
    return col + (albedo * mean - col) * fade
