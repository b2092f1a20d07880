"""Labelled / unlabelled splits: U2PL's split files and sizes, ReCo's class-balanced sampler.
Spec: shared/specs/semisup.md 1(a) "Labelled-subset sampling", 1(e) item 1, 2(a) "Splits",
4.1 and 4.8.

**Split files.** One image id per line, UTF-8, ``\\n``-terminated; blank lines are skipped.
A split folder holds ``labeled.txt`` and ``unlabeled.txt`` (U2PL's names, so its
``data/splits/<dataset>/<size>/`` folders drop in; ``labelled.txt`` is also read). Ids are the
data set's image ids: Pascal ``2007_000032``, Cityscapes-layout sets (Cityscapes, the
synthetic scenes) the file stem ``aachen_000000_000019`` (without ``_leftImg8bit.png``).
U2PL's Cityscapes files list ``leftImg8bit/train/<city>/<stem>_leftImg8bit.png`` paths:
read them with ``line_to_id=id_from_u2pl_line``.

**Standard sizes** (U2PL, :data:`U2PL_SPLIT_SIZES`): each is ``ceil(N / d)`` for
``d = 16, 8, 4, 2`` of its labelled pool (:func:`count_for_fraction`): Pascal "classic"
92 / 183 / 366 / 732 (+ 1464 = all) of the 1,464 VOC train images, the unlabelled set being the
rest of the 10,582-image aug set; Pascal "blended" 662 / 1323 / 2646 / 5291 of the 10,582;
Cityscapes 186 / 372 / 744 / 1488 of the 2,975 fine train images.

**ReCo's class-balanced sampler** (:func:`class_balanced_subset`; ``get_pascal_idx`` /
``get_cityscapes_idx``). With ``count[c]`` the labelled images containing class ``c``:

1. shuffle the ids; 2. pop the last id of the pool (when the pool is empty, the rejected ids
become the pool, in their rejection order); 3. accept it if it has at least ``min_classes``
valid classes (3 for Pascal, 12 for Cityscapes) and contains a class of
``fill = argmin_c count[c]`` (all minimisers); otherwise put it on the rejected list;
4. after an acceptance, ``count[c] += 1`` for its classes and ``fill`` is recomputed; repeat
until ``num`` images are accepted. The unlabelled set is every other id.

Made deterministic and total here (decided; the spec asks for fixed splits):

- the ids are **sorted** before a ``numpy`` permutation seeded by ``seed`` (the original
  shuffles a ``glob`` listing with Python's ``random``, so the same seed picks different images
  on different file systems, spec 1(e) item 1);
- ``fill`` is the argmin over the classes still *available*, i.e. present in an eligible
  (``>= min_classes``) image not yet labelled. Where the original terminates this is the same
  set of acceptable images (an unavailable class can never be matched); where all its
  minimisers are unavailable (a class absent from the data, or whose images are all taken) the
  original loops forever, and this one goes on with the available classes;
- fewer eligible images than ``num`` raise ``ValueError`` (the original would loop forever).

The SUN RGB-D variant (per-class image lists) is not implemented.
"""
import math
import os
import os.path as osp

import numpy as np

from densessl.atomic_io import atomic_write_text

LABELLED_FILE = 'labeled.txt'
UNLABELLED_FILE = 'unlabeled.txt'
LABELLED_FILE_ALIASES = ('labeled.txt', 'labelled.txt')
U2PL_SPLIT_SIZES = {
    'pascal_classic': (92, 183, 366, 732, 1464),
    'pascal_blended': (662, 1323, 2646, 5291),
    'cityscapes': (186, 372, 744, 1488),
}
U2PL_LABELLED_POOL = {'pascal_classic': 1464, 'pascal_blended': 10582, 'cityscapes': 2975}
U2PL_TRAIN_SET = {'pascal_classic': 10582, 'pascal_blended': 10582, 'cityscapes': 2975}
U2PL_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
RECO_MIN_CLASSES = {'pascal': 3, 'cityscapes': 12}
RECO_LABEL_COUNTS = {'pascal': (60, 200, 600), 'cityscapes': (20, 50, 150),
                     'sun': (50, 150, 500)}
CITYSCAPES_IMAGE_SUFFIX = '_leftImg8bit.png'


