"""U2PL's entropy-drop CE, contrastive loss and memory bank against slow references written from
the spec (shared/specs/semisup.md 2(a), 2(b), 5.1-5.6): pixel loops, Python lists for the
queues, numpy for percentiles. The references never call the code under test; both sides get
the same injected sampling indices."""
import io

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from densessl.semisup.memory_bank import (ClassMemoryBank, MemoryBankMismatchError,
                                          u2pl_queue_sizes)
from densessl.semisup import u2pl_loss
from densessl.semisup.sampled_dots import sampled_row_norms
from densessl.semisup.u2pl_loss import (U2PLIndices, contrastive_targets, entropy_drop_ce,
                                        entropy_masks, label_onehot, low_entropy_percent,
                                        sample_u2pl_indices, u2pl_contrastive_loss,
                                        u2pl_negative_mask, unreliable_percent)

IGNORE = 255
NUM_CLASSES, DIM, HEIGHT, WIDTH = 5, 8, 6, 6
Q, N, TAU = 12, 4, 0.5
LOW_RANK, HIGH_RANK, DELTA_P, DELTA_N = 2, 20, 0.3, 1.0
CAPACITY = [120, 80, 80, 80, 80]
ALL_BUGS = {'onehot', 'negatives', 'anchor_index'}


# ---------------------------------------------------------------- slow references (loops)
def ref_entropy(logits):
    """(B, C, H, W) -> (B, H, W): -sum_k p_k log(p_k + 1e-10), pixel by pixel."""
    num, _, height, width = logits.shape
    out = torch.zeros(num, height, width)
    for b in range(num):
        for y in range(height):
            for x in range(width):
                p = torch.softmax(logits[b, :, y, x].float(), dim=0)
                out[b, y, x] = -sum(float(pk) * np.log(float(pk) + 1e-10) for pk in p)
    return out


def ref_entropy_drop_ce(student, labels, teacher, alpha, per_image=False):
    """Spec 2(a): drop H >= percentile_{100 - alpha} (numpy) of the valid pixels, then
    (B H W / #kept) * mean CE over the kept pixels."""
    entropy = ref_entropy(teacher)
    num, _, height, width = student.shape
    kept = []
    for b in range(num):
        pool = range(num) if not per_image else [b]
        values = [float(entropy[i, y, x]) for i in pool for y in range(height)
                  for x in range(width) if labels[i, y, x] != IGNORE]
        thr = np.float32(np.percentile(np.array(values, dtype=np.float32), 100 - alpha))
        kept += [(b, y, x) for y in range(height) for x in range(width)
                 if labels[b, y, x] != IGNORE and np.float32(entropy[b, y, x]) < thr]
    if not kept:
        return student.sum() * 0.0
    ce = [-torch.log_softmax(student[b, :, y, x], dim=0)[labels[b, y, x]] for b, y, x in kept]
    return torch.stack(ce).mean() * (num * height * width / len(kept))


def ref_onehot(labels, num_classes, bug):
    """Spec 5.1. Correct: one class per valid pixel. Bug: the first image gets, per pixel, every
    image's class (ignored -> 0) unless the first image itself is ignored; the others nothing."""
    num, height, width = labels.shape
    out = torch.zeros(num, num_classes, height, width, dtype=torch.bool)
    for y in range(height):
        for x in range(width):
            if not bug:
                for b in range(num):
                    if labels[b, y, x] != IGNORE:
                        out[b, labels[b, y, x], y, x] = True
            elif labels[0, y, x] != IGNORE:
                for b in range(num):
                    c = int(labels[b, y, x])
                    out[0, 0 if c == IGNORE else c, y, x] = True
    return out


def ref_rank(prob_pixel):
    order = sorted(range(len(prob_pixel)), key=lambda k: -float(prob_pixel[k]))
    return {c: r for r, c in enumerate(order)}


