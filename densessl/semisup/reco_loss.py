"""ReCo's losses (Liu et al., ICLR 2022, "Bootstrapping Semantic Segmentation with Regional
Contrast"), framework-free. Spec: shared/specs/semisup.md 1(a), 1(b) step 6-7, 4.6 and 5.

Regional contrast over the valid pixels V (``mask``) of a batch at the representation's
resolution, rep (B, D, h, w). V_c = pixels of V labelled c; the *present* classes P are those
with V_c non-empty, in ascending class order; the hard set of c is
H_c = {p in V_c : prob_c(p) < delta_s} (student softmax of the pixel's own class).

    rbar_c   = stopgrad(mean_{p in V_c} r_p)                     class mean ("prototype")
    p(j | c) = softmax_{j in P, j != c}( cos(rbar_c, rbar_j) / tau )   class-relation graph
    for each c in P with H_c non-empty, queries q = 1..Q:
        r_q ~ U(H_c) (with replacement, gradient kept)
        j_n ~ Cat(p(. | c)), k_n ~ U(V_{j_n}), n = 1..N  (with replacement, detached)
        l_cq = -log( e^{cos(r_q, rbar_c)/tau} / (e^{cos(r_q, rbar_c)/tau}
                                                 + sum_n e^{cos(r_q, r_{k_n})/tau}) )
    L_reco = 1/|P| sum_{c: H_c != {}} 1/Q sum_q l_cq,   0 if |P| < 2

The paper writes the unnormalised sum over classes and queries [recalled]; the code, followed
here, averages over the queries and divides by |P|, counting the classes without hard queries
(spec 1(a) step 5). Defaults: delta_s = 0.97, tau = 0.5, Q = 256, N = 512.

All randomness is in ``ReCoIndices`` (drawn by ``sample_reco_indices`` from a
``torch.Generator``, or injected), so the loss itself is deterministic. The spec lists no bug
of the original contrastive loss (5.7: every claim matched), so ``reco_loss`` has no
``bug_compat``; its no-op cases return a zero with a graph to ``rep``, so that backward always
works. ``confidence_weighted_ce`` has one (its docstring).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densessl.semisup.sampled_dots import pixel_rows, sampled_dots

COSINE_EPS = 1e-8  # F.cosine_similarity's eps: x / max(||x||, eps) on each side


@dataclass
class ReCoIndices:
    """The random draws of one ReCo loss evaluation (K present classes, Q queries, N negatives).

    ``classes`` (K,) the present class ids, ascending; row k of the others belongs to class
    ``classes[k]``. ``query`` (K, Q) position of each query in its class's hard set (raster
    (b, y, x) order; rows of classes without hard pixels are unused). ``negative_class``
    (K, Q, N) row (0..K-1, never k itself) of each negative's class; ``negative_index``
    (K, Q, N) its position in that class's valid set V_j (raster order).
    """
    classes: torch.Tensor
    query: torch.Tensor
    negative_class: torch.Tensor
    negative_index: torch.Tensor


@dataclass
class _Partition:
    """The valid pixels sorted by class (class-major, raster order within a class)."""
    classes: torch.Tensor      # (K,) present class ids
    pixels: torch.Tensor       # (P,) flat index (b h w + y w + x) of each valid pixel
    num_pixels: torch.Tensor   # (K,) |V_c|
    offsets: torch.Tensor      # (K,) start of V_c in ``pixels``
    hard: torch.Tensor         # (H,) positions in ``pixels`` of the hard pixels, class-major
    num_hard: torch.Tensor     # (K,) |H_c|
    hard_offsets: torch.Tensor  # (K,) start of H_c in ``hard``
    prototypes: torch.Tensor   # (K, D) float, detached


def _class_map(label, num_classes):
    """label (B, h, w) ids or (B, C, h, w) one-hot -> (B, h, w) long, -1 where not in 0..C-1
    (a one-hot pixel with no class set is -1)."""
    if label.dim() == 4:
        if label.shape[1] != num_classes:
            raise ValueError(f'one-hot label has {label.shape[1]} classes, prob {num_classes}')
        hot = label != 0
        return torch.where(hot.any(dim=1), hot.to(torch.uint8).argmax(dim=1), -1)
    label = label.long()
    return torch.where((label >= 0) & (label < num_classes), label, -1)


def _check_shapes(rep, label, mask, prob):
    if rep.dim() != 4 or prob.dim() != 4:
        raise ValueError(f'rep {tuple(rep.shape)} and prob {tuple(prob.shape)} must be 4-D')
    batch, _, height, width = rep.shape
    if prob.shape[0] != batch or prob.shape[2:] != rep.shape[2:]:
        raise ValueError(f'prob {tuple(prob.shape)} does not match rep {tuple(rep.shape)} '
                         f'(expected ({batch}, C, {height}, {width}))')
    spatial = (batch, height, width)
    if (label.shape[:1] + label.shape[-2:]) != spatial or label.dim() not in (3, 4):
        raise ValueError(f'label {tuple(label.shape)} must be (B, h, w) or (B, C, h, w) with '
                         f'(B, h, w) = {spatial}')
    if mask.shape not in (spatial, (batch, 1, height, width)):
        raise ValueError(f'mask {tuple(mask.shape)} must be (B, h, w) = {spatial}')


@torch.no_grad()
def _partition(rep, label, mask, prob, strong_threshold):
    """Sort the valid pixels by class; class means, hard sets (spec 1(a) ReCo steps 1-2).
    Pixel indices and detached means only: the loss gathers the rows it needs itself."""
    _check_shapes(rep, label, mask, prob)
    num_classes = prob.shape[1]
    classes_of_map = _class_map(label, num_classes).reshape(-1)
    classes_of_map = classes_of_map.masked_fill(mask.reshape(-1) == 0, -1)     # -1 = not in V
    member = classes_of_map == torch.arange(num_classes, device=rep.device)[:, None]
    class_of_pixel, pixel = member.nonzero(as_tuple=True)   # (P,) class-major, raster within
    counts = torch.bincount(class_of_pixel, minlength=num_classes)
    classes = counts.nonzero().squeeze(1)
    row = ((counts > 0).cumsum(0) - 1)[class_of_pixel]     # row of the pixel's class in classes
    place = rep.shape[2] * rep.shape[3]
    own_prob = prob.detach().flatten(2)[pixel // place, class_of_pixel, pixel % place]
    hard = (own_prob < strong_threshold).nonzero().squeeze(1)
    num_pixels = counts[classes]
    num_hard = torch.bincount(row[hard], minlength=classes.numel())
    prototypes = _class_sums(rep, member)[classes] / num_pixels[:, None]
    return _Partition(classes, pixel, num_pixels, num_pixels.cumsum(0) - num_pixels, hard,
                      num_hard, num_hard.cumsum(0) - num_hard, prototypes)


def _class_sums(rep, member):
    """rep (B, D, h, w), member (C, B h w) bool -> (C, D) float, row c = sum of the r_p with
    member[c, p]: one batched matmul of the per-image masks (B, C, h w) with the maps
    (B, h w, D), read in place (no gathered (P, D) copy)."""
    num_classes, batch = member.shape[0], rep.shape[0]
    weights = member.view(num_classes, batch, -1).transpose(0, 1).float()   # (B, C, h w)
    maps = rep.detach().float().flatten(2).transpose(1, 2)                  # (B, h w, D)
    return torch.bmm(weights, maps).sum(dim=0)


def class_relation(prototypes, temperature=0.5):
    """prototypes (K, D) -> (K, K) p(j | c): row c = softmax over j != c of
    cos(rbar_c, rbar_j) / tau, zero on the diagonal (K >= 2)."""
    unit = F.normalize(prototypes.float(), dim=1, eps=COSINE_EPS)
    logits = unit @ unit.t() / temperature
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return torch.softmax(logits.masked_fill(eye, float('-inf')), dim=1)


def _uniform_index(sizes, shape, generator, device):
    """Uniform integers in [0, sizes) (broadcast to ``shape``; 0 where a size is 0)."""
    draw = torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
    sizes = sizes.to(device)
    return (draw * sizes).long().minimum(sizes - 1).clamp_min(0)


@torch.no_grad()
def _draw(part, temperature, num_queries, num_negatives, generator):
    """All random draws of one loss evaluation, vectorised over classes and queries."""
    device = part.prototypes.device if generator is None else generator.device
    num = part.classes.numel()
    query = _uniform_index(part.num_hard[:, None], (num, num_queries), generator, device)
    if num >= 2:
        relation = class_relation(part.prototypes, temperature).to(device)
        negative_class = torch.multinomial(relation, num_queries * num_negatives,
                                           replacement=True, generator=generator)
        negative_class = negative_class.reshape(num, num_queries, num_negatives)
    else:  # no negatives exist; the loss is a no-op anyway
        negative_class = torch.zeros(num, num_queries, num_negatives, dtype=torch.long,
                                     device=device)
    negative_index = _uniform_index(part.num_pixels.to(device)[negative_class],
                                    negative_class.shape, generator, device)
    target = part.classes.device
    return ReCoIndices(part.classes.clone(), query.to(target), negative_class.to(target),
                       negative_index.to(target))


def sample_reco_indices(rep, label, mask, prob, strong_threshold=0.97, temperature=0.5,
                        num_queries=256, num_negatives=512, generator=None):
    """Draw the queries and negative keys of ``reco_loss`` for these inputs.

    Same inputs as ``reco_loss``; ``generator``: a torch.Generator (its device is where the
    draws happen) or None for the global RNG on rep's device. Returns ``ReCoIndices`` on
    rep's device. Queries are uniform over H_c, negative classes ~ p(j | c)
    (``class_relation``), negative pixels uniform over V_j; all with replacement.
    """
    with torch.no_grad():
        part = _partition(rep.detach(), label, mask, prob, strong_threshold)
    return _draw(part, temperature, num_queries, num_negatives, generator)


def _check_indices(indices, part, num_queries, num_negatives):
    num = part.classes.numel()
    if not torch.equal(indices.classes, part.classes):
        raise ValueError(f'indices are for classes {indices.classes.tolist()}, the batch has '
                         f'{part.classes.tolist()}')
    if (indices.query.shape != (num, num_queries)
            or indices.negative_class.shape != (num, num_queries, num_negatives)
            or indices.negative_index.shape != (num, num_queries, num_negatives)):
        raise ValueError(f'indices do not have the shapes (K, Q) = ({num}, {num_queries}) and '
                         f'(K, Q, N) = ({num}, {num_queries}, {num_negatives})')
    # full-size (K, Q, N) checks in few passes: an index out of range would gather garbage
    negative_class, negative_index = indices.negative_class, indices.negative_index
    if negative_class.numel():
        low, high = torch.aminmax(negative_class)
        rows = torch.arange(num, device=negative_class.device)[:, None, None]
        if low < 0 or high >= num or bool((negative_class == rows).any()):
            raise ValueError('a negative class row is out of range or the query\'s own class')
        if (negative_index.min() < 0
                or bool((negative_index >= part.num_pixels[negative_class]).any())):
            raise ValueError('a query or negative index is out of its class\'s range')
    hard_sizes = part.num_hard[:, None].expand_as(indices.query)
    if bool(((hard_sizes > 0) & ((indices.query < 0) | (indices.query >= hard_sizes))).any()):
        raise ValueError('a query or negative index is out of its class\'s range')


def _unit_pixel_rows(rep):
    """rep (B, D, h, w) -> (B h w, D) float, detached: each pixel's row r / max(||r||, eps),
    raster order."""
    rows = pixel_rows(rep.detach())
    return rows.div_(rows.norm(dim=1, keepdim=True).clamp_min(COSINE_EPS))


def reco_loss(rep, label, mask, prob, strong_threshold=0.97, temperature=0.5, num_queries=256,
              num_negatives=512, indices=None, generator=None):
    """L_reco (module docstring) -> scalar.

    rep (B, D, h, w) representations (the only input with gradient; it reaches the queries
    only); label (B, h, w) class ids (anything outside 0..C-1 is invalid) or (B, C, h, w)
    one-hot; mask (B, h, w) nonzero = valid pixel; prob (B, C, h, w) student softmax (used
    detached). ``indices``: ``ReCoIndices`` from ``sample_reco_indices`` with the same inputs
    and hyper-parameters, or None to draw them here from ``generator`` (None = global RNG).
    Fewer than 2 present classes, or no hard pixel in any class: 0 with a graph to rep.

    Cosines are dots of unit rows: the queries (Ka Q, D) are gathered with their gradient and
    normalised, the keys are every pixel's row of rep, normalised once (B h w, D); the
    negative dots go through ``sampled_dots`` (``densessl.semisup.sampled_dots``).
    """
    part = _partition(rep, label, mask, prob, strong_threshold)
    num_present = part.classes.numel()
    if num_present < 2 or not bool((part.num_hard > 0).any()):
        return rep.sum() * 0.0
    if indices is None:
        indices = _draw(part, temperature, num_queries, num_negatives, generator)
    else:
        device = rep.device
        indices = ReCoIndices(indices.classes.to(device), indices.query.to(device),
                              indices.negative_class.to(device), indices.negative_index.to(device))
        _check_indices(indices, part, num_queries, num_negatives)
    active = (part.num_hard > 0).nonzero().squeeze(1)                       # (Ka,)
    query_pixel = part.pixels[part.hard[part.hard_offsets[active, None]
                                        + indices.query[active]]]           # (Ka, Q)
    place = rep.shape[2] * rep.shape[3]
    queries = rep.flatten(2)[query_pixel // place, :, query_pixel % place].float()
    # unit queries over tau, r / (max(||r||, eps) tau): their dots with unit keys are logits
    queries = queries / (queries.norm(dim=2, keepdim=True).clamp_min(COSINE_EPS) * temperature)
    positives = F.normalize(part.prototypes[active], dim=1, eps=COSINE_EPS)
    positive_logit = torch.bmm(queries, positives[:, :, None]).reshape(-1, 1)   # (Ka Q, 1)
    key_pixel = part.pixels[part.offsets[indices.negative_class] + indices.negative_index]
    if active.numel() < num_present:                                        # (Ka, Q, N)
        key_pixel = key_pixel[active]
    keys = _unit_pixel_rows(rep)                                            # (B h w, D)
    negative_logit = sampled_dots(queries.reshape(-1, keys.shape[1]), keys,
                                         key_pixel.reshape(-1, num_negatives))
    logits = torch.cat([positive_logit, negative_logit], dim=1)            # (Ka Q, 1 + N)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    total = F.cross_entropy(logits, target, reduction='sum')
    return total / (num_present * num_queries)


def confidence_weighted_ce(logits, pseudo_label, confidence, threshold=0.97, ignore_index=255,
                           bug_compat=False):
    """ReCo's unsupervised loss L_u (spec 1(a)) -> scalar.

    logits (B, C, H, W) student logits at the label's size (the caller upsamples); pseudo_label
    (B, H, W) long, valid where in 0..C-1 and != ignore_index; confidence (B, H, W) teacher
    confidence carried through the same augmentation. With valid pixels U and U_b of image b:

        w_b = |{p in image b : c_p >= delta_s}| / |U_b|    (0 if U_b is empty)
        L_u = sum_{b, p in U_b} w_b CE(z_p, yhat_p) / |U|

    The numerator of w_b counts *all* confident pixels, as the spec defines it (the original
    zeroes the confidence wherever it sets yhat = -1, so w_b <= 1 there). No per-pixel
    confidence mask. ``bug_compat=True``: divide by |{p : CE_p > 0}| instead of |U|, as the
    original does (its mean over positive losses also drops valid pixels whose CE underflows to
    exactly 0, so the normaliser depends on float rounding). Nothing valid: 0 with a graph to
    logits in both modes (the original returns NaN there).
    """
    if logits.dim() != 4 or pseudo_label.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f'pseudo_label {tuple(pseudo_label.shape)} must be (B, H, W) of logits '
                         f'{tuple(logits.shape)} (upsample the logits first)')
    if confidence.shape != pseudo_label.shape:
        raise ValueError(f'confidence {tuple(confidence.shape)} does not match pseudo_label '
                         f'{tuple(pseudo_label.shape)}')
    pseudo_label = pseudo_label.long()
    valid = ((pseudo_label >= 0) & (pseudo_label < logits.shape[1])
             & (pseudo_label != ignore_index))
    batch = logits.shape[0]
    num_valid = valid.reshape(batch, -1).sum(dim=1)
    num_confident = (confidence >= threshold).reshape(batch, -1).sum(dim=1)
    weight = torch.where(num_valid > 0, num_confident / num_valid.clamp_min(1), 0.0)  # (B,)
    target = torch.where(valid, pseudo_label, -100)
    loss = F.cross_entropy(logits, target, reduction='none', ignore_index=-100)  # 0 if invalid
    denominator = (loss > 0).sum() if bug_compat else num_valid.sum()
    if int(denominator) == 0:
        return logits.sum() * 0.0
    return (weight[:, None, None].to(loss.dtype) * loss).sum() / denominator