class SplitError(ValueError):
    """A split file that does not fit the data set; ``path`` and ``image_id`` name the cause."""

    def __init__(self, message, path=None, image_id=None):
        super().__init__(message)
        self.path = path
        self.image_id = image_id


# ----------------------------------------------------------------------------- split files
def id_from_u2pl_line(line):
    """U2PL's split line -> image id: ``leftImg8bit/train/aachen/aachen_000000_000019_
    leftImg8bit.png`` -> ``aachen_000000_000019``; a bare id (Pascal) is returned as is."""
    name = line.strip().replace('\\', '/').rsplit('/', 1)[-1]
    for suffix in (CITYSCAPES_IMAGE_SUFFIX, '.png', '.jpg'):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def read_split(path, available_ids=None, line_to_id=None):
    """The ids of a split file, in file order.

    Raises :class:`SplitError` for a duplicated id and, with ``available_ids`` (any container
    of the data set's ids), for the first id not among them, naming the file, the line and the
    number of missing ids. ``line_to_id`` converts each stripped line (default: as is).
    """
    with open(path, encoding='utf-8') as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, start=1)]
    entries = [(n, line_to_id(line) if line_to_id else line) for n, line in lines if line]
    seen = {}
    for n, image_id in entries:
        if image_id in seen:
            raise SplitError(f'{path}: line {n}: id {image_id!r} already on line '
                             f'{seen[image_id]}', path, image_id)
        seen[image_id] = n
    if available_ids is not None:
        available = available_ids if isinstance(available_ids, (set, frozenset, dict)) \
            else set(available_ids)
        missing = [(n, i) for n, i in entries if i not in available]
        if missing:
            n, first = missing[0]
            raise SplitError(f'{path}: line {n}: image id {first!r} is not in the data set '
                             f'({len(missing)} of {len(entries)} ids missing; wrong root, '
                             'split or id format?)', path, first)
    return [image_id for _, image_id in entries]


def write_split(path, ids):
    """Write ``ids`` one per line, atomically (a reader sees the old or the whole new file).
    Raises ``ValueError`` for a duplicate or an id that is empty or contains a line break or
    surrounding spaces (it would not read back)."""
    ids = [str(i) for i in ids]
    for i in ids:
        if not i or i != i.strip() or '\n' in i or '\r' in i:
            raise ValueError(f'write_split: id {i!r} would not survive a round trip')
    if len(set(ids)) != len(ids):
        dup = next(i for n, i in enumerate(ids) if i in ids[:n])
        raise ValueError(f'write_split: id {dup!r} is listed twice')
    return atomic_write_text(''.join(f'{i}\n' for i in ids), path)


def labelled_split_path(folder):
    """``folder/labeled.txt`` or ``folder/labelled.txt`` (SplitError if neither or both)."""
    found = [osp.join(folder, name) for name in LABELLED_FILE_ALIASES
             if osp.isfile(osp.join(folder, name))]
    if len(found) != 1:
        raise SplitError(f'{folder}: expected exactly one of {LABELLED_FILE_ALIASES}, found '
                         f'{[osp.basename(p) for p in found]}', folder)
    return found[0]


def split_ids(labelled_path, all_ids, unlabelled_path=None, line_to_id=None):
    """(labelled, unlabelled) id lists for the data set's ``all_ids``.

    Labelled: the file's ids (all must be in ``all_ids``). Unlabelled: the file's ids if
    ``unlabelled_path`` is given, otherwise every id of ``all_ids`` not labelled, in
    ``all_ids`` order. Overlapping files raise :class:`SplitError`.
    """
    available = set(all_ids)
    labelled = read_split(labelled_path, available, line_to_id)
    chosen = set(labelled)
    if unlabelled_path is None:
        return labelled, [i for i in all_ids if i not in chosen]
    unlabelled = read_split(unlabelled_path, available, line_to_id)
    both = [i for i in unlabelled if i in chosen]
    if both:
        raise SplitError(f'{unlabelled_path}: id {both[0]!r} is also in {labelled_path} '
                         f'({len(both)} shared)', unlabelled_path, both[0])
    return labelled, unlabelled


