"""ReCo / U2PL mixing and strong augmentation (densessl.semisup.mixing) against slow
references written from the spec (shared/specs/semisup.md 1(a) "Mixing strategies", 2(a)):
pixel loops over injected boxes, classes and partners; torchvision for the colour ops. The
references never call the module under test."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from densessl.semisup import mixing as mx

B, H, W, C = 4, 10, 13, 6


def batch(seed=0, batch_size=B, height=H, width=W, num_classes=C):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, height, width, generator=g)
    labels = torch.randint(0, num_classes, (batch_size, height, width), generator=g)
    confidence = torch.rand(batch_size, height, width, generator=g)
    return images, labels, confidence


def tagged_batch(batch_size=B, height=H, width=W, num_classes=C, seed=0):
    """Images whose pixel (b, y, x) holds (b, y, x): the output shows where each pixel came
    from. Labels in blocks so that images have different class sets."""
    images = torch.stack(torch.meshgrid(torch.arange(batch_size), torch.arange(height),
                                        torch.arange(width), indexing='ij'), dim=1).float()
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (batch_size, height, width), generator=g)
    labels[1] = labels[1] % 2          # image 1 has 2 classes at most
    labels[2] = 3                      # image 2 has 1 class: ClassMix keeps nothing
    confidence = torch.arange(batch_size * height * width, dtype=torch.float32).reshape(
        batch_size, height, width) / 1000
    return images, labels, confidence


# ----------------------------------------------------------------------------- references
def reference_mix(images, labels, confidence, keep, partners):
    """x'[b, ., y, x] = keep(b, y, x) ? x[b] : x[partners[b]], pixel by pixel."""
    out_i, out_l, out_c = images.clone(), labels.clone(), confidence.clone()
    for b in range(images.shape[0]):
        for y in range(images.shape[2]):
            for x in range(images.shape[3]):
                src = b if keep(b, y, x) else int(partners[b])
                out_i[b, :, y, x] = images[src, :, y, x]
                out_l[b, y, x] = labels[src, y, x]
                out_c[b, y, x] = confidence[src, y, x]
    return out_i, out_l, out_c


def in_box(box, y, x):
    x0, y0, x1, y1 = (int(v) for v in box)
    return x0 <= x < x1 and y0 <= y < y1


def reference_cutout(images, labels, confidence, boxes, ignore):
    out_i, out_l, out_c = images.clone(), labels.clone(), confidence.clone()
    for b in range(images.shape[0]):
        for y in range(images.shape[2]):
            for x in range(images.shape[3]):
                if in_box(boxes[b], y, x):
                    out_i[b, :, y, x] = 0
                    out_l[b, y, x] = ignore
                    out_c[b, y, x] = 0
    return out_i, out_l, out_c


BOXES = torch.tensor([[0, 0, 7, 9], [5, 2, 13, 10], [3, 1, 10, 10], [6, 4, 13, 10]])


def neighbours(n):
    return [(i + 1) % n for i in range(n)]


# ----------------------------------------------------------------------------- exact mixing
@pytest.mark.parametrize('partners', [None, torch.tensor([2, 0, 3, 1])])
def test_cutmix_matches_reference(partners):
    images, labels, confidence = batch()
    expected_partners = neighbours(B) if partners is None else partners.tolist()
    expected = reference_mix(images, labels, confidence,
                             lambda b, y, x: not in_box(BOXES[b], y, x), expected_partners)
    got = mx.cutmix(images, labels, confidence, BOXES, partners)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


@pytest.mark.parametrize('ignore', [255, -1])
def test_cutout_matches_reference(ignore):
    images, labels, confidence = batch(1)
    expected = reference_cutout(images, labels, confidence, BOXES, ignore)
    got = mx.cutout(images, labels, confidence, BOXES, ignore_index=ignore)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    assert torch.equal(labels, batch(1)[1])  # inputs untouched


def test_classmix_matches_reference():
    images, labels, confidence = batch(2)
    labels[0, 0, :3] = 255  # ignored pixels are no class: they come from the partner
    chosen_lists = [[0, 4], [1], [], [2, 3, 5]]
    chosen = torch.zeros(B, C, dtype=torch.bool)
    for b, classes in enumerate(chosen_lists):
        chosen[b, classes] = True
    expected = reference_mix(images, labels, confidence,
                             lambda b, y, x: int(labels[b, y, x]) in chosen_lists[b],
                             neighbours(B))
    got = mx.classmix(images, labels, confidence, chosen)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