def ref_is_negative(c, b, y, x, batch, onehot, bug):
    """Spec 2(a) 'Negative candidates' (bug: the shipped rule, issue #171) and 5.5 (fixed)."""
    prob, labels, high, num_labeled = (batch['prob'], batch['labels'], batch['high'],
                                       batch['num_labeled'])
    if not high[b, y, x] or float(prob[b, c, y, x]) >= DELTA_N:
        return False
    rank = ref_rank(prob[b, :, y, x])[c]
    if bug:
        if not onehot[b, c, y, x]:
            return False
        if b < num_labeled:
            return rank < LOW_RANK and not onehot[b, c, y, x]
        return LOW_RANK <= rank < HIGH_RANK
    label = int(labels[b, y, x])
    if label == IGNORE:
        return False
    if b < num_labeled:
        return label != c and rank < LOW_RANK
    return LOW_RANK <= rank < HIGH_RANK


def ref_contrastive(batch, queues, bugs, draw):
    """Spec 2(a) 'Contrastive loss' with the loop of the original: queues (lists of (D,)
    tensors, oldest first) are updated for every class first; then for the i-th valid class
    anchors/prototype from class i (bug #111) or V[i], negatives from queue V[i]. ``draw``
    (anchor_counts, queue_counts) -> (anchors (R, Q), negatives (R, Q, N)) long."""
    rep, rep_t, prob, labels = batch['rep'], batch['rep_t'], batch['prob'], batch['labels']
    num, _, height, width = rep.shape
    num_labeled = batch['num_labeled']
    onehot = torch.cat([ref_onehot(labels[:num_labeled], NUM_CLASSES, 'onehot' in bugs),
                        ref_onehot(labels[num_labeled:], NUM_CLASSES, 'onehot' in bugs)])
    pixels = [(b, y, x) for b in range(num) for y in range(height) for x in range(width)]
    new_keys = []
    for c in range(NUM_CLASSES):
        keys = [rep_t[b, :, y, x] for b, y, x in pixels
                if ref_is_negative(c, b, y, x, batch, onehot, 'negatives' in bugs)]
        new_keys.append(len(keys))
        queues[c] = (queues[c] + keys)[-CAPACITY[c]:]

    def low_valid(c, b, y, x):
        return bool(onehot[b, c, y, x]) and bool(batch['low'][b, y, x])

    valid = [c for c in range(NUM_CLASSES) if any(low_valid(c, *p) for p in pixels)]
    if len(valid) < 2:
        return rep.sum() * 0.0, None, new_keys
    anchor_sets, protos = [], []
    for i, c in enumerate(valid):
        a = i if 'anchor_index' in bugs else c
        anchor_sets.append([rep[b, :, y, x] for b, y, x in pixels
                            if low_valid(a, b, y, x) and float(prob[b, a, y, x]) > DELTA_P])
        members = [rep_t[b, :, y, x] for b, y, x in pixels if low_valid(a, b, y, x)]
        protos.append(torch.stack(members).mean(0) if members else None)
    anchor_idx, negative_idx = draw([len(s) for s in anchor_sets],
                                    [len(queues[c]) for c in valid])
    loss = rep.sum() * 0.0
    for i, c in enumerate(valid):
        if not anchor_sets[i] or not queues[c]:
            continue
        per_query = []
        for q in range(Q):
            anchor = anchor_sets[i][int(anchor_idx[i, q])]
            keys = [protos[i]] + [queues[c][int(negative_idx[i, q, n])] for n in range(N)]
            logits = torch.stack([F.cosine_similarity(anchor, k, dim=0) for k in keys]) / TAU
            per_query.append(-torch.log_softmax(logits, dim=0)[0])
        loss = loss + torch.stack(per_query).mean()
    return loss / len(valid), (anchor_idx, negative_idx), new_keys


