"""ReCo's losses (densessl.semisup.reco_loss) against slow references written from the spec
(shared/specs/semisup.md 1(a)): pixel loops, one query and one negative at a time, with the
same injected indices; the references never call the module under test."""
import pytest
import torch
import torch.nn.functional as F

from densessl.semisup import reco_loss as reco
from densessl.semisup.sampled_dots import sampled_dots
from densessl.semisup.reco_loss import (ReCoIndices, confidence_weighted_ce, reco_loss,
                                        sample_reco_indices)


# ----------------------------------------------------------------------------- references
def reference_reco(rep, label, mask, prob, indices, strong_threshold, temperature):
    """Spec 1(a) ReCo steps 1-5, literally: sets in raster (b, y, x) order, per-query CE."""
    batch, _, height, width = rep.shape
    num_classes = prob.shape[1]
    all_sets = {c: [] for c in range(num_classes)}
    hard_sets = {c: [] for c in range(num_classes)}
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                c = int(label[b, y, x])
                if not mask[b, y, x] or c < 0 or c >= num_classes:
                    continue
                all_sets[c].append(rep[b, :, y, x])
                if prob[b, c, y, x] < strong_threshold:
                    hard_sets[c].append(rep[b, :, y, x])
    present = [c for c in range(num_classes) if all_sets[c]]
    if len(present) < 2:
        return None
    means = [torch.stack(all_sets[c]).mean(dim=0).detach() for c in present]
    num_queries, num_negatives = indices.negative_class.shape[1:]
    total = 0.0
    for k, c in enumerate(present):
        if not hard_sets[c]:
            continue
        class_loss = 0.0
        for q in range(num_queries):
            query = hard_sets[c][int(indices.query[k, q])]
            sims = [F.cosine_similarity(query, means[k], dim=0)]
            for n in range(num_negatives):
                j = int(indices.negative_class[k, q, n])
                assert j != k
                key = all_sets[present[j]][int(indices.negative_index[k, q, n])].detach()
                sims.append(F.cosine_similarity(query, key, dim=0))
            logits = torch.stack(sims) / temperature
            class_loss = class_loss - (logits[0] - torch.logsumexp(logits, dim=0))
        total = total + class_loss / num_queries
    return total / len(present)


def reference_weighted_ce(logits, label, confidence, threshold, ignore_index, bug_compat):
    """Spec 1(a) unsupervised loss, pixel by pixel."""
    batch, num_classes, height, width = logits.shape
    weighted, num_valid, num_positive = 0.0, 0, 0
    for b in range(batch):
        valid = [(y, x) for y in range(height) for x in range(width)
                 if 0 <= int(label[b, y, x]) < num_classes and int(label[b, y, x]) != ignore_index]
        confident = int((confidence[b] >= threshold).sum())
        weight = confident / len(valid) if valid else 0.0
        for y, x in valid:
            ce = -torch.log_softmax(logits[b, :, y, x], dim=0)[int(label[b, y, x])]
            weighted = weighted + weight * ce
            num_valid += 1
            num_positive += int(ce > 0)
    denominator = num_positive if bug_compat else num_valid
    return weighted / denominator if denominator else None


# ----------------------------------------------------------------------------- inputs
def make_inputs(seed, batch=2, dim=6, size=6, num_classes=4, classes=None, sharpness=3.0):
    """Random rep, labels from ``classes`` (with -1 and 255 void), a mask, a softmax."""
    gen = torch.Generator().manual_seed(seed)
    rep = torch.randn(batch, dim, size, size, generator=gen)
    classes = torch.tensor(classes if classes is not None else range(num_classes))
    label = classes[torch.randint(len(classes), (batch, size, size), generator=gen)]
    void = torch.rand(batch, size, size, generator=gen)
    label = torch.where(void < 0.05, -1, torch.where(void < 0.1, 255, label))
    mask = torch.rand(batch, size, size, generator=gen) < 0.8
    prob = torch.softmax(sharpness * torch.randn(batch, num_classes, size, size, generator=gen),
                         dim=1)
    return rep, label, mask, prob


def loss_and_grad(fn, rep, *args, **kwargs):
    rep = rep.clone().requires_grad_(True)
    loss = fn(rep, *args, **kwargs)
    loss.backward()
    return loss.detach(), rep.grad