# ----------------------------------------------------------------------------- sampled mixing
def test_sampled_classmix_keeps_exactly_half_the_classes_of_image_i():
    images, labels, confidence = tagged_batch()
    labels[0, :2] = 255
    g = torch.Generator().manual_seed(5)
    chosen = mx.sample_classmix_classes(labels, C, g)
    out_i, out_l, out_c = mx.classmix(images, labels, confidence, chosen)
    for b in range(B):
        present = {int(v) for v in labels[b].unique() if int(v) != 255}
        picked = {c for c in range(C) if chosen[b, c]}
        assert picked <= present and len(picked) == len(present) // 2
        partner = (b + 1) % B
        source = out_i[b, 0].long()                      # the image each pixel came from
        own = torch.tensor([[int(labels[b, y, x]) in picked for x in range(W)]
                            for y in range(H)])
        assert torch.equal(source == b, own)
        assert torch.equal(source[~own], torch.full_like(source[~own], partner))
        # position unchanged; label and confidence travel with the pixel
        assert torch.equal(out_i[b, 1].long(), torch.arange(H)[:, None].expand(H, W))
        assert torch.equal(out_i[b, 2].long(), torch.arange(W)[None].expand(H, W))
        for y in range(H):
            for x in range(W):
                s = int(source[y, x])
                assert out_l[b, y, x] == labels[s, y, x]
                assert out_c[b, y, x] == confidence[s, y, x]
    assert not chosen[2].any()  # one class, floor(1/2) = 0: image 2 is all partner
    # without num_classes: the largest valid label + 1 (the ignore label is no class)
    inferred = mx.sample_classmix_classes(labels, None, torch.Generator().manual_seed(5))
    assert inferred.shape == (B, int(labels[labels != 255].max()) + 1)


def test_classmix_choice_is_uniform_over_halves():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    labels[0, 0, 0], labels[0, 0, 1], labels[0, 1, 0], labels[0, 1, 1] = 0, 1, 2, 3
    g = torch.Generator().manual_seed(0)
    seen = {}
    for _ in range(600):
        key = tuple(mx.sample_classmix_classes(labels, 4, g)[0].nonzero().flatten().tolist())
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 6 and all(len(k) == 2 for k in seen)  # C(4, 2) pairs, all seen
    assert min(seen.values()) > 60


@pytest.mark.parametrize('height,width', [(10, 13), (7, 3), (33, 64), (64, 31), (1, 8)])
def test_cutmix_box_sizes_follow_the_spec(height, width):
    g = torch.Generator().manual_seed(height * 100 + width)
    boxes = mx.sample_cutout_boxes(500, height, width, g)
    area = height * width / 2
    widths_seen = set()
    for x0, y0, x1, y1 in boxes.tolist():
        w, h = x1 - x0, y1 - y0
        widths_seen.add(w)
        assert math.floor(width / 2 + 1) <= w <= width - 1
        assert h == round(area / w)  # Python's round is half-to-even, as np.round
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height
        assert abs(w * h - area) <= w / 2
    assert widths_seen == set(range(math.floor(width / 2 + 1), width))


def test_mix_batch_cutout_and_u2pl_coin():
    images, labels, confidence = batch(3)
    g = torch.Generator().manual_seed(0)
    out = mx.mix_batch(images, labels, confidence, 'cutout', g)
    ignored = (out.labels == 255).sum(dim=(1, 2))
    assert out.applied and ignored.min() > 0
    assert torch.equal((out.confidence == 0).sum(dim=(1, 2)), ignored)
    # U2PL: one coin per batch; probability 0 leaves the batch alone
    skipped = mx.mix_batch(images, labels, confidence, 'cutmix', g, probability=0.0)
    assert not skipped.applied and skipped.labels is labels
    decisions = [mx.mix_batch(images, labels, confidence, 'cutmix', g,
                              probability=mx.U2PL_MIX_PROBABILITY).applied for _ in range(200)]
    assert 60 < sum(decisions) < 140


