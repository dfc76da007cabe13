"""SegLab's procedural street world: pictures with exact labels and exact depth.

Every offline SegLab model is trained on these scenes, so they are built to need what real street
scenes need: colour alone never gives the class (a grey road under a grey building under an
overcast grey sky happens), things shrink with distance, near things hide far things, and the
sun, shadows, texture, haze, sensor noise and a slight blur are all there. The layout stays
consistent (sky on top, road in the middle, sidewalks and buildings along the sides) so that a
small FCN learns it in minutes.

Camera model. A pinhole camera stands ``camera_height`` metres above a flat ground plane and
looks down the street along +Z. A world point (X to the right, Y up, Z forward) lands on pixel

    x = vp_x + focal * X / Z,        y = horizon + focal * (camera_height - Y) / Z

so the ground (Y = 0) seen in image row y lies at depth Z = camera_height * focal / (y - horizon):
rows nearer the horizon are farther away, and every size in pixels scales as 1 / Z. The street
ends at a distant backdrop (a skyline or a tree line), so no ground is farther than the backdrop.

Depth convention. ``depth`` is that Z coordinate in metres (what a depth camera reports): per
pixel on the ground and on building walls; the Z of the foot point for things standing on the
ground (cars, people, poles, trees, constant over their body); ``SKY_DEPTH`` = 1000 m for the sky,
farther than anything else in the world.

Everything random is drawn from ``np.random.default_rng(seed)`` and only IEEE-exact arithmetic
touches pixel arrays, so a seed gives the same scene on any machine. The world is sampled in
metres and fractions of the image, independently of the resolution: ``scene(s, height=128)``
shows the same street as ``scene(s, height=256)``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

CLASSES = ("sky", "building", "road", "sidewalk", "vegetation", "pole", "car", "person")
PALETTE = np.array(
    [
        (70, 130, 180),  # sky
        (70, 70, 70),  # building
        (128, 64, 128),  # road
        (244, 35, 232),  # sidewalk
        (107, 142, 35),  # vegetation
        (220, 220, 0),  # pole (poles and traffic signs: the thin class)
        (0, 0, 142),  # car
        (220, 20, 60),  # person
    ],
    dtype=np.uint8,
)
SKY_DEPTH = 1000.0  # metres; the backdrop that ends the street is never beyond 400 m

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, POLE, CAR, PERSON = range(len(CLASSES))

_EVAL_OFFSET = 1_000_000
_NEAR = 1.0  # metres: things closer to the camera than this are not drawn
_NOISE_SIZE = 64  # side of the random tables that all textures are looked up in
_TOWARDS_CAMERA = np.array([0.0, 0.0, -1.0])  # outward normal of a surface facing the camera
_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered street scene (compare fields with ``np.array_equal``, not ``==``)."""

    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int64, index into CLASSES
    depth: np.ndarray  # (H, W) float32 metres
    seed: int