# ---------------------------------------------------------------- inputs
def make_batch(seed, num_labeled=2, num_unlabeled=2, classes=None, flat_prob=False):
    """Random features, teacher probabilities and labels (some void) at the feature size;
    masks: labelled = gt valid, unlabelled = random (as entropy percentiles would give)."""
    g = torch.Generator().manual_seed(seed)
    num = num_labeled + num_unlabeled
    classes = list(range(NUM_CLASSES)) if classes is None else classes
    pick = torch.randint(0, len(classes), (num, HEIGHT, WIDTH), generator=g)
    labels = torch.tensor(classes)[pick]
    labels[torch.rand(num, HEIGHT, WIDTH, generator=g) < 0.1] = IGNORE
    scale = 0.05 if flat_prob else 2.5
    prob = torch.softmax(torch.randn(num, NUM_CLASSES, HEIGHT, WIDTH, generator=g) * scale, 1)
    valid = labels != IGNORE
    low = valid & (torch.rand(num, HEIGHT, WIDTH, generator=g) < 0.6)
    high = valid & (torch.rand(num, HEIGHT, WIDTH, generator=g) < 0.6)
    low[:num_labeled], high[:num_labeled] = valid[:num_labeled], valid[:num_labeled]
    return dict(rep=torch.randn(num, DIM, HEIGHT, WIDTH, generator=g).requires_grad_(),
                rep_t=torch.randn(num, DIM, HEIGHT, WIDTH, generator=g), prob=prob,
                labels=labels, low=low, high=high, num_labeled=num_labeled)


def history(seed, sizes):
    """Older keys already in the queues: a list per class."""
    g = torch.Generator().manual_seed(seed)
    return [list(torch.randn(n, DIM, generator=g)) for n in sizes]


def bank_with(queues):
    bank = ClassMemoryBank(NUM_CLASSES, DIM, capacity=CAPACITY)
    bank.push([torch.stack(q) if q else torch.zeros(0, DIM) for q in queues])
    return bank


def drawer(seed):
    g = torch.Generator().manual_seed(seed)

    def draw(anchor_counts, queue_counts):
        anchors = torch.stack([torch.randint(0, max(n, 1), (Q,), generator=g)
                               for n in anchor_counts])
        negatives = torch.stack([torch.randint(0, max(n, 1), (Q, N), generator=g)
                                 for n in queue_counts])
        return anchors, negatives
    return draw


def run_both(batch, old, bugs, seed=0):
    """Reference and implementation on copies of the same inputs and queues, same indices."""
    ref_batch = dict(batch, rep=batch['rep'].detach().clone().requires_grad_())
    queues = [list(q) for q in old]
    ref_loss, indices, ref_new = ref_contrastive(ref_batch, queues, bugs, drawer(seed))
    bank = bank_with(old)
    loss, terms = u2pl_contrastive_loss(
        batch['rep'], batch['rep_t'], batch['prob'], batch['labels'], batch['low'],
        batch['high'], batch['num_labeled'], bank, num_queries=Q, num_negatives=N,
        temperature=TAU, low_rank=LOW_RANK, high_rank=HIGH_RANK,
        current_class_threshold=DELTA_P, current_class_negative_threshold=DELTA_N,
        bug_compat=bugs, indices=indices)
    assert terms['new_keys'].tolist() == ref_new
    for c in range(NUM_CLASSES):
        expected = torch.stack(queues[c]) if queues[c] else torch.zeros(0, DIM)
        torch.testing.assert_close(bank.ordered(c), expected)
    return loss, ref_loss, ref_batch, terms


# ---------------------------------------------------------------- schedule and entropy-drop CE
def test_drop_ratio_schedules():
    assert unreliable_percent(0, 80) == pytest.approx(20.0)
    assert unreliable_percent(40, 80) == pytest.approx(10.0)
    assert unreliable_percent(79, 80) == pytest.approx(0.25)
    assert unreliable_percent(80, 80) == pytest.approx(0.0)
    assert unreliable_percent(10, 100, drop_percent=50) == pytest.approx(45.0)
    assert low_entropy_percent(0, 200) == pytest.approx(20.0)
    assert low_entropy_percent(50, 200) == pytest.approx(15.0)
    for bad in [(-1, 80), (81, 80), (0, 0)]:
        with pytest.raises(ValueError):
            unreliable_percent(*bad)


@pytest.mark.parametrize('per_image', [False, True])
@pytest.mark.parametrize('alpha', [20.0, 7.5, 0.0])
def test_entropy_drop_ce_matches_reference(per_image, alpha):
    g = torch.Generator().manual_seed(3)
    student = torch.randn(3, 4, 5, 7, generator=g, requires_grad=True)
    teacher = torch.randn(3, 4, 5, 7, generator=g) * 2
    labels = torch.randint(0, 4, (3, 5, 7), generator=g)
    labels[torch.rand(3, 5, 7, generator=g) < 0.2] = IGNORE
    before = labels.clone()
    loss = entropy_drop_ce(student, labels, teacher, alpha, per_image=per_image)
    ref_student = student.detach().clone().requires_grad_()
    ref = ref_entropy_drop_ce(ref_student, labels, teacher, alpha, per_image=per_image)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(student.grad, ref_student.grad)
    assert torch.equal(labels, before)  # the original overwrites its target in place