def test_mix_batch_is_deterministic_given_the_generator():
    images, labels, confidence = batch(4)
    for mode in ('cutout', 'cutmix', 'classmix'):
        a = mx.mix_batch(images, labels, confidence, mode, torch.Generator().manual_seed(9))
        b = mx.mix_batch(images, labels, confidence, mode, torch.Generator().manual_seed(9))
        assert all(torch.equal(x, y) for x, y in
                   zip((a.images, a.labels, a.confidence), (b.images, b.labels, b.confidence)))


# ----------------------------------------------------------------------------- colour
def test_colour_adjustments_match_torchvision():
    images = torch.rand(3, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    factors = torch.tensor([[0.8, 1.2, 0.9, 0.2], [1.25, 0.75, 1.1, -0.25], [1.0, 1.0, 1.0, 0.0]])
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for op, fn in enumerate(ops):
        got = mx.adjust(images, op, factors[:, op])
        want = torch.stack([fn(images[b], float(factors[b, op])) for b in range(3)])
        assert torch.allclose(got, want, atol=1e-5), op


def test_colour_jitter_applies_the_ops_in_the_given_order():
    images = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(2))
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    params = mx.StrongAugParams(
        jitter=torch.tensor([True, False]),
        factors=torch.tensor([[1.2, 0.8, 1.1, 0.1], [0.8, 0.8, 0.8, 0.1]], dtype=torch.float64),
        order=torch.tensor([[3, 0, 2, 1], [0, 1, 2, 3]]), blur=torch.tensor([False, False]),
        sigma=torch.tensor([0.5, 0.5]), flip=torch.tensor([False, False]))
    want = images[0]
    for op in (3, 0, 2, 1):
        want = ops[op](want, float(params.factors[0, op]))
    got = mx.colour_jitter(images, params)
    assert torch.allclose(got[0], want, atol=1e-5)
    assert torch.equal(got[1], images[1])


def test_gaussian_blur_matches_a_pixel_loop():
    images = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64)
    sigma = torch.tensor([0.4, 1.1], dtype=torch.float64)
    got = mx.gaussian_blur(images, sigma)
    radius = math.ceil(3 * 1.1)
    for b in range(2):
        weights = [math.exp(-k * k / (2 * float(sigma[b]) ** 2))
                   for k in range(-radius, radius + 1)]
        total = sum(weights)
        for y in range(5):
            for x in range(6):
                acc = 0.0
                for i, wy in enumerate(weights):
                    for j, wx in enumerate(weights):
                        yy = min(max(y + i - radius, 0), 4)
                        xx = min(max(x + j - radius, 0), 5)
                        acc = acc + wy * wx * images[b, :, yy, xx] / total ** 2
                assert torch.allclose(got[b, :, y, x], acc, atol=1e-12)


def test_colour_augmentation_touches_only_the_image():
    images, labels, confidence = batch(5)
    no_flip = mx.StrongAugOptions(jitter_p=1.0, blur_p=1.0, flip_p=0.0)
    out_i, out_l, out_c = mx.reco_strong_augment(images, labels, confidence,
                                                 torch.Generator().manual_seed(0), no_flip)
    assert torch.equal(out_l, labels) and torch.equal(out_c, confidence)
    assert not torch.allclose(out_i, images, atol=1e-3)
    # the flip moves all three together
    flip_all = mx.StrongAugOptions(jitter_p=0.0, blur_p=0.0, flip_p=1.0)
    out_i, out_l, out_c = mx.reco_strong_augment(images, labels, confidence,
                                                 torch.Generator().manual_seed(0), flip_all)
    assert torch.equal(out_l, labels.flip(-1)) and torch.equal(out_c, confidence.flip(-1))
    assert torch.allclose(out_i, images.flip(-1), atol=1e-5)


def test_reco_strong_augment_probabilities():
    params = mx.sample_strong_aug(4000, torch.Generator().manual_seed(0))
    assert abs(params.jitter.float().mean() - 0.8) < 0.03
    assert abs(params.blur.float().mean() - 0.5) < 0.03
    assert abs(params.flip.float().mean() - 0.5) < 0.03
    assert params.factors[:, :3].min() >= 0.75 and params.factors[:, :3].max() <= 1.25
    assert params.factors[:, 3].abs().max() <= 0.25
    assert params.sigma.min() >= 0.15 and params.sigma.max() <= 1.15
    assert torch.equal(params.order.sort(dim=1).values, torch.arange(4).expand(4000, 4))