@dataclass(frozen=True, eq=False)
class Clip:
    """A short drive down one street: the camera moves forward and the cars move along the road."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    labels: np.ndarray  # (T, H, W) int64
    depth: np.ndarray  # (T, H, W) float32 metres
    objects: np.ndarray  # (T, H, W) int64 instance ids: 0 background, 1..K cars and people
    seed: int


def train_seed(i: int) -> int:
    """Seed of the i-th training scene; disjoint from every ``eval_seed``.

    Args:
        i: index of the scene, 0 <= i < 1_000_000.

    Example:
        >>> scene(train_seed(0)).seed
        0
    """
    if not 0 <= i < _EVAL_OFFSET:
        raise ValueError(f"training scene index must be in [0, {_EVAL_OFFSET}), got {i}")
    return i


def eval_seed(i: int) -> int:
    """Seed of the i-th evaluation scene; never equal to a ``train_seed``.

    Args:
        i: index of the scene, i >= 0.

    Example:
        >>> eval_seed(3)
        1000003
    """
    if i < 0:
        raise ValueError(f"evaluation scene index must be >= 0, got {i}")
    return _EVAL_OFFSET + i


# ---------------------------------------------------------------------------------------------
# The world: everything about a street that does not depend on the image size.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Camera:
    height: float  # metres above the ground
    focal: float  # focal length as a fraction of the image width
    horizon: float  # horizon row as a fraction of the image height
    vp_x: float  # vanishing point column as a fraction of the image width
    speed: float  # metres travelled per clip frame


@dataclass
class _Light:
    sun: np.ndarray  # (3,) unit vector towards the sun (X, Y, Z)
    direct: float  # strength of sunlight (0 on an overcast day)
    ambient: float  # strength of skylight, reaching shadows too
    exposure: float
    white_balance: np.ndarray  # (3,) per-channel gain
    haze: np.ndarray  # (3,) colour of distant air
    haze_distance: float  # metres at which haze covers 40 % of a surface (80 % at infinity)
    noise: float  # standard deviation of the sensor noise (0..1 units)
    blur: float  # 0 sharp .. 1 full 3x3 binomial blur

    def shade(self, normal, lit: bool = True) -> float:
        """Brightness of a surface with this outward normal (in a shadow when not lit)."""
        return self.ambient + (self.direct * max(0.0, float(np.dot(normal, self.sun))) if lit else 0.0)


@dataclass
class _Side:
    """One side of the street (sign -1 left, +1 right); distances are |X| in metres."""

    sign: int
    kerb: float  # road edge
    walk: float  # outer edge of the sidewalk
    facade: float  # building line
    beyond: int  # label of the ground behind the building line
    z0: np.ndarray  # (S,) start of each building segment along the street
    z1: np.ndarray  # (S,) end of each segment
    height: np.ndarray  # (S,) wall height, 0 for a gap between buildings
    colour: np.ndarray  # (S, 3)
    floor: np.ndarray  # (S,) storey height
    spacing: np.ndarray  # (S,) window spacing along the wall
    window: np.ndarray  # (S, 2) window width and height as fractions of spacing and storey
    glass: np.ndarray  # (S, 3) window colour
    hedge: float  # hedge height along the sidewalk edge, 0 for none
    profile: np.ndarray  # (K,) wall height every 0.5 m along the street, for shadows


@dataclass
class _Backdrop:
    z: float  # distance of the backdrop plane
    edges: np.ndarray  # (C + 1,) X boundaries of its cells
    height: np.ndarray  # (C,) top of each cell in metres
    label: np.ndarray  # (C,) BUILDING or VEGETATION
    colour: np.ndarray  # (C, 3)


@dataclass
class _Thing:
    """Something standing on the ground; ``obj`` is its instance id (0 for trees and poles)."""

    kind: str  # "car", "person", "tree", "streetlight", "sign", "traffic_light"
    x: float
    z: float
    obj: int
    speed: float  # metres per clip frame along +Z
    size: np.ndarray  # kind-specific dimensions in metres
    colours: np.ndarray  # (k, 3) kind-specific colours
    extra: np.ndarray  # kind-specific shape parameters


@dataclass
class _World:
    camera: _Camera
    light: _Light
    road_x: float  # X of the road centre
    lane_width: float
    lanes: int
    zebra: float  # Z of a zebra crossing, 0 for none
    left: _Side
    right: _Side
    backdrop: _Backdrop
    things: list
    sky: np.ndarray  # (3, 3) horizon, zenith and cloud colours
    clouds: float  # cloud cover 0..1
    ground: np.ndarray  # (4, 3) road, sidewalk, lawn, kerb colours
    marking: np.ndarray  # (3,) lane marking colour
    tables: np.ndarray  # (4, N + 1, N + 1) float32 random tables for value noise (wrapped edge)


def _colours(rng, n: int, hue, sat, val) -> np.ndarray:
    """n RGB colours (n, 3) float32 in [0, 1] from ranges (lo, hi) of hue (degrees), saturation, value."""
    h = rng.uniform(*hue, n) / 60.0 % 6.0
    s, v = rng.uniform(*sat, n), rng.uniform(*val, n)
    sector, f = np.floor(h).astype(int), h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = np.stack([np.choose(sector, c) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))], 1)
    return rgb.astype(np.float32)


def _colour(rng, hue, sat, val) -> np.ndarray:
    """One RGB colour (3,), as ``_colours`` (colorsys is quicker than numpy for one)."""
    h = rng.uniform(*hue) / 360.0 % 1.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def _any_colour(rng, val=(0.15, 0.95), sat=(0.0, 0.6), n: int = 0) -> np.ndarray:
    """A colour of any hue (3,), or n of them (n, 3)."""
    return _colours(rng, n, (0, 360), sat, val) if n else _colour(rng, (0, 360), sat, val)


def _sample_world(seed: int) -> _World:
    rng = np.random.default_rng(seed)
    u = rng.uniform
    cam = _Camera(height=u(1.3, 1.8), focal=u(0.8, 1.05), horizon=u(0.36, 0.5), vp_x=u(0.4, 0.6), speed=u(0.4, 1.0))

    overcast = rng.random() < 0.3
    elevation, azimuth = u(0.25, 1.1), u(-2.6, 2.6)  # radians; azimuth 0 = sun straight ahead
    sun = np.array(
        [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
    )
    direct = u(0.0, 0.15) if overcast else u(0.5, 0.9)
    light = _Light(
        sun=sun,
        direct=direct,
        ambient=u(0.55, 0.8) if overcast else u(0.3, 0.5),
        exposure=u(0.75, 1.25),
        white_balance=np.array([u(0.88, 1.12), 1.0, u(0.88, 1.12)], dtype=np.float32),
        haze=_colour(rng, (180, 240), (0.0, 0.25), (0.6, 0.95)),
        haze_distance=u(150, 600),
        noise=u(0.01, 0.035),
        blur=u(0.3, 1.0),
    )

    lanes = int(rng.integers(2, 5))
    lane_width = u(2.9, 3.6)
    road_half = lanes * lane_width / 2
    cam_lane = int(rng.integers(lanes))
    road_x = road_half - (cam_lane + 0.5) * lane_width  # the camera drives in lane cam_lane
    backdrop_z = u(120, 350)

    sides = [_sample_side(rng, sign, road_half - sign * road_x, backdrop_z) for sign in (-1, 1)]

    if overcast:
        grey = u(0.55, 0.9)
        sky = np.stack([np.full(3, grey), np.full(3, grey * u(0.75, 1.0)), np.full(3, min(1.0, grey * 1.1))])
        sky = (sky * np.array([u(0.95, 1.05), 1.0, u(0.95, 1.1)])).astype(np.float32)
    elif rng.random() < 0.15:  # dusk
        sky = np.stack([_colour(rng, (10, 45), (0.3, 0.7), (0.7, 1.0)), _colour(rng, (200, 260), (0.3, 0.7), (0.3, 0.6)),
                        _colour(rng, (0, 40), (0.1, 0.4), (0.6, 0.9))])
    else:
        sky = np.stack([_colour(rng, (185, 225), (0.05, 0.35), (0.75, 1.0)), _colour(rng, (195, 230), (0.35, 0.85), (0.5, 0.9)),
                        _colour(rng, (0, 360), (0.0, 0.05), (0.85, 1.0))])

    road = _colour(rng, (0, 360), (0.0, 0.15), (0.18, 0.55))
    if rng.random() < 0.15:  # red asphalt or cobbles
        road = _colour(rng, (0, 40), (0.2, 0.5), (0.25, 0.55))
    walk = _colour(rng, (0, 360), (0.0, 0.35), (0.35, 0.85))
    lawn = _colour(rng, (45, 130), (0.3, 0.8), (0.2, 0.55))
    kerb = np.clip(walk * u(0.8, 1.3), 0, 1).astype(np.float32)
    marking = _colour(rng, (40, 60), (0.6, 0.9), (0.7, 0.95)) if rng.random() < 0.25 else _colour(rng, (0, 360), (0, 0.05), (0.75, 1.0))

    world = _World(
        camera=cam,
        light=light,
        road_x=road_x,
        lane_width=lane_width,
        lanes=lanes,
        zebra=u(8, 40) if rng.random() < 0.3 else 0.0,
        left=sides[0],
        right=sides[1],
        backdrop=_sample_backdrop(rng, cam, backdrop_z),
        things=[],
        sky=sky.astype(np.float32),
        clouds=0.0 if overcast else u(0.0, 0.7),
        ground=np.stack([road, walk, lawn, kerb]).astype(np.float32),
        marking=marking,
        tables=np.pad(rng.random((4, _NOISE_SIZE, _NOISE_SIZE), dtype=np.float32), ((0, 0), (0, 1), (0, 1)), mode="wrap"),
    )
    world.things = _sample_things(rng, world)
    return world


def _sample_side(rng, sign: int, kerb: float, backdrop_z: float) -> _Side:
    u = rng.uniform
    walk = kerb + u(2.0, 5.0)
    yard = 0.0 if rng.random() < 0.55 else u(1.0, 4.0)
    builtup = rng.random() < 0.9
    z0, z1, z = [], [], 0.0
    while z < backdrop_z - 2:
        length = u(8, 30)
        z0.append(z)
        z = min(z + length, backdrop_z - 1)
        z1.append(z)
    n = len(z0)
    f32 = np.float32
    height = np.where(rng.random(n) < (0.82 if builtup else 0.1), rng.uniform(5, 28, n), 0.0).astype(f32)
    colour = _any_colour(rng, n=n)
    glass = _colours(rng, n, (180, 240), (0.0, 0.4), (0.08, 0.45))
    return _Side(
        sign=sign,
        kerb=kerb,
        walk=walk,
        facade=walk + yard,
        beyond=VEGETATION if rng.random() < 0.6 else SIDEWALK,
        z0=np.array(z0),
        z1=np.array(z1),
        height=height,
        colour=colour,
        floor=rng.uniform(2.8, 3.8, n).astype(f32),
        spacing=rng.uniform(1.8, 4.0, n).astype(f32),
        window=np.stack([rng.uniform(0.35, 0.75, n), rng.uniform(0.35, 0.65, n)], axis=1).astype(f32),
        glass=glass,
        hedge=u(0.7, 1.5) if yard > 0 and rng.random() < 0.6 else 0.0,
        profile=height[np.minimum(np.searchsorted(z1, np.arange(0, backdrop_z, 0.5), side="right"), n - 1)],
    )


def _sample_backdrop(rng, cam: _Camera, z: float) -> _Backdrop:
    # The backdrop spans the whole view; its top stays below 8 % of a square image's height.
    x_lo, x_hi = -cam.vp_x * z / cam.focal - 5, (1 - cam.vp_x) * z / cam.focal + 5
    top = cam.height + (cam.horizon - 0.08) * z / cam.focal
    edges = [x_lo]
    while edges[-1] < x_hi:
        edges.append(edges[-1] + rng.uniform(6, 25))
    n = len(edges) - 1
    trees = rng.random() < 0.35
    label = np.where(rng.random(n) < (0.7 if trees else 0.15), VEGETATION, BUILDING)
    height = np.where(label == BUILDING, rng.uniform(8, 45, n), rng.uniform(6, 16, n))
    height = np.minimum(height, top).clip(cam.height + 2, None)
    colour = np.where((label == VEGETATION)[:, None], _colours(rng, n, (60, 140), (0.2, 0.6), (0.15, 0.45)),
                      _any_colour(rng, n=n))
    return _Backdrop(z=z, edges=np.array(edges), height=height, label=label, colour=colour)


def _visible_z(cam: _Camera, x: float, z_lo: float, z_hi: float, rng, margin: float = 0.06) -> float:
    """A distance in [z_lo, z_hi] (pushed farther if needed) at which lateral position x is in view."""
    room = (1 - margin - cam.vp_x) if x > 0 else (cam.vp_x - margin)
    z_min = cam.focal * abs(x) / room * 1.02
    return max(rng.uniform(z_lo, z_hi), z_min)


def _sample_things(rng, w: _World) -> list:
    u = rng.uniform
    cam = w.camera
    things = []

    def add(kind, x, z, size, colours, extra=(), speed=0.0, obj=0):
        things.append(_Thing(kind, x, z, obj, speed, np.asarray(size, dtype=np.float64),
                             np.asarray(colours, dtype=np.float32).reshape(-1, 3), np.asarray(extra, dtype=np.float64)))

    # Trees: rows of one species along the sidewalk edge, sometimes a few in the front yards.
    # Beyond ~100 m trees and street lights are a few pixels in front of the backdrop.
    far = min(w.backdrop.z - 5, 100)
    for side in (w.left, w.right):
        bark, leaves = _colour(rng, (20, 40), (0.2, 0.5), (0.15, 0.4)), _colour(rng, (35, 140), (0.3, 0.85), (0.15, 0.55))
        if rng.random() < 0.75:
            z, x = u(2, 12), side.sign * (side.kerb + u(0.6, 1.0))
            gap = u(7, 16)
            while z < far:
                if rng.random() < 0.85:
                    _add_tree(rng, add, x, z, bark, leaves)
                z += gap * u(0.8, 1.2)
        elif side.facade > side.walk + 1 and side.hedge == 0:
            for _ in range(int(rng.integers(1, 5))):
                _add_tree(rng, add, side.sign * (side.walk + side.facade) / 2, u(5, 80), bark, leaves)
    # Poles: street lights at regular spacing, signs and traffic lights near the kerb.
    pole_colour = _colour(rng, (0, 360), (0.0, 0.3), (0.15, 0.7))
    for side in (w.left, w.right):
        if rng.random() < 0.7:
            z, x = u(5, 25), side.sign * (side.kerb + u(0.3, 0.6))
            gap = u(18, 40)
            while z < far:
                add("streetlight", x, z, (u(0.15, 0.25), u(6, 9.5), u(0.8, 2.5)), pole_colour, (-side.sign,))
                z += gap
    for i in range(int(rng.integers(1, 4))):
        side = (w.left, w.right)[int(rng.integers(2))]
        x = side.sign * (side.kerb + u(0.3, 0.8))
        z = _visible_z(cam, x, 7, 22, rng) if i == 0 else u(6, 60)
        shape = int(rng.integers(4))  # disc, triangle, rectangle, diamond
        plate = _colour(rng, (0, 360), (0.5, 1.0), (0.4, 1.0)) if rng.random() < 0.8 else _any_colour(rng)
        inner = _colour(rng, (0, 360), (0.0, 0.2), (0.8, 1.0)) if rng.random() < 0.6 else plate
        add("sign", x, z, (u(0.08, 0.14), u(2.2, 3.4), u(0.55, 0.9)), (pole_colour, plate, inner), (shape,))
    if w.zebra and rng.random() < 0.7:
        for side in (w.left, w.right):
            add("traffic_light", side.sign * (side.kerb + 0.4), w.zebra - 1.0, (u(0.12, 0.2), u(2.6, 3.6), 0.35),
                (pole_colour, _colour(rng, (0, 360), (0, 0.2), (0.05, 0.25))), (int(rng.integers(3)),))

    # People and cars get instance ids 1..K in this order.
    obj = 0
    for i in range(int(rng.integers(2, 7))):
        obj += 1
        crossing = w.zebra and rng.random() < 0.3
        side = (w.left, w.right)[int(rng.integers(2))]
        if crossing:
            x, z = w.road_x + u(-1, 1) * (w.lanes * w.lane_width / 2), w.zebra + u(0.5, 2.5)
        else:
            x = side.sign * (side.kerb + u(0.4, max(0.5, side.walk - side.kerb - 0.3)))
            z = _visible_z(cam, x, 7, 25, rng) if i < 2 else u(6, 32)  # ~10..60 px tall at 256 px
        child = rng.random() < 0.1
        tall = u(1.05, 1.4) if child else u(1.55, 1.95)
        skin = _colour(rng, (15, 35), (0.2, 0.6), (0.25, 0.95))
        # People on the zebra crossing wait; the others walk along the sidewalk (metres per frame).
        add("person", x, z, (tall,), (skin, _any_colour(rng, sat=(0, 0.9)), _any_colour(rng, val=(0.1, 0.7))),
            (u(0, 1), u(0.6, 1.0)), speed=0.0 if crossing else u(-0.15, 0.15), obj=obj)
    lane_x = w.road_x - w.lanes * w.lane_width / 2 + (np.arange(w.lanes) + 0.5) * w.lane_width
    oncoming = lane_x < w.road_x - 0.1 if w.lanes > 1 else np.zeros(1, bool)
    lane_speed = np.where(oncoming, -u(0.5, 1.5, w.lanes), u(0.6, 1.4, w.lanes)) * cam.speed
    n_cars = int(rng.integers(1, 7))
    taken = [[] for _ in range(w.lanes)]
    for i in range(n_cars):
        lane = int(rng.integers(w.lanes))
        x = float(lane_x[lane]) + u(-0.3, 0.3)
        z = _visible_z(cam, x, 8, 35, rng) if i == 0 else u(6, 70)
        length = u(3.8, 4.8)
        if any(abs(z - other) < length + 2.5 for other in taken[lane]):
            continue
        taken[lane].append(z)
        obj += 1
        van = rng.random() < 0.15
        size = (length, u(1.65, 1.95), u(1.8, 2.2) if van else u(1.35, 1.6), u(0.6, 0.8))
        cabin = (u(0.05, 0.15), u(0.85, 0.95)) if van else (u(0.2, 0.35), u(0.65, 0.8))
        body = _any_colour(rng, sat=(0.0, 0.9), val=(0.08, 0.95))
        add("car", x, z, size, (body, _colour(rng, (190, 230), (0.0, 0.3), (0.05, 0.3))),
            (*cabin, float(oncoming[lane])), speed=float(lane_speed[lane]), obj=obj)
    return things


def _add_tree(rng, add, x, z, bark, leaves):
    """A tree of the given colours, each one a little lighter or darker and shaped its own way."""
    u = rng.uniform
    blobs = rng.uniform(-0.55, 0.55, (4, 2)) * [1.0, 0.7]  # crown = a disc and four overlapping blobs
    add("tree", x, z, (u(0.2, 0.35), u(1.8, 3.2), u(1.3, 2.8)), (bark, np.clip(leaves * u(0.8, 1.2, 3), 0, 1)),
        (*blobs.ravel(), u(0, _NOISE_SIZE), u(0, _NOISE_SIZE)))


# ---------------------------------------------------------------------------------------------
# Rendering: painter's algorithm, far to near, each shape tested only inside its bounding box.
# ---------------------------------------------------------------------------------------------


class _Canvas:
    """The picture being painted (float colours, labels, depth, instance ids) and the camera
    projection in pixels for one image size and camera position."""

    def __init__(self, height: int, width: int, world: _World, cam_z: float):
        self.h, self.w = height, width
        cam = world.camera
        self.f = cam.focal * width  # focal length in pixels
        self.horizon = cam.horizon * height
        self.vp = cam.vp_x * width
        self.cam_h = cam.height
        self.cam_z = cam_z
        # Thin things (poles, far limbs) stay at least 2 px wide at 256 px and above, and never
        # thinner than 2 px at smaller sizes either, so that small training images still show them.
        self.min_px = max(2.0, 2.0 * width / 256)
        # Channels first while painting: (H, W) masks then broadcast along rows, never along a
        # trailing axis of length 3, which numpy loops over slowly.
        self.image = np.zeros((3, height, width), np.float32)
        self.labels = np.zeros((height, width), np.uint8)
        self.depth = np.full((height, width), SKY_DEPTH, np.float32)
        self.objects = np.zeros((height, width), np.int64)
        self._rows = np.arange(height)[:, None] + 0.5  # pixel centres, sliced by box()
        self._cols = np.arange(width)[None, :] + 0.5

    def project(self, x, y, z):
        """Pixel (column, row) of world point (X, Y, Z) with Z relative to the camera."""
        return self.vp + self.f * x / z, self.horizon + self.f * (self.cam_h - y) / z

    def box(self, x0, x1, y0, y1):
        """Clipped integer box and pixel-centre ogrid for the rectangle [x0, x1) x [y0, y1), or None."""
        c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), self.w)
        r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, c0, self._rows[r0:r1], self._cols[:, c0:c1]

    def paint(self, r0, c0, mask, colour, label, depth, obj=0):
        """Paint where ``mask`` (h, w) is set, from (r0, c0): colour (3,) or (3, h, w), label and
        depth scalars or (h, w) arrays, instance id ``obj``."""
        h, w = mask.shape
        rows, cols = slice(r0, r0 + h), slice(c0, c0 + w)
        colour = np.asarray(colour, np.float32)
        np.copyto(self.image[:, rows, cols], colour if colour.ndim == 3 else colour[:, None, None], where=mask)
        np.copyto(self.labels[rows, cols], label, where=mask, casting="unsafe")
        np.copyto(self.depth[rows, cols], depth, where=mask, casting="unsafe")
        np.copyto(self.objects[rows, cols], obj, where=mask)

    def convex(self, points):
        """(r0, c0, mask) of the convex polygon with (k, 2) pixel corners, by half-plane tests; or None."""
        pts = np.asarray(points, np.float64)
        g = self.box(pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
        if g is None:
            return None
        r0, c0, yy, xx = g
        edges = list(zip(pts.tolist(), pts[1:].tolist() + pts[:1].tolist()))
        orient = 1.0 if sum(px * qy - qx * py for (px, py), (qx, qy) in edges) >= 0 else -1.0
        mask = np.ones((yy.shape[0], xx.shape[1]), bool)
        for (px, py), (qx, qy) in edges:
            mask &= orient * ((qx - px) * (yy - py) - (qy - py) * (xx - px)) >= 0
        return r0, c0, mask

    def polygon(self, points, colour, label, depth, obj=0):
        """Fill a convex polygon given as (k, 2) pixel points."""
        g = self.convex(points)
        if g is not None:
            self.paint(*g, colour, label, depth, obj)

    def ellipse(self, cx, cy, rx, ry, colour, label, depth, obj=0):
        """Fill the axis-aligned ellipse with centre (cx, cy) and radii (rx, ry) in pixels."""
        g = self.box(cx - rx, cx + rx, cy - ry, cy + ry)
        if g is None:
            return
        r0, c0, yy, xx = g
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        self.paint(r0, c0, mask, colour, label, depth, obj)

    def rect(self, x0, x1, y0, y1, colour, label, depth, obj=0):
        """Fill every pixel that the rectangle [x0, x1) x [y0, y1) (in pixels) touches."""
        g = self.box(x0, x1, y0, y1)
        if g is None:
            return
        r0, c0, yy, xx = g
        self.paint(r0, c0, np.ones((yy.shape[0], xx.shape[1]), bool), colour, label, depth, obj)


def _value_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] at continuous coordinates (u, v), tiled from a random table.

    ``table`` is (N + 1, N + 1) with its first row and column repeated at the end (N a power of
    two), so the four corners of every cell are found without a second wrap-around.
    """
    n = table.shape[0] - 1
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep hides the grid
    i = (iv.astype(np.int32) & (n - 1)) * (n + 1) + (iu.astype(np.int32) & (n - 1))
    flat = table.ravel()
    a, b, c, d = flat[i], flat[i + 1], flat[i + n + 1], flat[i + n + 2]
    top = a + (b - a) * fu
    return top + (c + (d - c) * fu - top) * fv


