"""SlotCon's losses: per-pixel self-distillation of the score maps and slot-level contrast.

Spec: shared/specs/pretrain.md 2(a) and section 6 item 7. Two views v = 1, 2 of each of B
images; the student (s) and the teacher (t) each give per view slots (B, K, D), the score map
``dots`` (B, K, H, W) and the map aligned to the views' overlap (``alignment.py``).

Grouping loss (DINO-style, over the aligned pixels p = (b, h, w) of both views):

    L_g(a -> b) = 1/|P| sum_p sum_k -softmax_k((t^b_p - c) / tau_t) log softmax_k(s^a_p / tau_s)

with tau_s = 0.1, tau_t = 0.07 and the centre c (1, K); after the step the caller moves c
towards the mean teacher score of this batch (unaligned maps, both views, all processes):

    c <- m c + (1 - m) mean_{v, b, h, w} t^v_{b,:,h,w},      m = 0.9

Slot validity and query selection: slot k of image b is *valid* in a map if prototype k is
the argmax over k of at least one pixel. A query of the direction a -> b is a student slot of
view a valid in view a by the *student's* map and in view b by the *teacher's* map.

Slot contrastive loss (InfoNCE over the teacher slots of the other view, tau_c = 0.2):

    q_i = normalise(predictor(student slot of query i)),   keys: normalise(teacher slots of
    view b) of all processes, valid ones only (in process-major, then b, then k order)
    L_c = 2 tau_c * mean_i -log( exp(q_i . k_{l_i} / tau_c) / sum_j exp(q_i . k_j / tau_c) )

where l_i is the position of query i's own (image, prototype) among the valid gathered keys,
built for all queries at once as cumsum(valid)[rank * B K + b K + k] - 1.

Total:  L = w [L_g(1 -> 2) + L_g(2 -> 1)] + (1 - w) [L_c(q1, k2) + L_c(q2, k1)],  w = 0.5,
with the centre from *before* this step's update.

Everything runs on one process without torch.distributed; when it is initialised, the keys
(and their validity) are all-gathered and the batch centre all-reduced.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F


def _distributed():
    return dist.is_available() and dist.is_initialized()


def _default_all_gather(tensor):
    """Concatenate ``tensor`` of every process along dim 0, without gradient (identity on one
    process; equal shapes on all processes, as torch.distributed.all_gather requires)."""
    tensor = tensor.detach()
    if not _distributed() or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def slot_validity(dots):
    """dots (B, K, H, W) -> (B, K) bool: prototype k is the argmax of at least one pixel
    (first index on ties, as torch.argmax)."""
    num, num_prototypes = dots.shape[:2]
    winners = dots.detach().flatten(2).argmax(dim=1)                        # (B, HW)
    valid = torch.zeros(num, num_prototypes, dtype=torch.bool, device=dots.device)
    return valid.scatter_(1, winners, True)


def query_selection(student_dots_a, teacher_dots_b):
    """(B, K, H, W) twice -> (B, K) bool: slots valid in view a by the student's map and in
    view b by the teacher's map (spec 6.7); these are the queries of L_c(q_a, k_b)."""
    return slot_validity(student_dots_a) & slot_validity(teacher_dots_b)


def grouping_loss(student_dots, teacher_dots, center, student_temp=0.1, teacher_temp=0.07):
    """L_g: both (B, K, H, W) aligned score maps, center (1, K) -> scalar (mean over b, h, w
    of the cross-entropy over k; no gradient to the teacher)."""
    if student_dots.shape != teacher_dots.shape:
        raise ValueError(f'grouping_loss: student {tuple(student_dots.shape)} and teacher '
                         f'{tuple(teacher_dots.shape)} maps differ')
    center = center.reshape(1, -1, 1, 1)
    targets = torch.softmax((teacher_dots.detach() - center) / teacher_temp, dim=1)
    log_probs = F.log_softmax(student_dots / student_temp, dim=1)
    return -(targets * log_probs).sum(dim=1).mean()