HYPER = dict(strong_threshold=0.6, temperature=0.5, num_queries=5, num_negatives=7)


def check_against_reference(rep, label, mask, prob, seed=0, **hyper):
    hyper = {**HYPER, **hyper}
    indices = sample_reco_indices(rep, label, mask, prob,
                                  generator=torch.Generator().manual_seed(seed), **hyper)
    loss, grad = loss_and_grad(reco_loss, rep, label, mask, prob, indices=indices, **hyper)
    ref_loss, ref_grad = loss_and_grad(
        lambda r: reference_reco(r, label, mask, prob, indices, hyper['strong_threshold'],
                                 hyper['temperature']), rep)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)
    return loss, grad, indices


# ----------------------------------------------------------------------------- ReCo loss
def test_reco_loss_matches_the_reference_on_an_ordinary_batch():
    rep, label, mask, prob = make_inputs(0)
    prob[:, :, ::3, ::2] = HYPER['strong_threshold']  # a tie is easy: p_c < delta_s is hard
    loss, grad, indices = check_against_reference(rep, label, mask, prob)
    assert loss > 0
    assert indices.classes.tolist() == [0, 1, 2, 3]
    # the gradient reaches rep through the queries only: hard, valid pixels
    own = prob.gather(1, label.clamp(0, 3)[:, None])[:, 0]
    hard = mask & (label >= 0) & (label < 4) & (own < HYPER['strong_threshold'])
    assert grad[~hard[:, None].expand_as(grad)].abs().max() == 0
    assert grad.abs().sum() > 0


def test_reco_loss_at_the_spec_defaults_matches_the_reference():
    rep, label, mask, prob = make_inputs(1, num_classes=3, sharpness=6.0)
    check_against_reference(rep, label, mask, prob, strong_threshold=0.97, num_queries=4,
                            num_negatives=9)


def test_sampled_dots_gradcheck():
    """The custom backward (embedding_bag) against finite differences."""
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    keys = torch.randn(9, 3, dtype=torch.float64, generator=gen)
    positions = torch.randint(9, (5, 4), generator=gen)
    dots = sampled_dots(queries, keys, positions)
    torch.testing.assert_close(dots, torch.stack([keys[positions[m]] @ queries[m]
                                                  for m in range(5)]))
    assert torch.autograd.gradcheck(sampled_dots, (queries, keys, positions))


def test_sampled_dots_with_repeated_and_unused_keys():
    """Keys drawn many times (also twice by one query), keys never drawn, one negative per
    query: the sorted SDDMM gives each pair's dot in place, the backward sums per query."""
    gen = torch.Generator().manual_seed(1)
    queries = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    keys = torch.randn(50, 4, dtype=torch.float64, generator=gen)
    for positions in (torch.randint(3, (6, 8), generator=gen), torch.tensor([[7], [7], [49],
                                                                             [0], [7], [3]])):
        dots = sampled_dots(queries, keys, positions)
        expected = (keys[positions] * queries[:, None]).sum(dim=2)
        torch.testing.assert_close(dots, expected)
        assert torch.autograd.gradcheck(sampled_dots, (queries, keys, positions))


def test_unit_pixel_rows_are_the_normalised_pixels_in_raster_order():
    rep = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(2))
    rep[1, :, 2, 3] = 0.0                                  # a zero row stays zero (eps floor)
    expected = F.normalize(rep.permute(0, 2, 3, 1).reshape(-1, 5), dim=1, eps=reco.COSINE_EPS)
    torch.testing.assert_close(reco._unit_pixel_rows(rep), expected, rtol=0, atol=1e-7)


def test_classes_missing_from_the_batch_are_skipped():
    rep, label, mask, prob = make_inputs(3, num_classes=6, classes=[0, 2, 5])
    loss, _, indices = check_against_reference(rep, label, mask, prob)
    assert indices.classes.tolist() == [0, 2, 5]
    assert indices.negative_class.shape == (3, HYPER['num_queries'], HYPER['num_negatives'])
    assert torch.isfinite(loss) and loss > 0