def _frac(x: np.ndarray) -> np.ndarray:
    """Fractional part, x - floor(x) (numpy's float % is many times slower)."""
    return x - np.floor(x)


def _planar(colour) -> np.ndarray:
    """A colour (3,) or per-pixel colours (..., 3) as a channels-first float32 array (3, ..., 1, 1)."""
    colour = np.asarray(colour, np.float32)
    return colour.reshape(3, 1, 1) if colour.ndim == 1 else np.ascontiguousarray(np.moveaxis(colour, -1, 0))


def _cell_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Blocky noise in [0, 1]: the table value of the cell containing (u, v) (leaves, speckle)."""
    n = table.shape[0] - 1
    return table.ravel()[(np.floor(v).astype(np.int32) & (n - 1)) * (n + 1) + (np.floor(u).astype(np.int32) & (n - 1))]


def _paint_sky(cv: _Canvas, w: _World):
    rows = min(cv.h, int(np.ceil(cv.horizon)))
    if rows <= 0:
        return
    y = (np.arange(rows, dtype=np.float32) + 0.5)[:, None]
    t = np.clip(1 - y / cv.horizon, 0, 1)  # (rows, 1): 0 at the horizon, 1 at the top row
    horizon, zenith, cloud_colour = (c[:, None, None] for c in w.sky)
    sky = np.broadcast_to(horizon + (zenith - horizon) * np.sqrt(t), (3, rows, cv.w))
    if w.clouds > 0:
        x = np.arange(cv.w, dtype=np.float32)[None, :] + 0.5
        scale = 18.0 / cv.w  # cloud cells of ~1/18 of the width, flattened towards the horizon
        cloud = _value_noise(w.tables[3], x * scale + 0.4 * cv.cam_z, y * scale * 3.0 / (0.3 + t))
        cover = np.clip((cloud - (1 - w.clouds)) * 3.0, 0, 1)
        sky = sky + (cloud_colour - sky) * cover
    cv.image[:, :rows] = sky
    cv.labels[:rows] = SKY


def _paint_ground(cv: _Canvas, w: _World):
    """Road, sidewalks, kerbs, lawns, markings and building shadows on the plane Y = 0.

    Columns left of the vanishing point see only the left half of the world (X < 0) and columns
    right of it only the right half, so each side of the street is painted on its own columns.
    """
    bd = w.backdrop.z - cv.cam_z
    r0 = max(0, int(np.floor(cv.horizon + cv.f * cv.cam_h / bd)))  # the backdrop hides what is beyond
    if r0 >= cv.h:
        return
    y = np.arange(r0, cv.h, dtype=np.float32) + 0.5
    z = np.minimum(cv.cam_h * cv.f / np.maximum(y - cv.horizon, 1e-3), bd).astype(np.float32)[:, None]  # (R, 1)
    zw = z + np.float32(cv.cam_z)  # world Z: textures stay on the ground while the camera moves
    footprint = z * z / np.float32(cv.cam_h * cv.f)  # (R, 1) metres of ground per pixel row
    fade = np.clip(0.6 / footprint, 0, 1)  # texture fades where a pixel covers more than its scale
    light = w.light
    sun = light.direct * max(light.sun[1], 0.0)
    half = w.lanes * w.lane_width / 2
    split = int(np.clip(np.ceil(cv.vp - 0.5), 0, cv.w))  # first column with X >= 0
    for side, c0, c1 in ((w.left, 0, split), (w.right, split, cv.w)):
        if c0 >= c1:
            continue
        xcol = ((np.arange(c0, c1, dtype=np.float32) + np.float32(0.5 - cv.vp)) / np.float32(cv.f))[None, :]
        x = xcol * z  # (R, C) metres right of the camera
        ax = x * side.sign  # distance from the camera's line, >= 0 on this side
        # Zone 0 road, 1 kerb stone, 2 sidewalk, 3 front yard, 4 behind the building line,
        # then surface 0 road, 1 sidewalk, 2 lawn, 3 kerb stone.
        zone = (ax >= side.kerb).view(np.uint8) + (ax >= side.kerb + 0.2) + (ax >= side.walk) + (ax >= side.facade)
        kind = np.array([0, 3, 1, 2, 2 if side.beyond == VEGETATION else 1], np.uint8)[zone]

        fine = _value_noise(w.tables[0], x * 2.5, zw * 2.5) - 0.5
        coarse = _value_noise(w.tables[1], x * 0.3, zw * 0.3) - 0.5
        shade = 1 + np.array([0.35, 0.25, 0.7, 0.2], np.float32)[kind] * (fine * fade + 0.8 * coarse)
        tile = 0.6  # sidewalk paving joints, dropped where they would alias
        joints = (np.minimum(_frac(x / tile), _frac(zw / tile)) < 0.08) & (kind == 1) & (fade > 0.3)
        shade[joints] *= 0.8
        shade *= np.where(_in_sun(w, x, zw), np.float32(light.ambient + sun), np.float32(light.ambient))

        # Lane markings: dashed between lanes, solid near the edges; a zebra crossing sometimes.
        rx = x - np.float32(w.road_x)
        m = (rx + half) / w.lane_width
        lane = np.round(m)
        mark = (np.abs(m - lane) * w.lane_width < 0.08) & (lane > 0) & (lane < w.lanes) & (_frac(zw / 9.0) < 0.4)
        mark |= np.abs(np.abs(rx) - (half - 0.35)) < 0.08
        if w.zebra:
            mark |= (np.abs(zw - w.zebra - 1.5) < 1.5) & (_frac(rx) < 0.5) & (np.abs(rx) < half - 0.5)
        mark &= kind == 0

        colour = w.ground.T[:, kind] * shade  # (3, R, C)
        np.copyto(colour, _planar(w.marking * (light.ambient + sun)), where=mark)
        cv.image[:, r0:, c0:c1] = colour
        cv.labels[r0:, c0:c1] = np.array([ROAD, SIDEWALK, VEGETATION, SIDEWALK], np.uint8)[kind]
    cv.depth[r0:] = z


def _in_sun(w: _World, x, z_world):
    """Whether ground points (X, world Z) are in sunlight, i.e. outside the buildings' shadows.

    Only the buildings on the sun's side cast shadows onto the street: follow the ray towards
    the sun to their building line and compare its height there with the wall's height.
    """
    sx, sy, sz = w.light.sun
    if w.light.direct <= 0.2 or abs(sx) <= 0.05:
        return np.ones(np.shape(x), bool)
    side = w.right if sx > 0 else w.left
    run = side.facade - side.sign * x  # metres from the point to the building line, towards the sun
    z_hit = z_world + run * np.float32(sz / abs(sx))
    wall = side.profile[np.clip(np.asarray(z_hit * 2).astype(np.int32), 0, side.profile.size - 1)]
    return (run * np.float32(sy / abs(sx)) > wall) | (run < 0)


def _wall_colour(side: _Side, seg, u, yw, table: np.ndarray) -> np.ndarray:
    """Colour of building walls with storeys, windows and shop fronts.

    ``seg`` selects each column's building segment (an int or a (1, C) array), ``u`` (1, C) is
    the position along the wall and ``yw`` (R, C) the height on it, both in metres.
    """
    height, floor, spacing = side.height[seg], side.floor[seg], side.spacing[seg]
    win_w, win_h = side.window[seg, 0], side.window[seg, 1]
    along = u / spacing  # (1, C) window columns
    fu = np.abs(_frac(along) - 0.5)
    level = yw / floor  # (R, C) storeys
    fv = _frac(level)
    storeys = (yw > floor * 0.9) & (yw < height - 0.6)
    glass = ((fu < win_w / 2) & (np.abs(fv - 0.55) < win_h / 2) & storeys) | (
        (fu < 0.45) & (yw > 0.4) & (yw < floor * 0.8))  # windows, and shop fronts at street level
    brick = _cell_noise(table, u * 3.0, yw * 6.0)
    shade = np.where((fv < 0.06) & storeys, np.float32(1.05), np.float32(0.9)) + 0.2 * brick  # a ledge at every floor
    shine = 0.6 + 0.9 * _cell_noise(table, along, level)  # each pane reflects its own bit of sky
    return np.where(glass, _planar(side.glass[seg]) * shine, _planar(side.colour[seg]) * shade)  # (3, R, C)


def _paint_side(cv: _Canvas, w: _World, side: _Side):
    """One side of the street: end walls of buildings that stand out, building fronts, hedge.

    All fronts of a side share the plane |X| = facade, so each image column sees that plane at
    one depth and one building segment: the whole side is painted in one pass. End walls (the
    near ends of buildings taller than their nearer neighbour) lie farther out, behind the
    nearer fronts, so they are painted first, far to near.
    """
    light = w.light
    s = side.sign
    xf = s * side.facade
    table = w.tables[2]
    far_limit = w.backdrop.z - cv.cam_z
    end_shade = np.float32(light.shade(_TOWARDS_CAMERA))
    for k in range(len(side.z0) - 1, -1, -1):
        hgt, za = side.height[k], side.z0[k] - cv.cam_z
        if hgt <= 0 or za <= _NEAR or za >= far_limit or (k > 0 and side.height[k - 1] >= hgt):
            continue
        xa, xb = cv.project(xf, 0, za)[0], cv.project(s * (side.facade + 12.0), 0, za)[0]
        g = cv.box(min(xa, xb), max(xa, xb), cv.project(0, hgt, za)[1], cv.project(0, 0, za)[1])
        if g is not None:
            r0, c0, yy, xx = g
            u = np.abs((xx - cv.vp) * (za / cv.f)).astype(np.float32)
            yw = np.broadcast_to(cv.cam_h - (yy - cv.horizon) * (za / cv.f), (yy.shape[0], xx.shape[1])).astype(np.float32)
            cv.paint(r0, c0, np.ones(yw.shape, bool), _wall_colour(side, k, u, yw, table) * end_shade, BUILDING, za)

    zc, c0, yy = _plane_columns(cv, xf, far_limit, side.height.max())
    if zc is not None:
        seg = np.minimum(np.searchsorted(side.z1, zc + cv.cam_z, side="right"), len(side.z1) - 1)  # (1, C)
        yw = cv.cam_h - (yy - cv.horizon) * zc / cv.f  # (R, C) height on the wall
        mask = (yw >= 0) & (yw <= side.height[seg])
        if mask.any():
            face_shade = np.float32(light.shade(np.array([-s, 0.0, 0.0])))
            colour = _wall_colour(side, seg, zc + np.float32(cv.cam_z), yw, table) * face_shade
            cv.paint(int(yy[0, 0]), c0, mask, colour, BUILDING, np.broadcast_to(zc, mask.shape))
    if side.hedge > 0:
        zc, c0, yy = _plane_columns(cv, s * side.walk, far_limit, side.hedge + 0.2)
        if zc is not None:
            zw = zc + np.float32(cv.cam_z)
            yw = cv.cam_h - (yy - cv.horizon) * zc / cv.f
            top = side.hedge + 0.2 * _value_noise(w.tables[1], zw * 1.3, np.zeros_like(zw))  # a ragged top
            mask = (yw >= 0) & (yw <= top)
            leaf = _cell_noise(w.tables[0], zw * 6, yw * 6)
            colour = _planar(w.ground[2] * 0.8) * (0.6 + 0.8 * leaf) * np.float32(light.shade(np.array([-s, 0.0, 0.0])))
            cv.paint(int(yy[0, 0]), c0, mask, colour, VEGETATION, np.broadcast_to(zc, mask.shape))


def _plane_columns(cv: _Canvas, x_plane: float, far_limit: float, top: float):
    """Where the vertical plane X = x_plane (a street wall) shows, up to height ``top``.

    Returns (zc, c0, yy): the plane's depth in each of its columns (1, C) float32 between _NEAR
    and ``far_limit``, the first of those columns, and the pixel-centre rows (R, 1) that can
    show it; or (None, 0, None) when it is out of view.
    """
    x_near, x_far = cv.project(x_plane, 0, _NEAR)[0], cv.project(x_plane, 0, far_limit)[0]
    c0, c1 = max(int(np.floor(min(x_near, x_far))), 0), min(int(np.ceil(max(x_near, x_far))), cv.w)
    if c0 >= c1:
        return None, 0, None
    dx = np.arange(c0, c1, dtype=np.float32) + np.float32(0.5 - cv.vp)
    dx[dx * x_plane <= 0] = np.nan  # columns on the other side of the vanishing point
    zc = np.float32(cv.f * x_plane) / dx
    valid = np.flatnonzero((zc >= _NEAR) & (zc < far_limit))  # contiguous: depth is monotone in x
    if valid.size == 0:
        return None, 0, None
    c0, zc = c0 + valid[0], zc[valid[0]:valid[-1] + 1]
    z_near = zc.min()
    g = cv.box(c0, c0 + zc.size, cv.horizon + cv.f * (cv.cam_h - top) / z_near, cv.horizon + cv.f * cv.cam_h / z_near)
    if g is None:
        return None, 0, None
    return zc[None, :], c0, g[2].astype(np.float32)


def _paint_backdrop(cv: _Canvas, w: _World):
    bd = w.backdrop
    z = bd.z - cv.cam_z
    cols = np.arange(cv.w, dtype=np.float64) + 0.5
    x = (cols - cv.vp) * z / cv.f
    cell = np.clip(np.searchsorted(bd.edges, x) - 1, 0, len(bd.height) - 1)
    bumps = 3 * _value_noise(w.tables[1], x[None, :] * 0.4, 0 * x[None, :])[0]  # tree crowns on the skyline
    height = bd.height[cell] + np.where(bd.label[cell] == VEGETATION, bumps, 0)
    top = np.maximum(cv.horizon + cv.f * (cv.cam_h - height) / z, 0.06 * cv.h)
    bottom = cv.horizon + cv.f * cv.cam_h / z
    g = cv.box(0, cv.w, top.min(), bottom + 1)
    if g is None:
        return
    r0, c0, yy, _ = g
    mask = (yy >= top[None, :]) & (yy < bottom + 1)
    tex = _value_noise(w.tables[1], x[None, :] * 2.0, yy * 0.7) - 0.5
    shade = np.float32(w.light.shade(_TOWARDS_CAMERA))
    colour = bd.colour.T[:, None, cell] * ((1 + 0.3 * tex) * shade)  # (3, R, W)
    labels = np.broadcast_to(bd.label[cell][None, :], mask.shape)
    cv.paint(r0, c0, mask, colour, labels, np.float32(z))


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of a few (k, 2) points, counter-clockwise."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0]) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


def _shadow(cv: _Canvas, corners_xz, strength: float):
    """Darken the ground under a thing: corners_xz are ground points (X, Z relative to the camera).

    Things are drawn far to near, so only the ground around the thing and farther things are
    on the canvas yet; the depth test keeps the shadow on what lies where it falls.
    """
    zs = [z for _, z in corners_xz]
    g = cv.convex(_hull(np.array([cv.project(x, 0.0, max(z, _NEAR)) for x, z in corners_xz])))
    if g is None:
        return
    r0, c0, mask = g
    rows, cols = slice(r0, r0 + mask.shape[0]), slice(c0, c0 + mask.shape[1])
    depth = cv.depth[rows, cols]
    mask &= (depth > min(zs) - 0.5) & (depth < max(zs) + 0.5)
    cv.image[:, rows, cols] *= np.where(mask, np.float32(1 - strength), np.float32(1))


def _draw_car(cv: _Canvas, w: _World, t: _Thing, z: float):
    length, width, height, body_h = t.size
    cab0, cab1, oncoming = t.extra
    x0, x1 = t.x - width / 2, t.x + width / 2
    if z <= _NEAR:
        return
    light = w.light
    lit = bool(_in_sun(w, t.x, z + length / 2 + cv.cam_z))
    sx, _, sz = light.sun
    # Shadow: the footprint, stretched away from the sun.
    spread = 0.6 + (1.2 * light.direct if lit else 0.0)
    _shadow(cv, [(x0 - 0.2 - spread * sx, z - 0.2 - spread * sz), (x1 + 0.2 - spread * sx, z - 0.2 - spread * sz),
                 (x1 + 0.2, z + length), (x0 - 0.2, z + length), (x0 - 0.2, z), (x1 + 0.2, z)],
            0.55 * (light.direct + 0.3) if lit else 0.35)
    body, glass = t.colours[0], t.colours[1]
    side = 1.0 if t.x < 0 else -1.0  # the camera sees the side facing the street's middle
    side_shade = light.shade(np.array([side, 0.0, 0.0]), lit)
    near_shade = light.shade(_TOWARDS_CAMERA, lit)
    top_shade = light.shade(_UP, lit)

    def corners(xa, xb, ya, yb, za, zb):
        return np.array([cv.project(xx, yy, zz) for xx in (xa, xb) for yy in (ya, yb) for zz in (za, zb)])

    parts = [(x0, x1, 0.25, body_h, z, z + length, body),
             (x0 + 0.12, x1 - 0.12, body_h - 0.05, height, z + cab0 * length, z + cab1 * length, body)]
    detailed = width * cv.f / z > 6 * cv.min_px  # windows, wheels and lamps only where they show
    for xa, xb, ya, yb, za, zb, colour in parts:
        cv.polygon(_hull(corners(xa, xb, ya, yb, za, zb)), colour * side_shade, CAR, z, t.obj)
        if yb < cv.cam_h and detailed:  # the top face is visible from above
            top = [cv.project(xa, yb, za), cv.project(xb, yb, za), cv.project(xb, yb, zb), cv.project(xa, yb, zb)]
            cv.polygon(_hull(np.array(top)), colour * top_shade, CAR, z, t.obj)
        (ax, ay), (bx, by) = cv.project(xa, yb, za), cv.project(xb, ya, za)
        cv.rect(ax, bx, ay, by, colour * near_shade, CAR, z, t.obj)
    if not detailed:
        return
    # Windows: the near window of the cabin and the side windows.
    cz0, cz1 = z + cab0 * length, z + cab1 * length
    (ax, ay), (bx, by) = cv.project(x0 + 0.25, height - 0.08, cz0), cv.project(x1 - 0.25, body_h + 0.08, cz0)
    cv.rect(ax, bx, ay, by, glass * (0.7 + 0.5 * light.direct), CAR, z, t.obj)
    xs = x1 - 0.12 if side < 0 else x0 + 0.12
    win = [cv.project(xs, height - 0.08, cz0 + 0.15), cv.project(xs, height - 0.08, cz1 - 0.1),
           cv.project(xs, body_h + 0.08, cz1 - 0.05), cv.project(xs, body_h + 0.08, cz0 + 0.1)]
    if abs(win[0][0] - win[1][0]) > 1.0:
        cv.polygon(win, glass, CAR, z, t.obj)
    # Wheels on the visible side and under the near end; lights on the near end.
    tyre = np.array([0.04, 0.04, 0.05], np.float32)
    xw = x1 if side < 0 else x0
    for zc in (z + 0.18 * length, z + 0.8 * length):
        quad = [cv.project(xw, 0.6, zc - 0.33), cv.project(xw, 0.6, zc + 0.33),
                cv.project(xw, 0.0, zc + 0.33), cv.project(xw, 0.0, zc - 0.33)]
        cv.polygon(quad, tyre, CAR, z, t.obj)
    for xa in (x0 + 0.1, x1 - 0.35):
        (ax, ay), (bx, by) = cv.project(xa, 0.3, z + 0.1), cv.project(xa + 0.25, 0.0, z + 0.1)
        cv.rect(ax, bx, ay, by, tyre, CAR, z, t.obj)
    lamp = np.array([1.0, 0.95, 0.8] if oncoming else [0.8, 0.05, 0.05], np.float32)
    for xa in (x0 + 0.08, x1 - 0.33):
        (ax, ay), (bx, by) = cv.project(xa, body_h - 0.1, z), cv.project(xa + 0.25, body_h - 0.25, z)
        cv.rect(ax, bx, ay, by, lamp, CAR, z, t.obj)


def _triangle_wave(phase: float) -> float:
    """-1 .. 1 .. -1 over one period: a walking cycle without trigonometry."""
    p = phase % 1.0
    return 4 * abs(p - 0.5) - 1


def _draw_person(cv: _Canvas, w: _World, t: _Thing, z: float, frame: int):
    if z <= _NEAR:
        return
    (tall,) = t.size
    skin, top, legs = t.colours
    phase, stride = t.extra
    light = w.light
    lit = bool(_in_sun(w, t.x, z + cv.cam_z))
    shade = light.shade(np.array([0.0, 0.3, -1.0]) / 1.044, lit)
    s = cv.f / z  # pixels per metre at this distance
    fx, fy = cv.project(t.x, 0.0, z)
    swing = _triangle_wave(phase + 0.08 * frame) * stride if abs(t.speed) > 0.02 else 0.2 * stride
    _shadow(cv, [(t.x - 0.3, z - 0.25), (t.x + 0.3, z - 0.25), (t.x + 0.3, z + 0.35), (t.x - 0.3, z + 0.35)],
            0.45 * (light.direct + 0.3) if lit else 0.3)

    def px(u, v):  # body coordinates (metres right of / above the foot point) to pixels
        return fx + u * s, fy - v * s

    hip, shoulder = 0.52 * tall, 0.81 * tall
    cx, cy = px(0, 0.905 * tall)
    head = (max(0.055 * tall * s, 0.7), max(0.075 * tall * s, 0.8))
    if tall * s < 8 * cv.min_px:  # far away: legs, body and head are enough
        cv.polygon([px(-0.1 * tall, hip), px(0.1 * tall, hip), px(0.08 * tall + 0.12 * tall * swing, 0),
                    px(-0.08 * tall - 0.12 * tall * swing, 0)], legs * shade, PERSON, z, t.obj)
        cv.polygon([px(-0.16 * tall, shoulder), px(0.16 * tall, shoulder), px(0.13 * tall, hip - 0.03 * tall),
                    px(-0.13 * tall, hip - 0.03 * tall)], top * shade, PERSON, z, t.obj)
        cv.ellipse(cx, cy, *head, skin * shade, PERSON, z, t.obj)
        return
    leg_w = max(0.065 * tall, cv.min_px * 0.5 / s)
    for sign in (-1, 1):
        foot = sign * 0.12 * tall * swing
        cv.polygon([px(sign * 0.02 * tall - leg_w, hip), px(sign * 0.02 * tall + leg_w, hip),
                    px(foot + leg_w * 0.8, 0), px(foot - leg_w * 0.8, 0)], legs * shade, PERSON, z, t.obj)
    arm_w = max(0.04 * tall, cv.min_px * 0.4 / s)
    for sign in (-1, 1):
        hand = sign * 0.19 * tall - 0.06 * tall * swing  # arms swing against the legs
        cv.polygon([px(sign * 0.15 * tall - arm_w, shoulder), px(sign * 0.15 * tall + arm_w, shoulder),
                    px(hand + arm_w * 0.8, 0.45 * tall), px(hand - arm_w * 0.8, 0.45 * tall)], top * shade * 0.85,
                   PERSON, z, t.obj)
    cv.polygon([px(-0.13 * tall, shoulder), px(0.13 * tall, shoulder), px(0.11 * tall, hip - 0.03 * tall),
                px(-0.11 * tall, hip - 0.03 * tall)], top * shade, PERSON, z, t.obj)
    cv.ellipse(cx, cy, *head, skin * shade, PERSON, z, t.obj)
    cv.rect(cx - 0.045 * tall * s, cx + 0.045 * tall * s, cy + 0.06 * tall * s, cy + 0.11 * tall * s,
            skin * shade * 0.9, PERSON, z, t.obj)


def _draw_tree(cv: _Canvas, w: _World, t: _Thing, z: float):
    if z <= _NEAR:
        return
    trunk_w, trunk_h, crown = t.size
    bark, leaves = t.colours
    s = cv.f / z
    fx, fy = cv.project(t.x, 0.0, z)
    half = max(trunk_w * s, cv.min_px * 0.75) / 2
    lit = bool(_in_sun(w, t.x, z + cv.cam_z))
    cv.rect(fx - half, fx + half, fy - (trunk_h + crown * 0.5) * s, fy, bark * w.light.shade(_TOWARDS_CAMERA, lit),
            VEGETATION, z)
    cx, cy = cv.project(t.x, trunk_h + crown * 0.9, z)
    r = crown * s
    if r < 3 * cv.min_px:  # far away: a plain crown
        cv.ellipse(cx, cy, r * 1.2, r, leaves * (w.light.ambient + (0.5 * w.light.direct if lit else 0.0)), VEGETATION, z)
        return
    blobs = t.extra[:8].reshape(4, 2)
    g = cv.box(cx - 1.6 * r, cx + 1.6 * r, cy - 1.4 * r, cy + 1.4 * r)
    if g is None:
        return
    r0, c0, yy, xx = g
    du, dv = (xx - cx) / r, (yy - cy) / r
    mask = du * du + dv * dv <= 1.0
    for bx, by in blobs:
        mask |= (du - bx) ** 2 + (dv - by) ** 2 <= 0.45
    # Clumps of leaves (a third of the crown's radius) with a grain of single leaves (~2 px).
    grain = 2.0 * cv.min_px / 2
    leaf = 0.65 * _value_noise(w.tables[0], du * 3 + t.extra[8], dv * 3 + t.extra[9]) + 0.35 * _cell_noise(
        w.tables[1], xx / grain + t.extra[8], yy / grain)
    sx, sy, _ = w.light.sun
    sunny = np.clip(0.5 + 0.35 * (du * sx - dv * sy), 0, 1) * (w.light.direct if lit else 0.0)
    shade = (w.light.ambient + sunny) * (0.55 + 0.9 * leaf)
    cv.paint(r0, c0, mask, _planar(leaves) * shade, VEGETATION, z)


def _draw_pole(cv: _Canvas, w: _World, t: _Thing, z: float):
    if z <= _NEAR:
        return
    width, height = t.size[0], t.size[1]
    s = cv.f / z
    fx, fy = cv.project(t.x, 0.0, z)
    half = max(width * s, cv.min_px) / 2
    lit = bool(_in_sun(w, t.x, z + cv.cam_z))
    shade = w.light.shade(_TOWARDS_CAMERA, lit)
    metal = t.colours[0] * shade
    cv.rect(fx - half, fx + half, fy - height * s, fy, metal, POLE, z)
    top = fy - height * s
    if t.kind == "streetlight":
        arm, towards = t.size[2], t.extra[0]
        ex = fx + towards * arm * s
        thick = max(0.12 * s, cv.min_px * 0.75)
        cv.rect(min(fx, ex), max(fx, ex), top, top + thick, metal, POLE, z)
        cv.ellipse(ex, top + thick, max(0.3 * s, cv.min_px), max(0.12 * s, cv.min_px * 0.6), metal * 1.3, POLE, z)
    elif t.kind == "sign":
        plate = max(t.size[2] * s, 3 * cv.min_px) / 2
        cy = top - plate * 0.8
        shape = int(t.extra[0])
        for scale, colour in ((1.0, t.colours[1]), (0.72, t.colours[2])):
            r = plate * scale
            colour = colour * shade
            if shape == 0:
                cv.ellipse(fx, cy, r, r, colour, POLE, z)
            elif shape == 1:
                cv.polygon([(fx - r, cy - 0.8 * r), (fx + r, cy - 0.8 * r), (fx, cy + r)], colour, POLE, z)
            elif shape == 2:
                cv.rect(fx - r, fx + r, cy - 0.7 * r, cy + 0.7 * r, colour, POLE, z)
            else:
                cv.polygon([(fx, cy - r), (fx + r, cy), (fx, cy + r), (fx - r, cy)], colour, POLE, z)
    else:  # traffic light: a dark box with one lamp lit
        bw, bh = max(t.size[2] * s, 2 * cv.min_px) / 2, max(0.9 * s, 5 * cv.min_px) / 2
        cy = top - bh
        cv.rect(fx - bw, fx + bw, cy - bh, cy + bh, t.colours[1], POLE, z)
        lit_lamp = int(t.extra[0])
        for i, colour in enumerate(((0.9, 0.1, 0.1), (0.95, 0.7, 0.1), (0.1, 0.85, 0.3))):
            c = np.array(colour, np.float32) * (1.0 if i == lit_lamp else 0.25)
            cv.ellipse(fx, cy + (i - 1) * bh * 0.62, bw * 0.6, bw * 0.6, c, POLE, z)


def _finish(cv: _Canvas, w: _World, rng: np.random.Generator) -> np.ndarray:
    """Haze, lens blur, sensor noise, exposure: float canvas to a uint8 picture."""
    light = w.light
    img = cv.image  # (3, H, W)
    haze = cv.depth / (cv.depth + np.float32(light.haze_distance)) * np.float32(0.8)
    img = img + (_planar(light.haze) - img) * haze
    # Separable blur [a, 1 - 2a, a] along rows and columns, borders replicated.
    a = np.float32(0.25 * light.blur)
    pad = np.concatenate([img[:, :1], img, img[:, -1:]], axis=1)
    img = pad[:, 1:-1] * (1 - 2 * a) + (pad[:, :-2] + pad[:, 2:]) * a
    pad = np.concatenate([img[:, :, :1], img, img[:, :, -1:]], axis=2)
    img = pad[:, :, 1:-1] * (1 - 2 * a) + (pad[:, :, :-2] + pad[:, :, 2:]) * a
    # Uniform sensor noise with the given standard deviation, plus 0.5 to round to nearest.
    grain = (rng.random(img.shape[1:], dtype=np.float32) - np.float32(0.5)) * np.float32(light.noise * 3.46 * 255) + 0.5
    img = img * _planar(light.exposure * light.white_balance * 255) + grain
    np.clip(img, 0, 255, out=img)
    out = np.empty(img.shape[1:] + (3,), np.uint8)  # (H, W, 3)
    np.copyto(out, img.transpose(1, 2, 0), casting="unsafe")
    return out


def _render(w: _World, height: int, width: int, frame: int, rng: np.random.Generator):
    """Image, labels, depth and instance ids of the world seen from the camera at clip frame ``frame``."""
    cam_z = w.camera.speed * frame
    cv = _Canvas(height, width, w, cam_z)
    _paint_sky(cv, w)
    _paint_ground(cv, w)
    _paint_backdrop(cv, w)
    for side in (w.left, w.right):
        _paint_side(cv, w, side)
    placed = [(t.z + t.speed * frame - cam_z, i) for i, t in enumerate(w.things)]
    for z, i in sorted(placed, reverse=True):
        t = w.things[i]
        if t.kind == "car":
            _draw_car(cv, w, t, z)
        elif t.kind == "person":
            _draw_person(cv, w, t, z, frame)
        elif t.kind == "tree":
            _draw_tree(cv, w, t, z)
        else:
            _draw_pole(cv, w, t, z)
    image = _finish(cv, w, rng)
    return image, cv.labels.astype(np.int64), cv.depth, cv.objects


def _check_size(height: int, width: int):
    if height < 16 or width < 16:
        raise ValueError(f"scenes need at least 16x16 pixels, got height={height}, width={width}")


def scene(seed: int, *, height: int = 256, width: int = 256) -> Scene:
    """Render one procedural street scene with its exact labels and depth.

    The seed fixes the whole street (camera, layout, colours, light, people, cars) and the sensor
    noise, so the same seed gives the same arrays on any machine; the size only changes the
    resolution, not the street. Rendering a 256 x 256 scene takes a few milliseconds.

    Args:
        seed: non-negative integer; use ``train_seed(i)`` / ``eval_seed(i)`` to keep splits apart.
        height: image height in pixels (at least 16).
        width: image width in pixels (at least 16).

    Returns:
        Scene with ``image`` (H, W, 3) uint8, ``labels`` (H, W) int64 indexing ``CLASSES``,
        ``depth`` (H, W) float32 metres (sky = ``SKY_DEPTH``) and ``seed``.

    Example:
        >>> s = scene(7, height=128, width=160)
        >>> s.image.shape, s.labels.max() < len(CLASSES)
        ((128, 160, 3), True)
    """
    _check_size(height, width)
    world = _sample_world(seed)
    image, labels, depth, _ = _render(world, height, width, 0, np.random.default_rng([seed, 0]))
    return Scene(image=image, labels=labels, depth=depth, seed=seed)


def clip(seed: int, *, frames: int = 12, height: int = 256, width: int = 256) -> Clip:
    """Render a short drive down the street of ``scene(seed)``: its first frame is that scene.

    The camera moves forward at the street's own speed, so the ground texture and everything
    standing still slides towards the camera and grows; the cars drive along their lanes at
    their own speeds (oncoming ones towards the camera) and people walk. Cars and people carry
    instance ids 1..K that stay the same in every frame; something that leaves the view or
    passes the camera simply disappears.

    Args:
        seed: non-negative integer, as for ``scene``.
        frames: number of frames T (at least 1).
        height: image height in pixels (at least 16).
        width: image width in pixels (at least 16).

    Returns:
        Clip with ``frames`` (T, H, W, 3) uint8, ``labels`` (T, H, W) int64, ``depth``
        (T, H, W) float32 metres, ``objects`` (T, H, W) int64 instance ids and ``seed``.

    Example:
        >>> c = clip(3, frames=4, height=64, width=96)
        >>> c.frames.shape, c.objects.shape
        ((4, 64, 96, 3), (4, 64, 96))
    """
    _check_size(height, width)
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got frames={frames}")
    world = _sample_world(seed)
    rendered = [_render(world, height, width, t, np.random.default_rng([seed, t])) for t in range(frames)]
    images, labels, depth, objects = (np.stack(parts) for parts in zip(*rendered))
    return Clip(frames=images, labels=labels, depth=depth, objects=objects, seed=seed)