@torch.no_grad()
def batch_center(teacher_dots_list):
    """[(B, K, H, W), ...] unaligned teacher maps of the views -> (1, K): mean over views, b, h
    and w (and over processes, all-reduced, when torch.distributed is initialised)."""
    total = sum(dots.float().sum(dim=(0, 2, 3)) for dots in teacher_dots_list)
    count = sum(dots.numel() // dots.shape[1] for dots in teacher_dots_list)
    if _distributed() and dist.get_world_size() > 1:
        dist.all_reduce(total)
        count *= dist.get_world_size()
    return (total / count)[None]


@torch.no_grad()
def updated_center(center, batch_center, momentum=0.9):
    """center, batch_center (1, K) -> center * m + batch_center * (1 - m) (a new tensor)."""
    return center * momentum + batch_center * (1 - momentum)


def slot_contrastive_loss(queries, query_index, keys, key_valid, temperature=0.2,
                          all_gather=None, rank=None):
    """L_c for one direction a -> b.

    queries (Nq, D): student slots of view a already through the predictor; query_index (Nq,)
    long: b * K + k of each query; keys (B, K, D): teacher slots of view b; key_valid (B, K)
    bool: validity in view b by the teacher's map (every query's own key must be valid).
    ``all_gather``: tensor -> tensor concatenating all processes along dim 0; None = torch.
    distributed all_gather without gradient when initialised, identity (detached) otherwise.
    ``rank``: this process's place in that concatenation; None = torch.distributed's rank
    when initialised, else 0. Returns a scalar (0 with a graph to ``queries`` if Nq == 0).
    """
    num, num_prototypes, dim = keys.shape
    if key_valid.shape != (num, num_prototypes):
        raise ValueError(f'slot_contrastive_loss: key_valid {tuple(key_valid.shape)} does not '
                         f'match keys {tuple(keys.shape)}')
    if queries.dim() != 2 or queries.shape[1] != dim or query_index.shape != queries.shape[:1]:
        raise ValueError(f'slot_contrastive_loss: queries {tuple(queries.shape)} and '
                         f'query_index {tuple(query_index.shape)} must be (Nq, {dim}) and (Nq,)')
    gather = _default_all_gather if all_gather is None else all_gather
    if rank is None:
        rank = dist.get_rank() if _distributed() else 0
    local_valid = key_valid.reshape(-1)
    # one collective: the validity travels as an extra 0/1 column of the keys
    packed = torch.cat([F.normalize(keys.reshape(-1, dim), dim=1),
                        local_valid[:, None].to(keys.dtype)], dim=1)
    gathered = gather(packed)
    all_keys, all_valid = gathered[:, :dim], gathered[:, dim] > 0.5
    if not bool(local_valid[query_index].all()):
        raise ValueError('slot_contrastive_loss: a query slot is not valid in the key view '
                         '(select queries with query_selection)')
    if queries.shape[0] == 0:
        return queries.sum() * 0.0
    valid_keys = all_keys[all_valid]                                          # (Nk, D)
    labels = all_valid.long().cumsum(0)[rank * num * num_prototypes + query_index] - 1
    logits = F.normalize(queries, dim=1) @ valid_keys.t() / temperature
    return F.cross_entropy(logits, labels) * (2 * temperature)


def slotcon_loss(student, teacher, predictor, center, group_loss_weight=0.5, student_temp=0.1,
                 teacher_temp=0.07, contrast_temp=0.2, all_gather=None):
    """The total SlotCon loss of two views.

    student, teacher: two ``SlotConViewOutputs`` each (view 1, view 2); predictor: the
    student's slot predictor (``DINOHead1d``), applied to the selected queries only; center
    (1, K): used as given (the caller updates it afterwards with ``batch_center`` of the
    teacher's unaligned dots). Returns (loss, terms): terms holds detached tensors
    ``grouping_1to2``, ``grouping_2to1``, ``contrastive_1to2``, ``contrastive_2to1``,
    ``grouping``, ``contrastive`` (sums over the directions) and the query counts
    ``queries_1to2``, ``queries_2to1``. A direction with fewer than 2 queries (possible with
    tiny batches) contributes 0 to the contrast, with zero gradients, instead of failing in
    the predictor's BatchNorm (the original fails there).
    """
    if len(student) != 2 or len(teacher) != 2:
        raise ValueError(f'slotcon_loss expects two views, got {len(student)} student and '
                         f'{len(teacher)} teacher outputs')
    terms = {}
    directions = (('1to2', student[0], teacher[1]), ('2to1', student[1], teacher[0]))
    grouping, contrastive = 0.0, 0.0
    for name, stud, teach in directions:
        group = grouping_loss(stud.aligned_dots, teach.aligned_dots, center,
                              student_temp, teacher_temp)
        key_valid = slot_validity(teach.dots)
        selected = (slot_validity(stud.dots) & key_valid).reshape(-1)
        query_index = selected.nonzero().squeeze(1)
        rows = stud.slots.reshape(-1, stud.slots.shape[-1])
        if query_index.numel() < 2 and predictor.training:
            # BatchNorm1d cannot normalise < 2 rows: no contrast this time, but the gather still
            # runs (other processes wait for it) and every parameter stays in the graph
            contrast = slot_contrastive_loss(rows[:0].detach(), query_index[:0], teach.slots,
                                             key_valid, contrast_temp, all_gather)
            contrast = contrast + 0.0 * (rows.sum() + sum(p.sum() for p in predictor.parameters()))
        else:
            contrast = slot_contrastive_loss(predictor(rows[query_index]), query_index,
                                             teach.slots, key_valid, contrast_temp, all_gather)
        grouping = grouping + group
        contrastive = contrastive + contrast
        terms[f'grouping_{name}'] = group.detach()
        terms[f'contrastive_{name}'] = contrast.detach()
        terms[f'queries_{name}'] = query_index.numel()
    loss = group_loss_weight * grouping + (1 - group_loss_weight) * contrastive
    terms['grouping'] = grouping.detach()
    terms['contrastive'] = contrastive.detach()
    return loss, terms
