"""U2PL's unsupervised losses (Wang et al., CVPR 2022), framework-free: entropy-drop CE on
reliable pseudo-labels and the contrastive loss with unreliable pixels as negatives.

Spec: shared/specs/semisup.md 2(a), 2(b) steps 7-10, 4.6 and 5.1-5.6. Entropy of a teacher
distribution p over C classes, per pixel:  H = -sum_k p_k log(p_k + 1e-10).

Percentiles are numpy's default (linear): for the n sorted values v, position
h = (n - 1) q / 100 and pct_q = v[floor h] + (h - floor h) (v[floor h + 1] - v[floor h]).

**Unsupervised loss** (``entropy_drop_ce``). Student logits (B, C, H, W), teacher pseudo-labels
(B, H, W) (ignore 255), teacher logits (B, C, H, W) for the entropy, alpha_t in percent:

    thr     = pct_{100 - alpha_t}(H over valid pixels of the batch)
    valid'  = valid and H < thr                   (the alpha_t % most uncertain are dropped)
    L_u     = (B H W / |valid'|) mean_{valid'} CE(student, y)

    alpha_t = (100 - drop_percent)(1 - t / T)     (``unreliable_percent``; 20 -> 0, t = epoch)

As the original: one percentile over the whole batch (``per_image=True``: one per image), and
H >= thr is dropped, so even at alpha_t = 0 the pixel(s) of maximal entropy go.

**Contrastive loss** (``u2pl_contrastive_loss``), everything at the representation resolution
(B = B_l + B_u images, labelled first; h x w): student features z (B, D, h, w), teacher
features z^T, teacher probabilities P (B, C, h, w) (train-mode forward on [x_l; x_u]), labels
y (gt for the labelled, pseudo-label for the unlabelled, ignore 255), low/high masks (B, h, w)
(``entropy_masks`` for the unlabelled with alpha_t = 20 (1 - t/T), ``low_entropy_percent``;
gt != 255 for the labelled; ``contrastive_targets`` builds y and both masks and
nearest-downsamples them), r_c = rank of class c in P sorted descending (0 = top):

    low_c     = [y = c] and low              high_c = [y = c] and high
    anchors_c = low_c and P_c > delta_p                       (student z; delta_p = 0.3)
    proto_c   = mean z^T over low_c                           (no gradient)
    neg_c     = high and P_c < delta_n and                    (teacher z^T; delta_n = 1)
                  labelled:   y valid, y != c, r_c < low_rank          (low_rank = 3)
                  unlabelled: low_rank <= r_c < high_rank              (high_rank = 20)

neg_c of all classes first enter the memory bank (``ClassMemoryBank``, FIFO per class; the
original also updates every queue *before* sampling, so negatives may include this batch).
Under the paper's rule a batch finds far more keys than the shipped rule (spec 5.5: ~12-19k per
class at 4 + 4 images), so only the last cap_c of each class are gathered from z^T at all.
Valid classes V = {c : low_c non-empty} (ascending). If |V| < 2 the loss is 0. Otherwise, for
each c in V with anchors and a non-empty queue c: Q = 256 anchors drawn uniformly with
replacement from anchors_c, Q x N (N = 50) negatives uniformly from queue c, and

    l_c = mean_q CE([cos(a_q, proto_c), cos(a_q, k_q1), ..., cos(a_q, k_qN)] / tau, 0)
    L_c = sum_c l_c / |V|                     (tau = 0.5; skipped classes count in |V|)

The DDP scaling (all_reduce, / world size, * loss_weight) is the caller's.

**The original's three bugs** (fixed by default; ``bug_compat=True`` reproduces all three, or
pass a set of the names below):
- ``'onehot'`` (spec 5.1): its ``label_onehot`` scatters along the wrong dimension, so for a
  half (labelled, unlabelled) of B > 1 images the first image of the half gets, per pixel, the
  union of the classes of all images of that half (an ignored pixel of image b > 0 counts as
  class 0), zeroed where the first image itself is ignored, and the other images get no class.
- ``'negatives'`` (spec 2(a), issue #171): the queue of class c takes pixels *of* class c,
  high_c and P_c < delta_n and (labelled: r_c < low_rank and y != c, which never holds, so no
  labelled negative ever enters; unlabelled: low_rank <= r_c < high_rank) instead of the
  paper's rule above (pixels confidently *not* of class c).
- ``'anchor_index'`` (spec 2(a), issue #111, measured in 5.6): the i-th valid class takes its
  anchors and prototype from class i (not from V[i]) and its negatives from queue V[i]; it is
  skipped if class i has no anchors or queue V[i] is empty. With V = {0, .., |V| - 1} both
  agree.

**Sampling**: every draw goes through ``sample_u2pl_indices`` (a ``torch.Generator``), or the
caller passes ``indices``: row i is the i-th valid class (in the order of V); ``anchors[i]``
(Q,) are positions in that row's anchor list (pixels in (b, y, x) raster order), and
``negatives[i]`` (Q, N) logical (oldest-first) positions in its queue. Rows of skipped classes
are ignored.

No-ops: classes absent from the batch, classes without anchors, empty queues and batches with
fewer than two valid classes add 0 with the graph to ``rep`` intact (``0 * rep.sum()``), as in
the original; never a crash. Vectorised over classes: one ``nonzero`` over (C, B, h, w) masks
for the negatives and the anchors, one matmul for the prototypes, one batched cosine for the
logits (the original loops over classes in Python). The new keys go from the teacher's rows
straight into the queues (``ClassMemoryBank.push_rows``), and the negative cosines are read
from the bank in place (sampled dot products and norms of its rows, no gathered
(S, Q, N, D) keys).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densessl.semisup.sampled_dots import pixel_rows, sampled_dots, sampled_row_norms

ENTROPY_EPS = 1e-10
COSINE_EPS = 1e-8
BUGS = frozenset({'onehot', 'negatives', 'anchor_index'})


# ------------------------------------------------------------------ schedules and entropies
def unreliable_percent(epoch, total_epochs, drop_percent=80.0):
    """alpha_t = (100 - drop_percent)(1 - epoch / total_epochs), in percent: the share of the
    valid pixels ``entropy_drop_ce`` drops (20 -> 0 with U2PL's drop_percent 80). The original
    passes the integer epoch (alpha_t is constant over an epoch)."""
    _check_epoch(epoch, total_epochs)
    if not 0 <= drop_percent <= 100:
        raise ValueError(f'drop_percent must be in [0, 100], got {drop_percent}')
    return (100.0 - drop_percent) * (1.0 - epoch / total_epochs)


def low_entropy_percent(epoch, total_epochs, low_entropy_threshold=20.0):
    """alpha_t = low_entropy_threshold (1 - epoch / total_epochs), in percent: the share of the
    unlabelled valid pixels taken as low- (and as high-) entropy by ``entropy_masks``."""
    _check_epoch(epoch, total_epochs)
    if not 0 <= low_entropy_threshold <= 100:
        raise ValueError(f'low_entropy_threshold must be in [0, 100], got '
                         f'{low_entropy_threshold}')
    return low_entropy_threshold * (1.0 - epoch / total_epochs)


def _check_epoch(epoch, total_epochs):
    if total_epochs <= 0 or not 0 <= epoch <= total_epochs:
        raise ValueError(f'need 0 <= epoch <= total_epochs and total_epochs > 0, got epoch '
                         f'{epoch}, total_epochs {total_epochs}')


def pixel_entropy(logits):
    """logits (B, C, ...) -> H (B, ...) = -sum_k p_k log(p_k + 1e-10), p = softmax over C, in
    float32, no gradient."""
    prob = torch.softmax(logits.detach().float(), dim=1)
    return -(prob * torch.log(prob + ENTROPY_EPS)).sum(dim=1)


def percentile_rows(values, valid, q):
    """numpy's linear percentile q (0..100) of each row over its valid entries.

    values (R, M) float, valid (R, M) bool -> (R,) float64 (+inf for a row without a valid
    entry). One sort for all rows.
    """
    if not 0 <= q <= 100:
        raise ValueError(f'percentile must be in [0, 100], got {q}')
    inf = torch.tensor(float('inf'), dtype=torch.float64, device=values.device)
    ordered = torch.where(valid, values.double(), inf).sort(dim=1).values
    num = valid.sum(dim=1)
    position = (num - 1).clamp_min(0).double() * (q / 100.0)
    low = position.floor().long()
    high = torch.minimum(low + 1, (num - 1).clamp_min(0))
    v_low = ordered.gather(1, low[:, None])[:, 0]
    v_high = ordered.gather(1, high[:, None])[:, 0]
    result = v_low + (position - low.double()) * (v_high - v_low)
    return torch.where(num > 0, result, inf)


# ------------------------------------------------------------------ unsupervised loss
def entropy_drop_ce(student_logits, pseudo_labels, teacher_logits, percent_unreliable,
                    ignore_index=255, per_image=False):
    """L_u of the module docstring.

    student_logits (B, C, H, W) with gradient; pseudo_labels (B, H, W) long (ignore_index =
    void; not modified); teacher_logits (B, C, H, W) whose entropy ranks the pixels (U2PL: the
    teacher's train-mode forward, upsampled); percent_unreliable alpha_t (0..100, see
    ``unreliable_percent``). per_image=False takes the percentile over the valid pixels of the
    whole batch (the original); True, per image. As in the original, pixels with H >= thr are
    dropped, so at alpha_t = 0 the pixel(s) of maximal entropy still go. Returns a scalar; 0
    (graph to the logits intact) when no pixel is left.
    """
    if student_logits.shape != teacher_logits.shape or \
            pseudo_labels.shape != student_logits.shape[:1] + student_logits.shape[2:]:
        raise ValueError(f'entropy_drop_ce: student {tuple(student_logits.shape)}, teacher '
                         f'{tuple(teacher_logits.shape)} and labels {tuple(pseudo_labels.shape)} '
                         f'must be (B, C, H, W) twice and (B, H, W)')
    num = pseudo_labels.shape[0]
    entropy = pixel_entropy(teacher_logits).reshape(num, -1)
    valid = (pseudo_labels != ignore_index).reshape(num, -1)
    rows = (entropy, valid) if per_image else (entropy.reshape(1, -1), valid.reshape(1, -1))
    threshold = percentile_rows(*rows, 100.0 - percent_unreliable).float()
    threshold = threshold[:, None] if per_image else threshold.reshape(1, 1)
    keep = valid & (entropy < threshold)
    num_kept = int(keep.sum())
    if num_kept == 0:
        return student_logits.sum() * 0.0
    target = torch.where(keep, pseudo_labels.reshape(num, -1),
                         torch.full_like(pseudo_labels.reshape(num, -1), ignore_index))
    ce = F.cross_entropy(student_logits, target.reshape(pseudo_labels.shape),
                         ignore_index=ignore_index)
    return ce * (pseudo_labels.numel() / num_kept)


# ------------------------------------------------------------------ contrastive loss inputs
@torch.no_grad()
def entropy_masks(teacher_logits, labels, percent, ignore_index=255):
    """Low- and high-entropy masks of the unlabelled half (spec 2(a)), at the logits'
    resolution: percentiles over the valid pixels of the whole batch,

        low  = valid and H <= pct_{percent}(H)        (the percent % most confident)
        high = valid and H >= pct_{100 - percent}(H)  (the percent % least confident)

    teacher_logits (B, C, H, W), labels (B, H, W) -> two (B, H, W) bool. The caller sets both
    masks of labelled images to (gt != ignore) and nearest-downsamples to the features.
    """
    entropy = pixel_entropy(teacher_logits)
    valid = labels != ignore_index
    flat_h, flat_v = entropy.reshape(1, -1), valid.reshape(1, -1)
    low_thr = percentile_rows(flat_h, flat_v, percent).float()
    high_thr = percentile_rows(flat_h, flat_v, 100.0 - percent).float()
    return valid & (entropy <= low_thr), valid & (entropy >= high_thr)


@torch.no_grad()
def contrastive_targets(labels_l, pseudo_labels_u, teacher_logits_u, percent, size,
                        ignore_index=255, negative_high_entropy=True):
    """The contrastive loss's labels and masks (spec 2(b) step 8), nearest-downsampled to the
    features' ``size`` (h, w) from the label resolution (H, W):

        labels = [gt; pseudo-labels]       low = [gt valid; low-entropy]
        high   = [gt valid; high-entropy]  (negative_high_entropy=False, U2PL's Table-4
                                            ablation: every unlabelled pixel)

    labels_l (B_l, H, W), pseudo_labels_u (B_u, H, W) long; teacher_logits_u (B_u, C, H, W) (the
    teacher's train-mode logits, upsampled); percent alpha_t (``low_entropy_percent``).
    Returns labels (B, h, w) long, low and high (B, h, w) bool, B = B_l + B_u.
    """
    low_u, high_u = entropy_masks(teacher_logits_u, pseudo_labels_u, percent, ignore_index)
    if not negative_high_entropy:
        high_u = torch.ones_like(high_u)
    valid_l = labels_l != ignore_index
    stacked = torch.stack([torch.cat([labels_l, pseudo_labels_u]),
                           torch.cat([valid_l, low_u]).long(),
                           torch.cat([valid_l, high_u]).long()], dim=1).float()
    small = F.interpolate(stacked, size=size, mode='nearest').long()
    return small[:, 0], small[:, 1].bool(), small[:, 2].bool()


def label_onehot(labels, num_classes, ignore_index=255, bug_compat=False):
    """labels (B, h, w) long -> (B, C, h, w) bool, all-false where ignored. bug_compat: the
    original's ``label_onehot`` (module docstring, ``'onehot'``): row 0 gets the union over
    all images (ignored pixels of other images as class 0), the other rows nothing."""
    valid = labels != ignore_index
    classes = torch.arange(num_classes, device=labels.device)[None, :, None, None]
    if not bug_compat:
        return (labels[:, None] == classes) & valid[:, None]
    as_class = torch.where(valid, labels, torch.zeros_like(labels))
    union = (as_class[:, None] == classes).any(dim=0) & valid[0][None]        # (C, h, w)
    out = torch.zeros(labels.shape[:1] + (num_classes,) + labels.shape[1:], dtype=torch.bool,
                      device=labels.device)
    out[0] = union
    return out


def _class_ranks(prob):
    """prob (B, C, h, w) -> (B, C, h, w) long: rank of each class at each pixel (0 = the most
    probable; descending sort, stable on ties). Sorted along a contiguous last dimension (a
    sort along the strided C is slower); the ranks are the order's inverse, written by one
    scatter (not a second sort)."""
    order = torch.sort(prob.permute(0, 2, 3, 1).contiguous(), dim=3, descending=True,
                       stable=True).indices                                  # (B, h, w, C)
    places = torch.arange(prob.shape[1], device=prob.device).expand_as(order)
    return torch.empty_like(order).scatter_(3, order, places).permute(0, 3, 1, 2)


@dataclass
class U2PLIndices:
    """Sampling positions of the contrastive loss, one row per valid class (order of V):
    ``anchors`` (R, Q) long into the row's anchor list, ``negatives`` (R, Q, N) long into its
    queue (oldest first)."""
    anchors: torch.Tensor
    negatives: torch.Tensor


def sample_u2pl_indices(anchor_counts, bank_counts, num_queries=256, num_negatives=50,
                        generator=None):
    """Uniform draws with replacement: anchor_counts, bank_counts (R,) long -> U2PLIndices with
    anchors[r] in [0, anchor_counts[r]) and negatives[r] in [0, bank_counts[r]) (0 for an empty
    row). ``generator``: a torch.Generator (its device is used), None = the global one. Drawn as
    floor(u * count), u ~ U[0, 1) in float64."""
    device = generator.device if generator is not None else anchor_counts.device
    rows = anchor_counts.shape[0]
    u_anchor = torch.rand(rows, num_queries, generator=generator, device=device,
                          dtype=torch.float64)
    u_negative = torch.rand(rows, num_queries, num_negatives, generator=generator,
                            device=device, dtype=torch.float64)
    anchor_counts = anchor_counts.to(device)
    bank_counts = bank_counts.to(device)

    def scale(u, counts):
        counts = counts.reshape((-1,) + (1,) * (u.dim() - 1))
        return torch.minimum((u * counts).floor().long(), (counts - 1).clamp_min(0))

    return U2PLIndices(scale(u_anchor, anchor_counts), scale(u_negative, bank_counts))


def _bug_set(bug_compat):
    if bug_compat is True:
        return BUGS
    if not bug_compat:
        return frozenset()
    bugs = frozenset(bug_compat)
    if not bugs <= BUGS:
        raise ValueError(f'bug_compat: unknown bug(s) {sorted(bugs - BUGS)}; known: '
                         f'{sorted(BUGS)}')
    return bugs


def _onehot_halves(labels, num_labeled, num_classes, ignore_index, bug):
    """One-hot of the labelled and the unlabelled half separately (as the original's two
    ``label_onehot`` calls)."""
    halves = [labels[:num_labeled], labels[num_labeled:]]
    return torch.cat([label_onehot(h, num_classes, ignore_index, bug) for h in halves if
                      h.shape[0]], dim=0)


@torch.no_grad()
def u2pl_negative_mask(prob, labels, onehot, high_mask, num_labeled, low_rank=3, high_rank=20,
                       negative_threshold=1.0, ignore_index=255, bug_compat=False):
    """neg (B, C, h, w) bool: pixel (b, y, x) is a negative key for class c (module docstring;
    bug_compat: the original's rule, ``'negatives'``). prob (B, C, h, w) teacher probabilities,
    labels (B, h, w), onehot (B, C, h, w) bool (from ``label_onehot``), high_mask (B, h, w)."""
    rank = _class_ranks(prob)
    labelled = torch.arange(prob.shape[0], device=prob.device)[:, None, None, None] < num_labeled
    top = rank < low_rank
    mid = (rank >= low_rank) & (rank < high_rank)
    base = high_mask[:, None] & (prob < negative_threshold)
    if bug_compat:
        # label == c (one-hot) and, for labelled pixels, also one-hot == 0: never both
        class_mask = torch.where(labelled, top & ~onehot, mid)
        return base & onehot & class_mask
    valid = (labels != ignore_index)[:, None]
    classes = torch.arange(prob.shape[1], device=prob.device)[None, :, None, None]
    class_mask = torch.where(labelled, top & (labels[:, None] != classes), mid)
    return base & valid & class_mask


def _class_major_pixels(mask):
    """mask (B, C, h, w) bool -> (class, b, y, x) (M,) long each, class-major then raster
    order (the order of the original's per-class ``tensor[mask_c]``), and (C,) counts."""
    cls, b, y, x = torch.nonzero(mask.permute(1, 0, 2, 3), as_tuple=True)
    return cls, b, y, x, torch.bincount(cls, minlength=mask.shape[1])


def _keep_last_per_class(cls, counts, capacities):
    """Of class-major rows, keep the last capacities[c] of each class (the only ones a queue
    of that size can keep, also after a gather that appends other processes' keys)."""
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(cls.numel(), device=cls.device) - first[cls]
    return rank >= (counts - capacities.to(counts.device)).clamp_min(0)[cls]


def _unit(vectors):
    """L2-normalise the last dim with F.cosine_similarity's floor (1e-8 on each norm), so that
    dot products of units are its cosines."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(COSINE_EPS)


def u2pl_contrastive_loss(rep, rep_teacher, prob_teacher, labels, low_mask, high_mask,
                          num_labeled, memory_bank, num_queries=256, num_negatives=50,
                          temperature=0.5, low_rank=3, high_rank=20,
                          current_class_threshold=0.3, current_class_negative_threshold=1.0,
                          ignore_index=255, bug_compat=False, indices=None, generator=None):
    """L_c of the module docstring; pushes this batch's negatives into ``memory_bank`` first.

    rep (B, D, h, w) student features (gradient); rep_teacher (B, D, h, w); prob_teacher
    (B, C, h, w) teacher softmax; labels (B, h, w) long [gt; pseudo-labels] at h x w;
    low_mask, high_mask (B, h, w) or (B, 1, h, w); num_labeled: B_l (the first B_l images);
    memory_bank: ``ClassMemoryBank`` with C classes and dimension D; bug_compat: False, True
    or a subset of {'onehot', 'negatives', 'anchor_index'}; indices: ``U2PLIndices`` (or a
    pair) with one row per valid class, None = ``sample_u2pl_indices(..., generator)``.

    Returns (loss, terms): terms has ``num_valid_classes`` (int), ``num_used_classes`` (int,
    rows that contributed), ``new_keys`` ((C,) long, the negatives this process found per
    class, before the gather and the truncation to the capacities).
    """
    bugs = _bug_set(bug_compat)
    num, dim, height, width = rep.shape
    num_classes = prob_teacher.shape[1]
    low_mask = low_mask.reshape(num, height, width).bool()
    high_mask = high_mask.reshape(num, height, width).bool()
    if rep_teacher.shape != rep.shape or prob_teacher.shape != (num, num_classes, height, width) \
            or labels.shape != (num, height, width):
        raise ValueError(f'u2pl_contrastive_loss: rep {tuple(rep.shape)}, rep_teacher '
                         f'{tuple(rep_teacher.shape)}, prob_teacher {tuple(prob_teacher.shape)} '
                         f'and labels {tuple(labels.shape)} disagree')
    if memory_bank.num_classes != num_classes or memory_bank.dim != dim:
        raise ValueError(f'u2pl_contrastive_loss: the memory bank has {memory_bank.num_classes} '
                         f'classes of dim {memory_bank.dim}, the batch {num_classes} of {dim}')
    zero = rep.sum() * 0.0
    rep_teacher = rep_teacher.detach()
    prob_teacher = prob_teacher.detach()

    with torch.no_grad():
        onehot = _onehot_halves(labels, num_labeled, num_classes, ignore_index,
                                'onehot' in bugs)
        low_valid = onehot & low_mask[:, None]
        negative = u2pl_negative_mask(prob_teacher, labels, onehot, high_mask, num_labeled,
                                      low_rank, high_rank, current_class_negative_threshold,
                                      ignore_index, 'negatives' in bugs)
        # 1. every queue takes its new keys (only the last capacity of each can stay)
        cls, b, y, x, counts = _class_major_pixels(negative)
        keep = _keep_last_per_class(cls, counts, memory_bank.capacities)
        cls, b, y, x = cls[keep], b[keep], y[keep], x[keep]
        # rows of a (B h w, D) layout: contiguous rows instead of D strided reads per key,
        # copied straight into the queues
        memory_bank.push_rows(pixel_rows(rep_teacher), (b * height + y) * width + x, cls)

        # 2. valid classes and the (anchor class, queue class) of each row
        low_counts = low_valid.sum(dim=(0, 2, 3))
        valid_classes = torch.nonzero(low_counts > 0).squeeze(1)
        num_valid = valid_classes.numel()
    terms = {'num_valid_classes': num_valid, 'num_used_classes': 0, 'new_keys': counts}
    if num_valid < 2:
        return zero, terms

    with torch.no_grad():
        queue_class = valid_classes
        anchor_class = (torch.arange(num_valid, device=rep.device) if 'anchor_index' in bugs
                        else valid_classes)
        anchor_mask = low_valid & (prob_teacher > current_class_threshold)
        a_cls, a_b, a_y, a_x, anchor_counts = _class_major_pixels(anchor_mask)
        row_anchor_counts = anchor_counts[anchor_class]
        row_bank_counts = memory_bank.counts.to(rep.device)[queue_class]
        used = (row_anchor_counts > 0) & (row_bank_counts > 0)
        if indices is None:
            indices = sample_u2pl_indices(row_anchor_counts, row_bank_counts, num_queries,
                                          num_negatives, generator)
        elif not isinstance(indices, U2PLIndices):
            indices = U2PLIndices(*indices)
        anchor_idx = indices.anchors.to(rep.device)
        negative_idx = indices.negatives.to(rep.device)
        if anchor_idx.shape != (num_valid, num_queries) or \
                negative_idx.shape != (num_valid, num_queries, num_negatives):
            raise ValueError(f'u2pl_contrastive_loss: indices {tuple(anchor_idx.shape)}, '
                             f'{tuple(negative_idx.shape)}; expected ({num_valid}, '
                             f'{num_queries}) and ({num_valid}, {num_queries}, {num_negatives}) '
                             f'for {num_valid} valid classes')
        rows = torch.nonzero(used).squeeze(1)
        anchor_idx, negative_idx = anchor_idx[rows], negative_idx[rows]
        _check_range('anchors', anchor_idx, row_anchor_counts[rows])
        _check_range('negatives', negative_idx, row_bank_counts[rows])
    terms['num_used_classes'] = int(rows.numel())
    if rows.numel() == 0:
        return zero, terms

    with torch.no_grad():
        first_anchor = torch.cumsum(anchor_counts, 0) - anchor_counts
        pick = first_anchor[anchor_class[rows]][:, None] + anchor_idx          # (S, Q)
        # prototypes: one batched matmul (B, S, h w) @ (B, h w, D), summed over the images
        weights = low_valid[:, anchor_class[rows]].flatten(2).float()           # (B, S, h w)
        sums = torch.bmm(weights, rep_teacher.float().flatten(2).transpose(1, 2)).sum(0)
        prototypes = _unit(sums / weights.sum(dim=(0, 2))[:, None])             # (S, D)
        # the keys stay in the bank: (S, Q, N) rows of its raw features
        keys = memory_bank.features
        slots = memory_bank.slots(queue_class[rows], negative_idx)             # (S, Q, N)
        if keys.device != rep.device or keys.dtype != torch.float32:   # gather just these
            keys = keys[slots.reshape(-1)].to(device=rep.device, dtype=torch.float32)
            slots = torch.arange(slots.numel(), device=rep.device).view(slots.shape)
        negative_norms = sampled_row_norms(keys, slots).clamp_min(COSINE_EPS)        # (S, Q, N)
    anchors = _unit(rep[a_b[pick], :, a_y[pick], a_x[pick]].float())           # (S, Q, D)
    positive_logit = anchors @ prototypes[:, :, None]                          # (S, Q, 1)
    # cosines with the stored (raw) keys: dots over their norms, no gathered (S, Q, N, D) keys
    negative_dots = sampled_dots(anchors.reshape(-1, dim), keys,
                                        slots.reshape(-1, slots.shape[2]))
    negative_logits = negative_dots.view(slots.shape) / negative_norms       # (S, Q, N)
    logits = torch.cat([positive_logit, negative_logits], dim=2) / temperature
    per_class = -torch.log_softmax(logits, dim=2)[..., 0].mean(dim=1)         # (S,)
    return per_class.sum() / num_valid + zero, terms


def _check_range(name, index, counts):
    if index.numel() == 0:
        return
    counts = counts.reshape((-1,) + (1,) * (index.dim() - 1))
    if bool((index < 0).any()) or bool((index >= counts).any()):
        raise ValueError(f'u2pl_contrastive_loss: {name} indices out of range for the '
                         f'candidate counts {counts.reshape(-1).tolist()}')