def read_split_dir(folder, all_ids, line_to_id=None):
    """:func:`split_ids` of a split folder (``labeled.txt`` [+ ``unlabeled.txt``])."""
    unlabelled = osp.join(folder, UNLABELLED_FILE)
    return split_ids(labelled_split_path(folder), all_ids,
                     unlabelled if osp.isfile(unlabelled) else None, line_to_id)


def write_split_dir(folder, labelled, unlabelled):
    """Write ``labeled.txt`` and ``unlabeled.txt`` under ``folder`` (created if needed)."""
    overlap = set(labelled) & set(unlabelled)
    if overlap:
        raise ValueError(f'write_split_dir: ids in both sets, e.g. {sorted(overlap)[0]!r}')
    os.makedirs(folder, exist_ok=True)
    return (write_split(osp.join(folder, LABELLED_FILE), labelled),
            write_split(osp.join(folder, UNLABELLED_FILE), unlabelled))


# ----------------------------------------------------------------------------- sizes
def count_for_fraction(total, fraction):
    """``ceil(total * fraction)`` (U2PL's sizes: 2975 / 16 -> 186, 10582 / 16 -> 662), with
    the product rounded to 9 decimals first so float noise cannot add an image."""
    if not 0 < fraction <= 1:
        raise ValueError(f'count_for_fraction: fraction {fraction} not in (0, 1]')
    return min(total, math.ceil(round(total * fraction, 9)))


# ----------------------------------------------------------------------------- sampling
def shuffled_ids(ids, seed):
    """``sorted(ids)`` permuted by ``numpy.random.default_rng(seed)``: independent of the
    order the ids were listed in."""
    ordered = sorted(ids)
    return [ordered[k] for k in np.random.default_rng(seed).permutation(len(ordered))]


def random_subset(ids, num, seed):
    """The first ``num`` of :func:`shuffled_ids` (a uniform random subset), sorted."""
    ids = list(ids)
    if not 0 <= num <= len(ids):
        raise ValueError(f'random_subset: cannot pick {num} of {len(ids)} ids')
    return sorted(shuffled_ids(ids, seed)[:num])


def image_classes(label, ignore_index=255):
    """The valid class ids of a label map (values other than ``ignore_index``), as a
    frozenset of ints."""
    values = np.unique(np.asarray(label))
    return frozenset(int(v) for v in values if v != ignore_index)


def class_balanced_subset(class_sets, num, seed, min_classes):
    """ReCo's class-balanced labelled subset (module docstring), in acceptance order.

    ``class_sets``: mapping id -> iterable of the image's valid class ids (e.g. from
    :func:`image_classes`); its order does not matter. ``min_classes``: 3 Pascal, 12
    Cityscapes (:data:`RECO_MIN_CLASSES`). Raises ``ValueError`` when fewer than ``num``
    images have ``min_classes`` classes.
    """
    classes = {i: frozenset(int(c) for c in cs) for i, cs in class_sets.items()}
    eligible = {i for i, cs in classes.items() if len(cs) >= min_classes}
    if num > len(eligible):
        raise ValueError(f'class_balanced_subset: {num} images asked for, but only '
                         f'{len(eligible)} of {len(classes)} have >= {min_classes} classes '
                         '(lower min_classes, e.g. 1, or sample at random)')
    if num <= 0:
        return []
    num_classes = 1 + max((max(cs) for cs in classes.values() if cs), default=0)
    counts = np.zeros(num_classes, dtype=np.int64)
    available = np.zeros(num_classes, dtype=np.int64)  # eligible unlabelled images with c
    for i in eligible:
        available[list(classes[i])] += 1
    pool, rejected, accepted = shuffled_ids(classes, seed), [], []

    def fill():
        open_counts = np.where(available > 0, counts, np.iinfo(np.int64).max)
        return set(np.flatnonzero(open_counts == open_counts.min()).tolist())

    label_fill = fill()
    while len(accepted) < num:
        if not pool:
            pool, rejected = rejected, []
        image_id = pool.pop()
        mine = classes[image_id]
        if image_id in eligible and (not accepted or mine & label_fill):
            accepted.append(image_id)
            counts[list(mine)] += 1
            available[list(mine)] -= 1
            label_fill = fill()
        else:
            rejected.append(image_id)
    return accepted