def test_entropy_drop_ce_without_valid_pixels_is_a_zero_with_graph():
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.full((2, 4, 4), IGNORE)
    loss = entropy_drop_ce(student, labels, torch.randn(2, 3, 4, 4), 20.0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_entropy_masks_match_numpy_percentiles():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, 6, generator=g) * 2
    labels = torch.randint(0, 4, (2, 6, 6), generator=g)
    labels[0, :2] = IGNORE
    low, high = entropy_masks(logits, labels, 20.0)
    entropy = ref_entropy(logits)
    valid = labels != IGNORE
    values = entropy[valid].numpy()
    low_thr = np.float32(np.percentile(values, 20.0))
    high_thr = np.float32(np.percentile(values, 80.0))
    for b in range(2):
        for y in range(6):
            for x in range(6):
                v = np.float32(entropy[b, y, x])
                assert bool(low[b, y, x]) == (bool(valid[b, y, x]) and v <= low_thr)
                assert bool(high[b, y, x]) == (bool(valid[b, y, x]) and v >= high_thr)
    assert 0 < int(low.sum()) < int(valid.sum())


def test_contrastive_targets_downsample_labels_and_masks_by_nearest():
    g = torch.Generator().manual_seed(6)
    labels_l = torch.randint(0, 4, (1, 8, 12), generator=g)
    labels_l[0, 0] = IGNORE
    pseudo = torch.randint(0, 4, (2, 8, 12), generator=g)
    pseudo[1, :, :3] = IGNORE
    logits = torch.randn(2, 4, 8, 12, generator=g)
    labels, low, high = contrastive_targets(labels_l, pseudo, logits, 25.0, (3, 5))
    full_low, full_high = entropy_masks(logits, pseudo, 25.0)
    all_labels = torch.cat([labels_l, pseudo])
    for b in range(3):
        for i in range(3):
            for j in range(5):
                y, x = (i * 8) // 3, (j * 12) // 5                  # nearest: floor(i * in / out)
                assert labels[b, i, j] == all_labels[b, y, x]
                if b == 0:
                    assert low[b, i, j] == high[b, i, j] == (all_labels[b, y, x] != IGNORE)
                else:
                    assert low[b, i, j] == full_low[b - 1, y, x]
                    assert high[b, i, j] == full_high[b - 1, y, x]
    _, _, every = contrastive_targets(labels_l, pseudo, logits, 25.0, (3, 5),
                                      negative_high_entropy=False)
    assert every[1:].all()


# ---------------------------------------------------------------- contrastive loss
def test_label_onehot_correct_and_bug_compatible():
    labels = make_batch(1, num_labeled=3, num_unlabeled=0)['labels']
    for bug in (False, True):
        assert torch.equal(label_onehot(labels, NUM_CLASSES, bug_compat=bug),
                           ref_onehot(labels, NUM_CLASSES, bug))
    buggy = label_onehot(labels, NUM_CLASSES, bug_compat=True)
    assert buggy[0].any() and not buggy[1:].any()  # spec 5.1: counts [n, 0, 0]


@pytest.mark.parametrize('bugs', [set(), ALL_BUGS], ids=['fixed', 'bug_compat'])
def test_contrastive_loss_matches_reference_on_a_batch_of_several_images(bugs):
    batch = make_batch(11, num_labeled=2, num_unlabeled=3)
    old = history(12, [7, 0, 30, 3, 2])                        # class 1 starts empty
    loss, ref, ref_batch, terms = run_both(batch, old, bugs)
    assert terms['num_valid_classes'] >= 2 and terms['num_used_classes'] >= 1
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(batch['rep'].grad, ref_batch['rep'].grad)
    assert batch['rep'].grad.abs().sum() > 0


