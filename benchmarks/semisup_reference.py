"""Straightforward ReCo and U2PL contrastive losses, written from the spec for the loss benchmark.

Spec: shared/specs/semisup.md 1(a) (ReCo ``compute_reco_loss``), 2(a) (U2PL
``compute_contra_memobank_loss`` and its memory bank) and 5. These are our own code, organised
the way the spec describes the originals (not copies of them): a Python loop over the classes,
boolean-mask indexing of the permuted (B, h, w, D) maps once per class, ``torch.cat`` of
per-class tensors, per-class ``F.cosine_similarity`` of the queries against a broadcast
(Q, 1 + N, D) key tensor, and for U2PL per-class FIFO queues kept as plain CPU tensors that
are re-concatenated on every update and cloned to the device before sampling. Nothing is
vectorised across classes.

Both take the random draws from outside, in the same form as the densessl.semisup core
(``ReCoIndices`` / ``U2PLIndices``), so that with the same inputs and the same memory-bank
content they compute the same value (``benchmarks/semisup_losses.py`` checks this before it
times anything). The one part of the originals that is therefore absent is their sampler
(ReCo: a Categorical draw per class and one ``np.random.randint`` per (query, negative class),
~1 s of the spec's 17.3 s; U2PL: two ``torch.randint`` per class); in its place the reference
turns the injected draws into its own flat index list, one query at a time.
"""
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- ReCo
def reference_reco_loss(rep, label, mask, prob, indices, strong_threshold=0.97, temperature=0.5):
    """ReCo's regional contrast (spec 1(a) steps 1-5) in the original's structure.

    rep (B, D, h, w) with gradient; label (B, C, h, w) one-hot (the original's input); mask
    (B, h, w) valid pixels; prob (B, C, h, w) student softmax; indices: ``ReCoIndices`` (rows =
    present classes, ascending; ``query`` into the hard set, ``negative_class`` a row, and
    ``negative_index`` into that row's valid set, all in raster (b, y, x) order).
    """
    num_feat = rep.shape[1]
    num_classes = label.shape[1]
    valid_pixel = label * mask.unsqueeze(1)
    rep = rep.permute(0, 2, 3, 1)                      # (B, h, w, D) for boolean indexing

    feat_all, feat_hard, num_pixels, prototypes, present = [], [], [], [], []
    for c in range(num_classes):
        valid_c = valid_pixel[:, c]
        if valid_c.sum() == 0:
            continue
        hard_c = (prob[:, c] < strong_threshold) * valid_c.bool()
        prototypes.append(torch.mean(rep[valid_c.bool()], dim=0, keepdim=True))
        feat_all.append(rep[valid_c.bool()])
        feat_hard.append(rep[hard_c])
        num_pixels.append(int(valid_c.sum().item()))
        present.append(c)

    if len(num_pixels) <= 1:
        return rep.sum() * 0.0
    if present != indices.classes.tolist():
        raise ValueError(f'indices are for classes {indices.classes.tolist()}, the batch has '
                         f'{present}')
    num_queries, num_negatives = indices.negative_class.shape[1:]
    prototypes = torch.cat(prototypes)
    num_present = len(num_pixels)
    loss = rep.new_zeros(())
    for i in range(num_present):
        if len(feat_hard[i]) == 0:   # every pixel of the class is easy: no queries
            continue
        anchor_feat = feat_hard[i][indices.query[i]]                          # (Q, D)
        with torch.no_grad():
            # the other classes rotated to start after i (the original's key order), and where
            # each one starts in their concatenation
            others = list(range(i + 1, num_present)) + list(range(i))
            start = [0] * num_present
            offset = 0
            for j in others:
                start[j] = offset
                offset += num_pixels[j]
            start = torch.tensor(start, device=rep.device)
            negative_index = []
            for q in range(num_queries):     # this query's negatives into the concatenation
                negative_index.append(start[indices.negative_class[i, q]]
                                      + indices.negative_index[i, q])
            negative_index = torch.cat(negative_index)
            negative_feat_all = torch.cat([feat_all[j] for j in others])
            negative_feat = negative_feat_all[negative_index].reshape(num_queries, num_negatives,
                                                                      num_feat)
            positive_feat = prototypes[i].unsqueeze(0).unsqueeze(0).repeat(num_queries, 1, 1)
            all_feat = torch.cat((positive_feat, negative_feat), dim=1)       # (Q, 1 + N, D)
        logits = torch.cosine_similarity(anchor_feat.unsqueeze(1), all_feat, dim=2)
        target = torch.zeros(num_queries, dtype=torch.long, device=rep.device)
        loss = loss + F.cross_entropy(logits / temperature, target)
    return loss / num_present


# ----------------------------------------------------------------------------- U2PL
def reference_label_onehot(labels, num_classes, ignore_index=255, bug=False):
    """labels (B, h, w) -> (B, C, h, w) float one-hot, zero where ignored. bug: the original's
    result as spec 5.1 describes it (image 0 gets, per pixel, the classes of every image of the
    batch, an ignored pixel of another image counting as class 0, zeroed where image 0 is
    ignored; the other images get nothing)."""
    num, height, width = labels.shape
    as_class = labels.clone()
    as_class[labels == ignore_index] = 0
    out = torch.zeros(num, num_classes, height, width, device=labels.device)
    if not bug:
        out.scatter_(1, as_class.unsqueeze(1), 1.0)
        return out * (labels != ignore_index).unsqueeze(1)
    for b in range(num):
        out[0].scatter_(0, as_class[b].unsqueeze(0), 1.0)
    out[0] *= (labels[0] != ignore_index)
    return out


