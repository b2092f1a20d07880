"""Where ViCE's views lie in an image: standardisation, edge-density centre, von Mises placement.

Spec: ../shared/specs/pretrain.md 1(a) A, steps 1-4. Coordinates are integer pixels of the
standardised image; a box is ``(x0, y0, x1, y1)`` with exclusive ``x1, y1``.

1. ``standardize_image``: long side < ``min_side`` -> bicubic upsample to ``min_side``; the short
   side is centre-padded with black to ``min_side``; any side > ``max_side`` -> downscale so the
   long side is ``max_side``.
2. ``edge_density_pmf``: Canny (L2 gradient) on the 3x3-blurred grey image, dilated (3x3),
   blurred (3x3), in [0, 1], plus ``uniform_mass`` everywhere, normalised to sum 1. The centre
   view's centre is one pixel drawn from it.
3. ``sample_view_offsets``: view ``j = 1..V-1`` lies in angular sector ``j-1`` of width
   ``w = 2*pi/(V-1)``: ``theta_j = (j-1)*w + (vonMises(0, k_theta) + pi) * w / (2*pi)``;
   ``r_j = (vonMises(pi/2, k_r) + pi) * s_j / (4*pi)``, i.e. in ``[0, s_j/2]``, mode ``0.375 s_j``.
   Its centre is the centre view's centre plus ``r_j * (cos theta_j, sin theta_j)``.
4. ``common_rectangle``: intersection of all view boxes, optionally shrunk about its centre to
   at most ``max_area`` pixels.

Deviation from the original, on purpose: a view never leaves the image. The original clips the
view *centre* only, so a view larger than the image (sizes reach 1.5 x 400 = 600 px, while the
standardised short side can be 500 px) took black padding with label -1; here a view's size is
capped at the image's short side and its box is clipped to lie inside the image.
"""
import cv2
import numpy as np
from PIL import Image


def standardize_image(img, min_side, max_side):
    """Resize / pad a PIL RGB image so both sides are >= ``min_side`` and <= ``max_side``.

    Returns an RGB ``PIL.Image``. Images with an extreme aspect ratio can end with a short
    side below ``min_side`` after the downscale (the long side wins); views then shrink to it.
    """
    if min_side > max_side:
        raise ValueError(f'DENSE_SSL.STANDARDIZE_MIN_SIDE ({min_side}) must be <= '
                         f'STANDARDIZE_MAX_SIDE ({max_side})')
    if img.mode != 'RGB':
        img = img.convert('RGB')
    w, h = img.size
    if max(w, h) < min_side:
        scale = min_side / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        img = img.resize((w, h), Image.BICUBIC)
    if min(w, h) < min_side:
        padded = Image.new('RGB', (max(w, min_side), max(h, min_side)), (0, 0, 0))
        padded.paste(img, ((padded.width - w) // 2, (padded.height - h) // 2))
        img, (w, h) = padded, padded.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    return img


def edge_density_pmf(rgb, canny_low=10, canny_high=50, uniform_mass=0.005):
    """(H, W) float64 probability map favouring edges, from an (H, W, 3) uint8 RGB array."""
    grey = cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, canny_low, canny_high, L2gradient=True)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=1)
    density = cv2.GaussianBlur(edges, (3, 3), 0).astype(np.float64) / 255.0 + uniform_mass
    return density / density.sum()


def sample_pixel(pmf, rng):
    """Draw one pixel ``(x, y)`` from an (H, W) probability map."""
    flat = rng.choice(pmf.size, p=pmf.ravel())
    y, x = divmod(int(flat), pmf.shape[1])
    return x, y


def sample_view_sizes(view_n, view_size, resize_range, max_size, rng):
    """(V,) int sizes ``U(resize_range) * view_size``, each capped to ``[1, max_size]``."""
    lo, hi = resize_range
    sizes = np.round(rng.uniform(lo, hi, size=view_n) * view_size).astype(np.int64)
    return np.clip(sizes, 1, max_size)


def sample_view_offsets(sizes, kappa_theta, kappa_r, rng):
    """Angles and radii of views 1..V-1 around the centre view (spec step 3).

    ``sizes``: (V,) view sizes (entry 0 is the centre view, unused). Returns ``theta`` and
    ``r``, each (V-1,): ``theta[j-1]`` lies in sector ``[(j-1) w, j w]``, ``r[j-1]`` in
    ``[0, sizes[j] / 2]``.
    """
    n = len(sizes) - 1
    width = 2 * np.pi / n
    theta = np.arange(n) * width + (rng.vonmises(0.0, kappa_theta, size=n) + np.pi) * width / (2 * np.pi)
    r = (rng.vonmises(0.5 * np.pi, kappa_r, size=n) + np.pi) / (2 * np.pi) * (0.5 * np.asarray(sizes[1:]))
    return theta, r


def boxes_inside_image(centres, sizes, height, width):
    """(V, 4) int boxes of the given (V, 2) centres and (V,) sizes, shifted to lie in the image."""
    centres = np.asarray(centres, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.int64)
    x0 = np.floor(centres[:, 0] - sizes / 2).astype(np.int64)
    y0 = np.floor(centres[:, 1] - sizes / 2).astype(np.int64)
    x0 = np.clip(x0, 0, width - sizes)
    y0 = np.clip(y0, 0, height - sizes)
    return np.stack([x0, y0, x0 + sizes, y0 + sizes], axis=1)


def common_rectangle(boxes, max_area=None):
    """Intersection ``(x0, y0, x1, y1)`` of (V, 4) boxes, or ``None`` when it is empty.

    With ``max_area``, a larger rectangle is shrunk about its centre to at most that area.
    """
    boxes = np.asarray(boxes)
    x0, y0 = boxes[:, 0].max(), boxes[:, 1].max()
    x1, y1 = boxes[:, 2].min(), boxes[:, 3].min()
    if x1 <= x0 or y1 <= y0:
        return None
    w, h = x1 - x0, y1 - y0
    if max_area is not None and w * h > max_area:
        scale = np.sqrt(max_area / (w * h))
        dx = int(np.ceil((w - w * scale) / 2))
        dy = int(np.ceil((h - h * scale) / 2))
        x0, y0, x1, y1 = x0 + dx, y0 + dy, x1 - dx, y1 - dy
        if x1 <= x0 or y1 <= y0:
            return None
    return np.array([x0, y0, x1, y1], dtype=np.int64)


def sample_view_boxes(pmf, view_n, view_size, resize_range, kappa_theta, kappa_r, rng):
    """(V, 4) int view boxes inside the image of ``pmf`` (spec steps 2-3).

    View 0 is centred on a pixel drawn from ``pmf`` (then shifted inside the image); views
    1..V-1 are placed around view 0's (shifted) centre by ``sample_view_offsets``.
    """
    height, width = pmf.shape
    sizes = sample_view_sizes(view_n, view_size, resize_range, min(height, width), rng)
    cx, cy = sample_pixel(pmf, rng)
    centre_box = boxes_inside_image([[cx, cy]], sizes[:1], height, width)[0]
    cx, cy = (centre_box[0] + centre_box[2]) / 2, (centre_box[1] + centre_box[3]) / 2
    theta, r = sample_view_offsets(sizes, kappa_theta, kappa_r, rng)
    centres = np.concatenate([[[cx, cy]], np.stack([cx + r * np.cos(theta),
                                                    cy + r * np.sin(theta)], axis=1)])
    return boxes_inside_image(centres, sizes, height, width)