@pytest.mark.parametrize('bugs', [set(), ALL_BUGS], ids=['fixed', 'bug_compat'])
def test_contrastive_loss_with_a_class_missing(bugs):
    batch = make_batch(21, classes=[0, 1, 3, 4])              # class 2 absent everywhere
    loss, ref, _, terms = run_both(batch, history(22, [5, 5, 5, 5, 5]), bugs)
    torch.testing.assert_close(loss, ref)
    assert torch.isfinite(loss)
    if not bugs:
        assert terms['num_valid_classes'] == 4
        assert terms['new_keys'][2] > 0      # fixed rule: class 2's queue takes pixels NOT of 2


def test_contrastive_loss_without_anchors_is_a_finite_zero_with_graph():
    batch = make_batch(31, flat_prob=True)                     # every P_c ~ 0.2 < delta_p
    for bugs in (set(), ALL_BUGS):
        batch['rep'].grad = None
        loss, ref, _, terms = run_both(batch, history(32, [4] * NUM_CLASSES), bugs)
        assert loss.item() == 0.0 and ref.item() == 0.0 and terms['num_used_classes'] == 0
        loss.backward()
        assert torch.equal(batch['rep'].grad, torch.zeros_like(batch['rep']))


def test_contrastive_loss_single_valid_class_and_empty_bank_are_no_ops():
    batch = make_batch(41, classes=[3])
    bank = ClassMemoryBank(NUM_CLASSES, DIM, capacity=CAPACITY)
    loss, terms = u2pl_contrastive_loss(batch['rep'], batch['rep_t'], batch['prob'],
                                        batch['labels'], batch['low'], batch['high'], 2, bank,
                                        num_queries=Q, num_negatives=N,
                                        generator=torch.Generator().manual_seed(0))
    assert loss.item() == 0.0 and terms['num_valid_classes'] == 1
    # many classes but nothing in any queue (high mask empty: no new keys either)
    batch = make_batch(42)
    batch['high'] = torch.zeros_like(batch['high'])
    bank = ClassMemoryBank(NUM_CLASSES, DIM, capacity=CAPACITY)
    loss, terms = u2pl_contrastive_loss(batch['rep'], batch['rep_t'], batch['prob'],
                                        batch['labels'], batch['low'], batch['high'], 2, bank,
                                        num_queries=Q, num_negatives=N,
                                        generator=torch.Generator().manual_seed(0))
    assert loss.item() == 0.0 and terms['num_used_classes'] == 0
    loss.backward()
    assert batch['rep'].grad is not None


def test_bug_compat_and_fixed_differ_where_expected():
    # anchor indexing (#111): same result when the valid classes are 0..k-1, not otherwise
    contiguous = make_batch(51, classes=[0, 1, 2])
    sparse = make_batch(51, classes=[0, 2, 4])
    old = history(52, [6] * NUM_CLASSES)
    fixed, _, _, _ = run_both(contiguous, old, set())
    bug, _, _, _ = run_both(contiguous, old, {'anchor_index'})
    torch.testing.assert_close(fixed, bug)
    fixed, _, _, _ = run_both(sparse, old, set())
    bug, ref_bug, _, _ = run_both(sparse, old, {'anchor_index'})
    torch.testing.assert_close(bug, ref_bug)
    assert abs(fixed.item() - bug.item()) > 1e-3

    # negatives (#171): the shipped rule never queues a labelled pixel, the paper's rule does
    batch = make_batch(53)
    onehot = label_onehot(batch['labels'], NUM_CLASSES)
    args = (batch['prob'], batch['labels'], onehot, batch['high'], 2, LOW_RANK, HIGH_RANK)
    shipped = u2pl_negative_mask(*args, bug_compat=True)
    paper = u2pl_negative_mask(*args, bug_compat=False)
    assert not shipped[:2].any() and paper[:2].any()
    assert (shipped[2:] & onehot[2:]).sum() == shipped[2:].sum()  # shipped: own class only
    assert not (paper[:2] & onehot[:2]).any()                   # paper: never its own class

    # one-hot (spec 5.1): only the first image of each half sees labels
    buggy = run_both(make_batch(54), old, {'onehot'})
    fixed = run_both(make_batch(54), old, set())
    torch.testing.assert_close(buggy[0], buggy[1])
    assert abs(buggy[0].item() - fixed[0].item()) > 1e-3
    shipped = run_both(make_batch(54), old, {'onehot', 'negatives'})[3]['new_keys']
    alone = run_both(make_batch(54), old, {'negatives'})[3]['new_keys']
    assert shipped.sum() < alone.sum()          # only 1 of the 2 unlabelled images has labels