def test_a_class_without_hard_pixels_still_counts_in_the_denominator():
    """Class 1 has only easy pixels: no queries of its own, but it is a negative class and
    L = (l_0 + l_2) / 3 (spec 1(a) step 5), which the reference computes."""
    rep, label, mask, prob = make_inputs(4, num_classes=3)
    prob[:, 1] = torch.where(label == 1, 1.0, prob[:, 1])
    loss, grad, indices = check_against_reference(rep, label, mask, prob)
    assert indices.classes.tolist() == [0, 1, 2]
    assert (indices.negative_class[[0, 2]] == 1).any()
    assert grad.permute(1, 0, 2, 3)[:, label == 1].abs().max() == 0
    assert loss > 0


@pytest.mark.parametrize('case', ['no_hard_pixel', 'one_class', 'nothing_valid'])
def test_no_op_cases_return_zero_with_a_graph(case):
    rep, label, mask, prob = make_inputs(5)
    if case == 'no_hard_pixel':
        prob = torch.ones_like(prob)
    elif case == 'one_class':
        label = torch.where(label == 255, 255, torch.zeros_like(label))
    else:
        mask = torch.zeros_like(mask)
    rep = rep.requires_grad_(True)
    loss = reco_loss(rep, label, mask, prob, generator=torch.Generator().manual_seed(0), **HYPER)
    assert loss.requires_grad and torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.equal(rep.grad, torch.zeros_like(rep))
    if case == 'no_hard_pixel':  # negatives are still drawn, queries have nowhere to come from
        indices = sample_reco_indices(rep, label, mask, prob, **HYPER)
        assert len(indices.classes) == 4


def test_one_hot_labels_give_the_same_loss_as_class_ids():
    rep, label, mask, prob = make_inputs(6)
    one_hot = torch.zeros_like(prob)
    for c in range(4):
        one_hot[:, c] = (label == c).float()
    seed = torch.Generator().manual_seed(3)
    by_ids = reco_loss(rep, label, mask, prob, generator=seed, **HYPER)
    seed = torch.Generator().manual_seed(3)
    by_one_hot = reco_loss(rep, one_hot, mask, prob, generator=seed, **HYPER)
    assert by_ids > 0
    torch.testing.assert_close(by_ids, by_one_hot, rtol=0, atol=0)


def test_a_generator_seed_fixes_the_draws_and_the_loss():
    rep, label, mask, prob = make_inputs(7)

    def draw(seed):
        return sample_reco_indices(rep, label, mask, prob,
                                   generator=torch.Generator().manual_seed(seed), **HYPER)

    first, again, other = draw(11), draw(11), draw(12)
    for name in ('query', 'negative_class', 'negative_index'):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.negative_index, other.negative_index)
    direct = reco_loss(rep, label, mask, prob, generator=torch.Generator().manual_seed(11),
                       **HYPER)
    injected = reco_loss(rep, label, mask, prob, indices=first, **HYPER)
    assert torch.equal(direct, injected)
    assert not torch.equal(direct, reco_loss(rep, label, mask, prob, indices=other, **HYPER))


def test_the_sampler_follows_the_class_relation_softmax():
    """Negative classes ~ softmax_{j != c}(cos(mean_c, mean_j) / tau); indices in range."""
    rep, label, mask, prob = make_inputs(8, dim=3, size=8, num_classes=3)
    hyper = {**HYPER, 'num_queries': 64, 'num_negatives': 256, 'temperature': 0.3}
    indices = sample_reco_indices(rep, label, mask, prob,
                                  generator=torch.Generator().manual_seed(0), **hyper)
    valid = mask & (label >= 0) & (label < 3)
    means = torch.stack([rep.permute(0, 2, 3, 1)[valid & (label == c)].mean(0) for c in range(3)])
    sizes = [int((valid & (label == c)).sum()) for c in range(3)]
    own = prob.gather(1, label.clamp(0, 2)[:, None])[:, 0]
    hard_sizes = [int((valid & (label == c) & (own < hyper['strong_threshold'])).sum())
                  for c in range(3)]
    for k in range(3):
        others = [j for j in range(3) if j != k]
        expected = torch.softmax(torch.stack([F.cosine_similarity(means[k], means[j], dim=0)
                                              for j in others]) / 0.3, dim=0)
        drawn = indices.negative_class[k].flatten()
        observed = torch.stack([(drawn == j).float().mean() for j in others])
        assert (drawn != k).all()
        torch.testing.assert_close(observed, expected, atol=0.02, rtol=0)
        for j in others:
            picked = indices.negative_index[k][indices.negative_class[k] == j]
            assert picked.min() >= 0 and picked.max() < sizes[j]
        assert indices.query[k].min() >= 0 and indices.query[k].max() < hard_sizes[k]


