"""Deterministic generator of synthetic street scenes (the project's built-in data set).

Every image is a small street view: sky above a skyline of buildings, trees, a sidewalk
strip, a road with lane marks at the bottom, cars on the road and people and poles on the
sidewalk. A class is recognisable by its *texture* (window grids, leaf noise, paving tiles,
asphalt grain, smooth car bodies) and by its *context* (sky above, road below, cars on the
road), never by its colour: every object draws its colour from the same wide range, and
each image gets a global lighting gain, a colour cast and sensor noise.

The output is laid out like Cityscapes::

    ROOT/leftImg8bit/{train,val,train_extra}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    ROOT/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png
    ROOT/annotations/instances_{train,val}.json
    ROOT/meta.json

``train_extra`` is the unlabelled pool used for self-supervised pretraining. Labels are
train ids ``0..C-1`` with 255 for "void" clutter, exactly as Cityscapes' labelTrainIds.

Instance maps (16-bit PNGs) follow Cityscapes' instanceIds, on train ids: a pixel of a thing
class (car, person, pole) holds ``train_id * 1000 + k``, ``k`` counting that class's objects
in drawing order within the image; every other pixel holds its label (0..4 or 255). So
``instance_id // 1000 == label`` on thing pixels and ``instance_id == label`` elsewhere.
The COCO JSONs (``densessl.synthetic_instances_coco``) hold the thing instances for
detectron2.

Image ``k`` of split ``s`` depends only on ``(seed, s, k)``, so the set is identical
whatever order or process count generates it.
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from PIL import Image

from densessl.atomic_io import atomic_write, atomic_write_json

CLASSES = ('sky', 'building', 'vegetation', 'sidewalk', 'road', 'car', 'person', 'pole')
PALETTE = ((70, 130, 180), (70, 70, 70), (107, 142, 35), (244, 35, 232), (128, 64, 128),
           (0, 0, 142), (220, 20, 60), (153, 153, 153))
IGNORE_INDEX = 255
SKY, BUILDING, VEGETATION, SIDEWALK, ROAD, CAR, PERSON, POLE = range(len(CLASSES))
# Version 5 adds the instance maps and the COCO instance JSONs; images and semantic labels
# are byte-identical to version 4's.
GENERATOR_VERSION = 5
SPLITS = ('train', 'val', 'train_extra')
CITIES = ('aachen', 'bremen', 'cologne', 'dresden')
LABELLED_SPLITS = ('train', 'val')
THING_IDS = (CAR, PERSON, POLE)
INSTANCE_ID_OFFSET = 1000  # a thing pixel's instance id: train_id * 1000 + k
IMAGE_SUFFIX = '_leftImg8bit.png'
LABEL_SUFFIX = '_gtFine_labelTrainIds.png'
INSTANCE_SUFFIX = '_gtFine_instanceIds.png'


@dataclass
class SyntheticScenesConfig:
    """Size and seed of a generated set. Defaults: 200 + 60 labelled, 800 unlabelled images."""
    num_train: int = 200
    num_val: int = 60
    num_unlabeled: int = 800
    height: int = 128
    width: int = 256
    seed: int = 0

    def count(self, split):
        return {'train': self.num_train, 'val': self.num_val,
                'train_extra': self.num_unlabeled}[split]


# ----------------------------------------------------------------------------- textures
def _smooth_noise(rng, h, w, scale):
    """Value noise in [0, 1]: a coarse random grid upsampled bilinearly. (h, w) float32."""
    gh, gw = max(2, int(np.ceil(h / scale)) + 1), max(2, int(np.ceil(w / scale)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    ys = np.linspace(0, gh - 1.001, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1.001, w, dtype=np.float32)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def _random_colour(rng, hue_range, sat_range, val_range):
    """An RGB colour in [0, 1] from ranges of hue (degrees), saturation and value."""
    h = rng.uniform(*hue_range) % 360.0 / 60.0
    s, v = rng.uniform(*sat_range), rng.uniform(*val_range)
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return np.array(rgb, dtype=np.float32) + (v - c)


# Colour carries no class information: every class draws hue, saturation and value from the
# same range (version 4). Versions 1-3 gave some classes typical colours (bluish sky, green
# trees), a cue that an untrained network reads as well as a trained one; with it, a random
# ResNet was a linear-probe baseline that short CPU pretraining could not beat
# (docs/pretraining.md, "The SimCLR baseline on scene-centric data").
OBJECT_COLOUR_RANGE = ((0, 360), (0.0, 0.8), (0.2, 0.95))  # hue (degrees), saturation, value


def _colour(rng):
    """The colour of one object (any class)."""
    return _random_colour(rng, *OBJECT_COLOUR_RANGE)


def _paint(img, mask, colour, shade):
    """img[mask] = colour * shade[mask], shade a (h, w) luminance texture."""
    img[mask] = colour[None, :] * shade[mask][:, None]


def _mark(label, instances, mask, train_id, instance_index=None):
    """label[mask] = train_id; instances[mask] = train_id * 1000 + instance_index for a
    thing, else train_id. Like painting, a later mark overwrites an earlier one."""
    label[mask] = train_id
    if instance_index is None:
        instances[mask] = train_id
    else:
        instances[mask] = train_id * INSTANCE_ID_OFFSET + instance_index


# ----------------------------------------------------------------------------- scene
def render_scene(rng, height, width):
    """Render one scene. Returns (image uint8 (H, W, 3), label uint8 (H, W))."""
    img, label, _ = render_scene_with_instances(rng, height, width)
    return img, label


def render_scene_with_instances(rng, height, width):
    """Render one scene. Returns (image uint8 (H, W, 3), label uint8 (H, W), instance ids
    uint16 (H, W)). Tracking instances draws no random numbers: image and label are those of
    ``render_scene`` with the same ``rng`` state."""
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    label = np.full((h, w), SKY, np.uint8)
    instances = np.full((h, w), SKY, np.uint16)  # thing ids 5000..7999 fit a 16-bit PNG

    # Every image has its own zoom: texture periods and object sizes scale together, as
    # with a different camera distance or focal length.
    zoom = float(np.exp(rng.uniform(np.log(0.6), np.log(1.8))))
    horizon = int(h * rng.uniform(0.42, 0.55))           # where the ground starts
    road_top = horizon + int(h * rng.uniform(0.08, 0.16))  # sidewalk strip above the road

    # Sky: vertical gradient plus soft clouds.
    sky_shade = 1.0 - 0.35 * yy / h + 0.25 * (_smooth_noise(rng, h, w, 24 * zoom) - 0.5)
    _paint(img, np.ones((h, w), bool), _colour(rng), sky_shade)

    # Buildings: a skyline of blocks with window grids and floor lines.
    x = int(rng.integers(-20, 0))
    while x < w:
        bw = int(rng.integers(w // 8, w // 3))
        top = int(rng.uniform(0.05, 0.75) * horizon)
        block = (xx >= x) & (xx < x + bw) & (yy >= top) & (yy < horizon)
        px, py = max(3, int(rng.integers(5, 10) * zoom)), max(3, int(rng.integers(6, 11) * zoom))
        win = (((xx - x) % px) < px * rng.uniform(0.35, 0.6)) & (((yy - top) % py) < py * 0.5)
        shade = 1.0 + 0.12 * (_smooth_noise(rng, h, w, zoom) - 0.5)
        shade = np.where(win, rng.uniform(0.35, 0.65), shade)
        _paint(img, block, _colour(rng), shade)
        _mark(label, instances, block, BUILDING)
        x += bw + int(rng.integers(0, 12))

    # Ground: sidewalk tiles, then asphalt with lane marks.
    ground = yy >= horizon
    tile = max(3, int(rng.integers(5, 9) * zoom))
    tiles = ((xx % tile) < 1) | (((yy - horizon) % tile) < 1)
    shade = np.where(tiles, 0.55, 1.0) + 0.08 * (rng.random((h, w), dtype=np.float32) - 0.5)
    walk = ground & (yy < road_top)
    _paint(img, walk, _colour(rng), shade)
    _mark(label, instances, walk, SIDEWALK)
    road = yy >= road_top
    grain = 1.0 + 0.5 * (_smooth_noise(rng, h, w, zoom) - 0.5)
    lane_y = road_top + (h - road_top) * rng.uniform(0.45, 0.6)
    dash = max(4, int(rng.integers(10, 18) * zoom))
    marks = (np.abs(yy - lane_y) < 1.5) & (((xx + rng.integers(0, dash)) % dash) < dash * 0.55)
    grain = np.where(marks, 2.2, grain)
    _paint(img, road, _colour(rng), grain)
    _mark(label, instances, road, ROAD)

    # Trees: leafy crowns on trunks standing on the sidewalk, in front of buildings.
    for _ in range(int(rng.integers(1, 4))):
        cx, base = rng.uniform(0, w), rng.uniform(horizon, road_top)
        r = rng.uniform(0.08, 0.16) * h * 1.3 * min(zoom, 1.4)
        cy = base - rng.uniform(1.2, 1.8) * r
        crown = ((xx - cx) / r) ** 2 + ((yy - cy) / (0.85 * r)) ** 2 < 1.0
        crown &= _smooth_noise(rng, h, w, 3 * zoom) > 0.15  # ragged leafy edge
        trunk = (np.abs(xx - cx) < max(1.0, r * 0.12)) & (yy >= cy) & (yy < base)
        leaves = 0.45 + 0.9 * _smooth_noise(rng, h, w, 2 * zoom)
        _paint(img, trunk, _colour(rng) * 0.5, np.ones((h, w), np.float32))
        _paint(img, crown, _colour(rng), leaves)
        _mark(label, instances, trunk | crown, VEGETATION)

    # Poles and people on the sidewalk.
    for k in range(int(rng.integers(0, 4))):
        px, base = rng.uniform(0, w), rng.uniform(horizon + 2, road_top)
        top = base - rng.uniform(0.3, 0.5) * h
        pole = (np.abs(xx - px) < 1.6 * max(1.0, zoom)) & (yy >= top) & (yy < base)
        pole |= (yy >= top) & (yy < top + 2) & (xx >= px) & (xx < px + 8)  # lamp arm
        _paint(img, pole, _colour(rng), 0.9 + 0.2 * yy / h)
        _mark(label, instances, pole, POLE, k)
    for k in range(int(rng.integers(0, 4))):
        px, base = rng.uniform(0, w), rng.uniform(horizon + 3, road_top + 4)
        ph = rng.uniform(0.12, 0.2) * h * zoom
        body = (((xx - px) / (0.16 * ph)) ** 2 + ((yy - (base - 0.45 * ph)) / (0.45 * ph)) ** 2) < 1
        head = ((xx - px) ** 2 + (yy - (base - 0.95 * ph)) ** 2) < (0.12 * ph) ** 2
        shade = 1.0 - 0.5 * ((yy - (base - ph)) / ph > 0.55)  # darker legs
        _paint(img, body, _colour(rng), shade)
        _paint(img, head, np.array([0.85, 0.65, 0.5], np.float32) * rng.uniform(0.5, 1.1),
               np.ones((h, w), np.float32))
        _mark(label, instances, body | head, PERSON, k)

    # Cars on the road: smooth bodies with a window band, dark wheels, a highlight.
    for k in range(int(rng.integers(1, 4))):
        base = rng.uniform(road_top + 6, h)
        size = (0.45 + 0.9 * (base - road_top) / max(1.0, h - road_top)) * h * 0.16 * zoom
        cx, cw = rng.uniform(0, w), size * rng.uniform(2.0, 2.8)
        top = base - size
        body = (np.abs(xx - cx) < cw / 2) & (yy >= top + 0.35 * size) & (yy < base - 0.12 * size)
        cabin = (np.abs(xx - cx) < cw * 0.3) & (yy >= top) & (yy < top + 0.4 * size)
        wheels = np.zeros_like(body)
        for wx in (cx - cw * 0.3, cx + cw * 0.3):
            wheels |= ((xx - wx) ** 2 + (yy - (base - 0.15 * size)) ** 2) < (0.17 * size) ** 2
        shade = 1.0 + 0.3 * (1 - (yy - top) / size)
        shade = np.where(cabin & (np.abs(xx - cx) < cw * 0.26) & (yy > top + 0.08 * size), 0.35, shade)
        colour = _colour(rng)
        _paint(img, body | cabin, colour, shade)
        _paint(img, wheels, np.full(3, 0.08, np.float32), np.ones((h, w), np.float32))
        _mark(label, instances, body | cabin | wheels, CAR, k)

    # Void clutter (ignored in the labels, like Cityscapes' unlabelled pixels).
    for _ in range(int(rng.integers(0, 3))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(2, 6)
        blob = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r)
        _paint(img, blob, rng.random(3, dtype=np.float32), rng.random((h, w), dtype=np.float32))
        _mark(label, instances, blob, IGNORE_INDEX)

    # Photometric variation: lighting gain, colour cast, a brightness ramp, contrast,
    # focus blur, sensor noise.
    gain = rng.uniform(0.55, 1.35)
    cast = rng.uniform(0.75, 1.25, size=3).astype(np.float32)
    ramp = 1.0 + rng.uniform(-0.3, 0.3) * (xx / w - 0.5)
    img = img * gain * cast[None, None, :] * ramp[..., None]
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        img = ndimage.gaussian_filter(img, sigma=(rng.uniform(0.3, 1.2),) * 2 + (0,))
    # Noise strength varies smoothly over the image: a per-image constant would be a
    # shortcut that lets instance discrimination match two crops by noise level alone.
    noise_std = 0.005 + 0.05 * _smooth_noise(rng, h, w, 32)
    img += rng.normal(0, 1, size=img.shape).astype(np.float32) * noise_std[..., None]
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return img, label, instances


# ----------------------------------------------------------------------------- files
def image_stem(split, index):
    """Cityscapes-style stem: <city>_<seq>_<frame>."""
    city = CITIES[index % len(CITIES)]
    return city, f'{city}_{SPLITS.index(split):06d}_{index:06d}'


def image_path(root, split, index):
    city, stem = image_stem(split, index)
    return osp.join(root, 'leftImg8bit', split, city, stem + IMAGE_SUFFIX)


def label_path(root, split, index):
    city, stem = image_stem(split, index)
    return osp.join(root, 'gtFine', split, city, stem + LABEL_SUFFIX)


def instance_path(root, split, index):
    city, stem = image_stem(split, index)
    return osp.join(root, 'gtFine', split, city, stem + INSTANCE_SUFFIX)


def _rng_for(seed, split, index):
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def render_sample(config, split, index):
    """The (image, label) pair of one index; a pure function of (config, split, index)."""
    return render_scene(_rng_for(config.seed, split, index), config.height, config.width)


def render_sample_with_instances(config, split, index):
    """(image, label, instance ids) of one index; see ``render_scene_with_instances``."""
    return render_scene_with_instances(_rng_for(config.seed, split, index), config.height,
                                       config.width)


def _save_png(array, path):
    atomic_write(path, lambda f: Image.fromarray(array).save(f, format='PNG'), 'wb')


def meta_path(root):
    return osp.join(root, 'meta.json')


def _write_sample(root, config, split, index):
    """Render and save one sample's image (+ label and instance maps for labelled splits)."""
    img, label, instances = render_sample_with_instances(config, split, index)
    _save_png(img, image_path(root, split, index))
    if split in LABELLED_SPLITS:
        _save_png(label, label_path(root, split, index))
        _save_png(instances, instance_path(root, split, index))