def test_sampled_indices_are_in_range_and_reproducible():
    anchors, banks = torch.tensor([3, 0, 17]), torch.tensor([1, 5, 0])
    first = sample_u2pl_indices(anchors, banks, 64, 7, torch.Generator().manual_seed(9))
    again = sample_u2pl_indices(anchors, banks, 64, 7, torch.Generator().manual_seed(9))
    assert torch.equal(first.anchors, again.anchors)
    assert torch.equal(first.negatives, again.negatives)
    assert first.anchors.shape == (3, 64) and first.negatives.shape == (3, 64, 7)
    assert first.anchors[0].max() == 2 and first.anchors[1].max() == 0
    assert (first.anchors[2] < 17).all() and len(first.anchors[2].unique()) > 8
    assert (first.negatives[0] == 0).all() and first.negatives[1].max() == 4


def test_loss_draws_from_the_given_generator():
    batch = make_batch(71)
    old = history(72, [6] * NUM_CLASSES)

    def loss_with(seed):
        loss, _ = u2pl_contrastive_loss(batch['rep'], batch['rep_t'], batch['prob'],
                                        batch['labels'], batch['low'], batch['high'], 2,
                                        bank_with(old), num_queries=Q, num_negatives=N,
                                        generator=torch.Generator().manual_seed(seed))
        return loss.item()
    assert loss_with(0) == loss_with(0) != loss_with(1)


def test_out_of_range_indices_are_refused():
    batch = make_batch(61)
    bank = bank_with(history(62, [3] * NUM_CLASSES))
    bad = U2PLIndices(torch.full((NUM_CLASSES, Q), 10 ** 6), torch.zeros(NUM_CLASSES, Q, N,
                                                                           dtype=torch.long))
    with pytest.raises(ValueError, match='out of range'):
        u2pl_contrastive_loss(batch['rep'], batch['rep_t'], batch['prob'], batch['labels'],
                              batch['low'], batch['high'], 2, bank, num_queries=Q,
                              num_negatives=N, indices=bad)


# ---------------------------------------------------------------- memory bank
def test_bank_fifo_order_and_wrap_around():
    bank = ClassMemoryBank(2, 3, capacity=[4, 6])
    reference = [[], []]
    g = torch.Generator().manual_seed(0)
    for sizes in [(3, 2), (2, 0), (1, 5), (9, 1), (0, 13), (2, 2)]:   # 9 > 4, 13 > 6: one push
        new = [torch.randn(n, 3, generator=g) for n in sizes]
        received = bank.push(new)
        assert received.tolist() == list(sizes)
        for c, cap in enumerate([4, 6]):
            reference[c] = (reference[c] + list(new[c]))[-cap:]
            torch.testing.assert_close(bank.ordered(c), torch.stack(reference[c]))
            assert int(bank.counts[c]) == len(reference[c])
    index = torch.tensor([[3, 0, 2], [5, 1, 1]])
    looked = bank.lookup(torch.tensor([0, 1]), index)
    for r in range(2):
        for j in range(3):
            torch.testing.assert_close(looked[r, j], reference[r][int(index[r, j])])


def test_class_ranks_break_ties_by_class_order_and_row_norms_read_the_table():
    prob = torch.tensor([0.2, 0.3, 0.2, 0.3, 0.0])[None, :, None, None].repeat(2, 1, 2, 3)
    expected = torch.argsort(torch.sort(prob, dim=1, descending=True, stable=True).indices, 1)
    assert torch.equal(u2pl_loss._class_ranks(prob), expected)
    assert u2pl_loss._class_ranks(prob)[0, :, 0, 0].tolist() == [2, 0, 3, 1, 4]
    table = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    rows = torch.tensor([[3, 3, 29], [0, 7, 3]])
    torch.testing.assert_close(sampled_row_norms(table, rows), table[rows].norm(dim=2))