def test_indices_for_other_inputs_are_refused():
    rep, label, mask, prob = make_inputs(9)
    indices = sample_reco_indices(rep, label, mask, prob, **HYPER)
    with pytest.raises(ValueError, match='classes'):
        reco_loss(rep, torch.where(label == 3, 0, label), mask, prob, indices=indices, **HYPER)
    with pytest.raises(ValueError, match='shapes'):
        reco_loss(rep, label, mask, prob, indices=indices, **{**HYPER, 'num_negatives': 3})
    bad = ReCoIndices(indices.classes, indices.query, indices.negative_class,
                      indices.negative_index + 1000)
    with pytest.raises(ValueError, match='range'):
        reco_loss(rep, label, mask, prob, indices=bad, **HYPER)


# ----------------------------------------------------------------------------- weighted CE
def make_ce_inputs(seed, batch=3, num_classes=5, size=5):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(batch, num_classes, size, size, generator=gen)
    label = torch.randint(num_classes, (batch, size, size), generator=gen)
    void = torch.rand(batch, size, size, generator=gen)
    label = torch.where(void < 0.1, 255, torch.where(void < 0.2, -1, label))
    confidence = torch.rand(batch, size, size, generator=gen) * 0.1 + 0.9
    return logits, label, confidence


@pytest.mark.parametrize('bug_compat', [False, True])
def test_confidence_weighted_ce_matches_the_reference(bug_compat):
    logits, label, confidence = make_ce_inputs(0)
    label[1] = 255  # an image with no valid pixel: weight 0, no NaN
    loss, grad = loss_and_grad(confidence_weighted_ce, logits, label, confidence, 0.95,
                               bug_compat=bug_compat)
    ref_loss, ref_grad = loss_and_grad(
        lambda z: reference_weighted_ce(z, label, confidence, 0.95, 255, bug_compat), logits)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    ignored = (label < 0) | (label == 255)
    assert grad.permute(1, 0, 2, 3)[:, ignored].abs().max() == 0


def test_bug_compat_changes_the_normaliser_only_when_a_ce_underflows_to_zero():
    logits, label, confidence = make_ce_inputs(1)
    fixed = confidence_weighted_ce(logits, label, confidence, 0.95)
    compat = confidence_weighted_ce(logits, label, confidence, 0.95, bug_compat=True)
    torch.testing.assert_close(fixed, compat)  # every valid CE > 0: same value
    valid = (label >= 0) & (label != 255)
    for b, y, x in valid.nonzero()[:4].tolist():  # four perfectly confident valid pixels
        logits[b, :, y, x] = -1000.0
        logits[b, label[b, y, x], y, x] = 1000.0
    fixed = confidence_weighted_ce(logits, label, confidence, 0.95)
    compat = confidence_weighted_ce(logits, label, confidence, 0.95, bug_compat=True)
    num_valid = int(valid.sum())
    torch.testing.assert_close(compat, fixed * num_valid / (num_valid - 4))
    for bug_compat in (False, True):
        torch.testing.assert_close(
            confidence_weighted_ce(logits, label, confidence, 0.95, bug_compat=bug_compat),
            reference_weighted_ce(logits, label, confidence, 0.95, 255, bug_compat))


def test_confidence_weighted_ce_with_nothing_valid_is_zero_with_a_graph():
    logits, label, confidence = make_ce_inputs(2)
    logits.requires_grad_(True)
    loss = confidence_weighted_ce(logits, torch.full_like(label, 255), confidence, 0.97)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_confidence_weighted_ce_other_ignore_index_and_weights():
    """ignore_index=-1 (the original's void) and the per-image weights by hand."""
    logits = torch.zeros(2, 3, 1, 4)
    label = torch.tensor([[[0, 1, -1, -1]], [[2, 2, 2, 0]]])
    confidence = torch.tensor([[[0.99, 0.5, 0.0, 0.0]], [[0.99, 0.98, 0.97, 0.1]]])
    loss = confidence_weighted_ce(logits, label, confidence, 0.97, ignore_index=-1)
    ce = torch.log(torch.tensor(3.0))  # uniform logits
    weights = torch.tensor([1 / 2] * 2 + [3 / 4] * 4)
    torch.testing.assert_close(loss, (weights * ce).sum() / 6)