def reference_u2pl_contrastive_loss(rep, rep_teacher, prob, labels, low_mask, high_mask,
                                    num_labeled, queues, capacities, indices,
                                    temperature=0.5, low_rank=3, high_rank=20,
                                    current_class_threshold=0.3,
                                    current_class_negative_threshold=1.0, ignore_index=255,
                                    bugs=frozenset()):
    """U2PL's contrastive loss with its memory bank (spec 2(a), 5.2-5.6) in the original's
    structure. Updates ``queues`` (list of C CPU tensors (n_c, D), oldest row first) in place
    with this batch's negative keys, then computes the loss.

    rep, rep_teacher (B, D, h, w) student (gradient) / teacher features; prob (B, C, h, w)
    teacher softmax; labels (B, h, w) [gt; pseudo-labels]; low_mask, high_mask (B, h, w) bool;
    num_labeled: the first B_l images are labelled; capacities: C queue sizes; indices:
    ``U2PLIndices`` (row i = the i-th valid class; anchors into its anchor list in raster
    order, negatives into its queue, oldest first); bugs: a subset of {'onehot', 'negatives',
    'anchor_index'} (the original's behaviour, as ``bug_compat`` of the core). Returns
    (loss, new_keys: list of C ints).
    """
    num_feat = rep.shape[1]
    num_classes = prob.shape[1]
    num_queries, num_negatives = indices.negatives.shape[1:]
    rep_teacher = rep_teacher.detach()
    prob = prob.detach()
    onehot = torch.cat([reference_label_onehot(labels[:num_labeled], num_classes, ignore_index,
                                               'onehot' in bugs),
                        reference_label_onehot(labels[num_labeled:], num_classes, ignore_index,
                                               'onehot' in bugs)])
    low_valid_pixel = onehot * low_mask.unsqueeze(1)
    high_valid_pixel = onehot * high_mask.unsqueeze(1)
    valid_label = labels != ignore_index

    rep = rep.permute(0, 2, 3, 1)
    rep_teacher = rep_teacher.permute(0, 2, 3, 1)
    prob_indices = torch.sort(prob, dim=1, descending=True, stable=True)[1].permute(0, 2, 3, 1)
    prob_indices_l, prob_indices_u = prob_indices[:num_labeled], prob_indices[num_labeled:]

    feat_low_entropy, prototypes, valid_classes, new_keys = [], [], [], []
    for i in range(num_classes):
        low_valid_c = low_valid_pixel[:, i].bool()
        high_valid_c = high_valid_pixel[:, i].bool()
        prob_c = prob[:, i]
        anchor_mask = (prob_c > current_class_threshold) * low_valid_c
        feat_low_entropy.append(rep[anchor_mask])
        prototypes.append(torch.mean(rep_teacher[low_valid_c], dim=0, keepdim=True))

        # negatives: c ranked in [low_rank, high_rank) (unlabelled), in the top low_rank
        # (labelled) and not the pixel's class
        class_mask_u = torch.sum(prob_indices_u[:, :, :, low_rank:high_rank].eq(i), dim=3).bool()
        class_mask_l = torch.sum(prob_indices_l[:, :, :, :low_rank].eq(i), dim=3).bool()
        if 'negatives' in bugs:   # the shipped rule: pixels *of* class c (labelled: never)
            class_mask = torch.cat((class_mask_l * (onehot[:num_labeled, i] == 0), class_mask_u))
            negative_mask = (prob_c < current_class_negative_threshold) * high_valid_c \
                * class_mask
        else:                     # the paper's rule: pixels confidently not of class c
            not_c = valid_label[:num_labeled] * (labels[:num_labeled] != i)
            class_mask = torch.cat((class_mask_l * not_c, class_mask_u))
            negative_mask = (prob_c < current_class_negative_threshold) * high_mask \
                * valid_label * class_mask
        keys = rep_teacher[negative_mask].detach()
        new_keys.append(keys.shape[0])
        # the original's dequeue_and_enqueue: append on the CPU, keep the last queue_size
        queues[i] = torch.cat((queues[i], keys.cpu()), dim=0)
        if queues[i].shape[0] >= capacities[i]:
            queues[i] = queues[i][-capacities[i]:, :]

        if low_valid_c.sum() > 0:
            valid_classes.append(i)

    if len(valid_classes) <= 1:
        return rep.sum() * 0.0, new_keys
    loss = rep.new_zeros(())
    for i, c in enumerate(valid_classes):
        a = i if 'anchor_index' in bugs else c     # issue #111: the i-th class, not V[i]
        if len(feat_low_entropy[a]) == 0 or queues[c].shape[0] == 0:
            loss = loss + 0 * rep.sum()
            continue
        anchor_feat = feat_low_entropy[a][indices.anchors[i]]                # (Q, D)
        with torch.no_grad():
            negative_feat = queues[c].clone().to(rep.device)
            negative_feat = negative_feat[indices.negatives[i].reshape(-1)]
            negative_feat = negative_feat.reshape(num_queries, num_negatives, num_feat)
            positive_feat = prototypes[a].unsqueeze(0).repeat(num_queries, 1, 1)
            all_feat = torch.cat((positive_feat, negative_feat), dim=1)      # (Q, 1 + N, D)
        logits = torch.cosine_similarity(anchor_feat.unsqueeze(1), all_feat, dim=2)
        target = torch.zeros(num_queries, dtype=torch.long, device=rep.device)
        loss = loss + F.cross_entropy(logits / temperature, target)
    return loss / len(valid_classes), new_keys