@pytest.mark.parametrize('grouped', [True, False])
def test_bank_push_rows_equals_push_flat_of_the_gathered_rows(grouped):
    """push_rows copies table rows straight into the rings (one or two runs per class, with
    wrap-around and more keys than the capacity); ungrouped ids take push_flat's path."""
    g = torch.Generator().manual_seed(0)
    table = torch.randn(40, 3, generator=g)
    direct, flat = (ClassMemoryBank(3, 3, capacity=[4, 6, 5]) for _ in range(2))
    for sizes in [(3, 2, 0), (2, 0, 4), (1, 5, 3), (9, 1, 0), (0, 13, 6), (2, 2, 2)]:
        class_ids = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
        if not grouped:
            class_ids = class_ids[torch.randperm(class_ids.numel(), generator=g)]
        rows = torch.randint(40, class_ids.shape, generator=g)
        received = direct.push_rows(table, rows, class_ids)
        assert received.tolist() == list(sizes)
        flat.push_flat(table[rows], class_ids)
        for name in ('features', 'counts', 'pointers'):
            assert torch.equal(getattr(direct, name), getattr(flat, name)), name


def test_bank_gather_fn_appends_all_processes_in_rank_order():
    other = torch.cat([torch.randn(3, 2), torch.tensor([[1.], [0.], [-1.]])], dim=1)  # -1: pad

    def gather(packed):            # this process is rank 1 of 2
        return torch.cat([other, packed])

    bank = ClassMemoryBank(2, 2, capacity=10, gather_fn=gather)
    mine = torch.randn(2, 2)
    received = bank.push_flat(mine, torch.tensor([1, 1]))
    assert received.tolist() == [1, 3]
    torch.testing.assert_close(bank.ordered(0), other[1:2, :2])
    torch.testing.assert_close(bank.ordered(1), torch.cat([other[0:1, :2], mine]))


def test_bank_state_dict_round_trip():
    bank = ClassMemoryBank(3, 4, capacity=[5, 2, 3])
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        bank.push([torch.randn(n, 4, generator=g) for n in (3, 3, 1)])
    buffer = io.BytesIO()
    torch.save(nn.Sequential(bank).state_dict(), buffer)
    buffer.seek(0)
    restored = nn.Sequential(ClassMemoryBank(3, 4, capacity=[5, 2, 3]))
    restored.load_state_dict(torch.load(buffer))
    for c in range(3):
        torch.testing.assert_close(restored[0].ordered(c), bank.ordered(c))
    more = [torch.randn(n, 4, generator=g) for n in (4, 1, 2)]
    bank.push(more)
    restored[0].push(more)                    # the pointers came back too
    for c in range(3):
        torch.testing.assert_close(restored[0].ordered(c), bank.ordered(c))


@pytest.mark.parametrize('other, words', [
    (dict(num_classes=4, dim=4, capacity=5), ['num_classes=4', 'num_classes=3']),
    (dict(num_classes=3, dim=8, capacity=5), ['dim=8', 'dim=4']),
    (dict(num_classes=3, dim=4, capacity=[5, 5, 6]), ['[5 x 2, 6]', '[5 x 3]']),
])
@pytest.mark.parametrize('strict', [True, False])
def test_bank_of_another_size_is_refused_with_both_sizes(other, words, strict):
    saved = nn.Sequential(ClassMemoryBank(**other)).state_dict()
    target = nn.Sequential(ClassMemoryBank(3, 4, capacity=5))
    with pytest.raises(MemoryBankMismatchError) as info:
        target.load_state_dict(saved, strict=strict)
    for word in words:
        assert word in str(info.value)
    assert int(target[0].counts.sum()) == 0


def test_u2pl_default_queue_sizes():
    assert u2pl_queue_sizes(3) == [50000, 30000, 30000]
    bank = ClassMemoryBank(19, dim=4)
    assert bank.capacities.tolist() == [50000] + [30000] * 18
    assert bank.features.shape == (50000 + 18 * 30000, 4)