def _write_sample_job(job):
    return _write_sample(*job)


def generate(root, config=None, progress=True, workers=1):
    """Write the whole set under ``root`` (skipping nothing: files are overwritten).

    Labelled splits get label maps, instance maps and a COCO JSON of their thing instances
    (``densessl.synthetic_instances_coco``). ``meta.json`` is written last, so its presence
    marks a complete set. ``workers`` > 1 renders in that many processes: the files are the
    same (a sample depends only on its index).
    """
    from densessl import synthetic_instances_coco  # imports this module
    config = config or SyntheticScenesConfig()
    jobs = [(root, config, s, i) for s in SPLITS for i in range(config.count(s))]
    pool = None
    if workers > 1:
        import multiprocessing
        pool = multiprocessing.get_context('fork').Pool(workers)
        done = pool.imap_unordered(_write_sample_job, jobs, chunksize=8)
    else:
        done = map(_write_sample_job, jobs)
    if progress:
        from tqdm import tqdm
        done = tqdm(done, total=len(jobs), desc=f'synthetic scenes -> {root}', unit='img')
    try:
        for _ in done:
            pass
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for split in LABELLED_SPLITS:
        synthetic_instances_coco.write_coco_json(root, split, num_images=config.count(split))
    meta = dict(asdict(config), classes=list(CLASSES), palette=[list(p) for p in PALETTE],
                ignore_index=IGNORE_INDEX, generator_version=GENERATOR_VERSION)
    atomic_write_json(meta, meta_path(root))
    return meta


def is_complete(root, config=None):
    """True when ``root`` holds a finished set generated with ``config`` (default config)."""
    config = config or SyntheticScenesConfig()
    try:
        with open(meta_path(root)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return (meta.get('generator_version') == GENERATOR_VERSION
            and all(meta.get(k) == v for k, v in asdict(config).items()))


def ensure(root, config=None, progress=True):
    """Generate the set under ``root`` unless a complete one with the same config is there."""
    if not is_complete(root, config):
        generate(root, config, progress=progress)
    return root
