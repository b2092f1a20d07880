"""SlotCon core (densessl/slotcon) against plain, slow references written from the spec
(shared/specs/pretrain.md 2(a), 6.7): loops over images, prototypes and pixels, float64."""
import copy
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from densessl.slotcon import (DINOHead1d, DINOHead2d, SemanticGrouping, SlotConBranch,
                              SlotConViewOutputs, align_to_overlap, batch_center, ema_update_,
                              grouping_loss, query_selection, slot_contrastive_loss,
                              slot_validity, slotcon_loss, teacher_momentum, updated_center)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- references (from the spec)

def ref_grouping(x, prototypes, temperature, eps=1e-6):
    """Per pixel, per prototype: cosine, softmax over k (+eps), weighted mean of x."""
    x, prototypes = x.double(), prototypes.double()
    num, dim, height, width = x.shape
    num_prototypes = prototypes.shape[0]
    dots = torch.zeros(num, num_prototypes, height, width, dtype=torch.float64)
    slots = torch.zeros(num, num_prototypes, dim, dtype=torch.float64)
    for b in range(num):
        attn = torch.zeros(num_prototypes, height, width, dtype=torch.float64)
        for h in range(height):
            for w in range(width):
                pixel = x[b, :, h, w]
                for k in range(num_prototypes):
                    dots[b, k, h, w] = (prototypes[k] @ pixel) / (prototypes[k].norm() * pixel.norm())
                exps = [math.exp(float(dots[b, k, h, w]) / temperature) for k in range(num_prototypes)]
                for k in range(num_prototypes):
                    attn[k, h, w] = exps[k] / sum(exps) + eps
        for k in range(num_prototypes):
            total = torch.zeros(dim, dtype=torch.float64)
            for h in range(height):
                for w in range(width):
                    total += attn[k, h, w] * x[b, :, h, w]
            slots[b, k] = total / attn[k].sum()
    return slots, dots


def ref_grouping_loss(student, teacher, center, student_temp, teacher_temp):
    student, teacher, center = student.double(), teacher.double(), center.double().reshape(-1)
    num, num_prototypes, height, width = student.shape
    total = 0.0
    for b in range(num):
        for h in range(height):
            for w in range(width):
                t = [math.exp((float(teacher[b, k, h, w]) - float(center[k])) / teacher_temp)
                     for k in range(num_prototypes)]
                s = [float(student[b, k, h, w]) / student_temp for k in range(num_prototypes)]
                log_norm = math.log(sum(math.exp(v) for v in s))
                total += sum(-(t[k] / sum(t)) * (s[k] - log_norm) for k in range(num_prototypes))
    return total / (num * height * width)


def ref_batch_center(dots_list):
    num_prototypes = dots_list[0].shape[1]
    sums, count = [0.0] * num_prototypes, 0
    for dots in dots_list:
        for b in range(dots.shape[0]):
            for h in range(dots.shape[2]):
                for w in range(dots.shape[3]):
                    count += 1
                    for k in range(num_prototypes):
                        sums[k] += float(dots[b, k, h, w])
    return torch.tensor([[v / count for v in sums]], dtype=torch.float64)


def ref_validity(dots):
    num, num_prototypes, height, width = dots.shape
    valid = torch.zeros(num, num_prototypes, dtype=torch.bool)
    for b in range(num):
        for h in range(height):
            for w in range(width):
                scores = [float(dots[b, k, h, w].detach()) for k in range(num_prototypes)]
                valid[b, scores.index(max(scores))] = True
    return valid


def ref_contrastive(queries, query_bk, keys_per_rank, valid_per_rank, rank, temperature):
    """queries (Nq, D) with their (b, k); keys/validity of every process; labels looked up
    one by one in the list of valid keys (process-major, then b, then k)."""
    key_list, position = [], {}
    for r, (keys, valid) in enumerate(zip(keys_per_rank, valid_per_rank)):
        for b in range(keys.shape[0]):
            for k in range(keys.shape[1]):
                if valid[b, k]:
                    position[(r, b, k)] = len(key_list)
                    key_list.append(keys[b, k].double() / keys[b, k].double().norm())
    total = 0.0
    for q, (b, k) in zip(queries.double(), query_bk):
        q = q / q.norm()
        logits = [float(q @ key) / temperature for key in key_list]
        label = position[(rank, b, k)]
        total += -(logits[label] - math.log(sum(math.exp(v) for v in logits)))
    return total / len(query_bk) * 2 * temperature


def random_dots(seed, num=3, num_prototypes=6, height=5, width=4, sharpen=1.0):
    return torch.randn(num, num_prototypes, height, width, generator=gen(seed)) * sharpen


# ---------------------------------------------------------------- grouping

def test_semantic_grouping_matches_the_per_pixel_reference():
    grouping = SemanticGrouping(num_prototypes=5, dim=8, temperature=0.07)
    # pixels share a direction u; prototype 0 = -u is nobody's choice, so its softmax weights
    # (~1e-11) are below the 1e-6 added to them and its slot is close to the plain mean of x
    direction = F.normalize(torch.randn(8, generator=gen(0)), dim=0)
    with torch.no_grad():
        grouping.prototypes.weight.copy_(torch.randn(5, 8, generator=gen(1)))
        grouping.prototypes.weight[0] = -direction
    x = torch.randn(2, 8, 4, 5, generator=gen(2)) * 0.15 + direction[:, None, None]
    slots, dots = grouping(x)
    ref_slots, ref_dots = ref_grouping(x, grouping.prototypes.weight.detach(), 0.07)
    assert slots.shape == (2, 5, 8) and dots.shape == (2, 5, 4, 5)
    assert float(dots[:, 0].detach().max()) < -0.5
    torch.testing.assert_close(dots.double(), ref_dots, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(slots.double(), ref_slots, atol=1e-5, rtol=1e-4)


def test_semantic_grouping_pools_the_unnormalised_features():
    """Scaling x leaves the cosine dots alone and scales the slots (x is pooled as is)."""
    grouping = SemanticGrouping(4, 6)
    x = torch.randn(2, 6, 3, 3, generator=gen(3))
    slots, dots = grouping(x)
    slots3, dots3 = grouping(3 * x)
    torch.testing.assert_close(dots3, dots)
    torch.testing.assert_close(slots3, 3 * slots)


# ---------------------------------------------------------------- losses

def test_grouping_loss_matches_the_reference():
    student, teacher = random_dots(4), random_dots(5)
    center = torch.randn(1, 6, generator=gen(6)) * 0.3
    value = grouping_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.07)
    assert value.dim() == 0
    assert float(value) == pytest.approx(ref_grouping_loss(student, teacher, center, 0.1, 0.07),
                                         rel=1e-5)


def test_grouping_loss_gives_no_gradient_to_the_teacher():
    student = random_dots(7).requires_grad_()
    teacher = random_dots(8).requires_grad_()
    grouping_loss(student, teacher, torch.zeros(1, 6)).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_batch_center_and_updated_center():
    dots = [random_dots(9), random_dots(10, height=5, width=4)]
    center = batch_center(dots)
    assert center.shape == (1, 6)
    torch.testing.assert_close(center.double(), ref_batch_center(dots))
    old = torch.randn(1, 6, generator=gen(11))
    new = updated_center(old, center, momentum=0.9)
    torch.testing.assert_close(new, torch.tensor([[0.9 * float(old[0, k]) + 0.1 * float(center[0, k])
                                                   for k in range(6)]]))


def test_slot_validity_and_query_selection_match_loops():
    # sharpened teacher-like maps with a few prototypes never winning
    student = random_dots(12, num_prototypes=8)
    teacher = random_dots(13, num_prototypes=8)
    student[:, 2] -= 5
    teacher[:, 5] -= 5
    valid_s, valid_t = slot_validity(student), slot_validity(teacher)
    torch.testing.assert_close(valid_s, ref_validity(student))
    torch.testing.assert_close(valid_t, ref_validity(teacher))
    assert not valid_s[:, 2].any() and not valid_t[:, 5].any() and valid_s.any()
    selected = query_selection(student, teacher)
    expected = torch.zeros_like(selected)
    for b in range(3):
        for k in range(8):
            expected[b, k] = bool(valid_s[b, k]) and bool(valid_t[b, k])
    torch.testing.assert_close(selected, expected)


def contrast_inputs(seed, num=3, num_prototypes=7, dim=5, invalid=0.4):
    g = gen(seed)
    keys = torch.randn(num, num_prototypes, dim, generator=g)
    key_valid = torch.rand(num, num_prototypes, generator=g) > invalid
    selected = key_valid & (torch.rand(num, num_prototypes, generator=g) > 0.3)
    query_index = selected.reshape(-1).nonzero().squeeze(1)
    queries = torch.randn(query_index.numel(), dim, generator=g)
    query_bk = [divmod(int(i), num_prototypes) for i in query_index]
    return queries, query_index, query_bk, keys, key_valid


def test_slot_contrastive_loss_matches_the_reference_with_invalid_slots():
    queries, query_index, query_bk, keys, key_valid = contrast_inputs(14)
    assert (~key_valid).any() and 0 < queries.shape[0] < key_valid.sum()
    value = slot_contrastive_loss(queries, query_index, keys, key_valid, temperature=0.2)
    expected = ref_contrastive(queries, query_bk, [keys], [key_valid], 0, 0.2)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_slot_contrastive_loss_with_a_custom_gather_and_rank():
    """As process 1 of 2: the keys of process 0 come first, labels shift by B*K."""
    queries, query_index, query_bk, keys, key_valid = contrast_inputs(15)
    _, _, _, keys0, valid0 = contrast_inputs(16)
    other = torch.cat([F.normalize(keys0.reshape(-1, 5), dim=1),
                       valid0.reshape(-1, 1).float()], dim=1)
    value = slot_contrastive_loss(queries, query_index, keys, key_valid, 0.2,
                                  all_gather=lambda t: torch.cat([other, t]), rank=1)
    expected = ref_contrastive(queries, query_bk, [keys0, keys], [valid0, key_valid], 1, 0.2)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_slot_contrastive_loss_gradient_reaches_queries_only():
    queries, query_index, _, keys, key_valid = contrast_inputs(17)
    queries.requires_grad_()
    keys.requires_grad_()
    slot_contrastive_loss(queries, query_index, keys, key_valid).backward()
    assert queries.grad.abs().sum() > 0 and keys.grad is None


def test_slot_contrastive_loss_rejects_a_query_whose_key_is_invalid():
    queries, query_index, _, keys, key_valid = contrast_inputs(18)
    key_valid = key_valid.clone()
    key_valid.view(-1)[query_index[0]] = False
    with pytest.raises(ValueError, match='not valid in the key view'):
        slot_contrastive_loss(queries, query_index, keys, key_valid)


def _contrast_worker(rank, world_size, store, out):
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank,
                            world_size=world_size)
    try:
        queries, query_index, _, keys, key_valid = contrast_inputs(20 + rank)
        out[rank] = float(slot_contrastive_loss(queries, query_index, keys, key_valid, 0.2))
        out[f'center{rank}'] = batch_center([random_dots(30 + rank), random_dots(40 + rank)])
    finally:
        dist.destroy_process_group()


def test_slot_contrastive_loss_and_batch_center_on_two_processes(tmp_path):
    """Each process: InfoNCE over the valid keys of both processes, its own label offset; the
    batch centre is the mean over both processes."""
    out = mp.get_context('fork').Manager().dict()
    # fork: pytest imports this module with --import-mode=importlib, so a spawned child
    # could not import the worker by name
    mp.start_processes(_contrast_worker, args=(2, str(tmp_path / 'store'), out), nprocs=2,
                       start_method='fork')
    inputs = [contrast_inputs(20 + rank) for rank in range(2)]
    keys = [item[3] for item in inputs]
    valid = [item[4] for item in inputs]
    for rank in range(2):
        queries, _, query_bk = inputs[rank][:3]
        expected = ref_contrastive(queries, query_bk, keys, valid, rank, 0.2)
        assert out[rank] == pytest.approx(expected, rel=1e-5)
    assert out[0] != pytest.approx(out[1])
    all_dots = [random_dots(seed) for seed in (30, 40, 31, 41)]
    for rank in range(2):
        torch.testing.assert_close(out[f'center{rank}'].double(), ref_batch_center(all_dots))


def view_outputs(seed, num=3, num_prototypes=6, dim=4, requires_grad=False):
    g = gen(seed)
    dots = torch.randn(num, num_prototypes, 4, 4, generator=g) * 2
    aligned = torch.randn(num, num_prototypes, 4, 4, generator=g) * 2
    slots = torch.randn(num, num_prototypes, dim, generator=g)
    if requires_grad:
        for t in (dots, aligned, slots):
            t.requires_grad_()
    return SlotConViewOutputs(slots=slots, dots=dots, aligned_dots=aligned)


def ref_slotcon_loss(student, teacher, predictor, center, w=0.5):
    total_g, total_c = 0.0, 0.0
    for a, b in ((0, 1), (1, 0)):
        total_g += ref_grouping_loss(student[a].aligned_dots.detach(), teacher[b].aligned_dots,
                                     center, 0.1, 0.07)
        valid_q, valid_k = ref_validity(student[a].dots), ref_validity(teacher[b].dots)
        query_bk = [(i, k) for i in range(valid_q.shape[0]) for k in range(valid_q.shape[1])
                    if valid_q[i, k] and valid_k[i, k]]
        rows = torch.stack([student[a].slots[i, k] for i, k in query_bk]).detach()
        with torch.no_grad():
            queries = predictor(rows.double())
        total_c += ref_contrastive(queries, query_bk, [teacher[b].slots], [valid_k], 0, 0.2)
    return w * total_g + (1 - w) * total_c


def test_slotcon_loss_composes_the_references_with_the_given_center():
    student = [view_outputs(50, requires_grad=True), view_outputs(51, requires_grad=True)]
    teacher = [view_outputs(52), view_outputs(53)]
    predictor = DINOHead1d(4, 16, 4)
    reference_predictor = copy.deepcopy(predictor).double()
    center = torch.randn(1, 6, generator=gen(54)) * 0.5
    before = center.clone()
    loss, terms = slotcon_loss(student, teacher, predictor, center)
    torch.testing.assert_close(center, before)   # the loss does not move the centre
    expected = ref_slotcon_loss(student, teacher, reference_predictor, center)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert float(0.5 * terms['grouping'] + 0.5 * terms['contrastive']) == pytest.approx(
        loss.item(), rel=1e-6)
    assert terms['queries_1to2'] > 0 and terms['queries_2to1'] > 0
    # the caller's update afterwards gives a different centre, which would change the loss
    moved = updated_center(center, batch_center([t.dots for t in teacher]))
    assert expected != pytest.approx(ref_slotcon_loss(student, teacher, reference_predictor,
                                                      moved), rel=1e-4)
    loss.backward()
    assert all(t.grad is not None for view in student for t in (view.slots, view.aligned_dots))
    assert predictor.mlp[0].weight.grad is not None


@pytest.mark.parametrize('teacher_images_with_k0', [0, 1])
def test_slotcon_loss_with_fewer_than_two_queries_skips_the_contrast(teacher_images_with_k0):
    """Student maps pick prototype 0 everywhere, teacher maps prototype 1 (and prototype 0 on
    one pixel of the first ``teacher_images_with_k0`` images): 0 or 1 queries per direction,
    which the predictor's BatchNorm cannot take."""
    student = [view_outputs(60, requires_grad=True), view_outputs(61, requires_grad=True)]
    teacher = [view_outputs(62), view_outputs(63)]
    with torch.no_grad():
        for view in student:
            view.dots[:, 0] += 100
        for view in teacher:
            view.dots[:, 1] += 100
            view.dots[:teacher_images_with_k0, 0, 0, 0] += 1000
    predictor = DINOHead1d(4, 16, 4)
    running = predictor.mlp[1].running_mean.clone()
    center = torch.zeros(1, 6)
    loss, terms = slotcon_loss(student, teacher, predictor, center)
    assert terms['queries_1to2'] == terms['queries_2to1'] == teacher_images_with_k0
    assert float(terms['contrastive']) == 0.0
    expected = 0.5 * sum(ref_grouping_loss(s.aligned_dots.detach(), t.aligned_dots, center, 0.1, 0.07)
                         for s, t in ((student[0], teacher[1]), (student[1], teacher[0])))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.count_nonzero(predictor.mlp[0].weight.grad) == 0
    torch.testing.assert_close(predictor.mlp[1].running_mean, running)


def test_slotcon_branch_composes_encoder_projector_grouping_and_alignment():
    torch.manual_seed(0)
    branch = SlotConBranch(nn.Conv2d(3, 8, 3, stride=4, padding=1), DINOHead2d(8, 16, 4),
                           SemanticGrouping(6, 4))
    images = torch.randn(2, 3, 20, 20, generator=gen(55))
    boxes = torch.tensor([[0.1, 0.2, 0.9, 0.7], [0.0, 0.0, 1.0, 1.0]])
    flipped = torch.tensor([True, False])
    out = branch(images, boxes, flipped)
    slots, dots = branch.grouping(branch.projector(branch.encoder(images)))
    assert out.slots.shape == (2, 6, 4) and out.dots.shape == (2, 6, 5, 5)
    torch.testing.assert_close(out.slots, slots)
    torch.testing.assert_close(out.aligned_dots, align_to_overlap(dots, boxes, flipped))


def test_slotcon_branch_in_channels_last_layout_gives_the_same_outputs():
    torch.manual_seed(0)
    branch = SlotConBranch(nn.Conv2d(3, 8, 3, stride=4, padding=1), DINOHead2d(8, 16, 4),
                           SemanticGrouping(6, 4))
    other = SlotConBranch(copy.deepcopy(branch.encoder), copy.deepcopy(branch.projector),
                          copy.deepcopy(branch.grouping), channels_last=True)
    assert other.encoder.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 20, 20, generator=gen(56))
    boxes, flipped = torch.tensor([[0.1, 0.2, 0.9, 0.7], [0.0, 0.0, 1.0, 1.0]]), torch.tensor([True, False])
    out, out_cl = branch(images, boxes, flipped), other(images, boxes, flipped)
    for name in ('slots', 'dots', 'aligned_dots'):
        torch.testing.assert_close(getattr(out_cl, name), getattr(out, name), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- alignment

IMAGE = 240  # fine grid of the "image" feature map


def smooth_image(seed, channels=3):
    """(1, C, IMAGE, IMAGE): a few random sinusoids of at most one cycle across the image."""
    g = gen(seed)
    coords = (torch.arange(IMAGE, dtype=torch.float64) + 0.5) / IMAGE
    y, x = torch.meshgrid(coords, coords, indexing='ij')
    image = torch.zeros(1, channels, IMAGE, IMAGE, dtype=torch.float64)
    for c in range(channels):
        for _ in range(3):
            fy, fx = (torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1).tolist()
            phase = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * math.pi
            image[0, c] += torch.sin(2 * math.pi * (fy * y + fx * x) + phase)
    return image


def resample(image, box, height, width):
    """Bilinear samples of the image at the pixel centres of an H x W grid over ``box``
    (x1, y1, x2, y2) in image pixel-edge coordinates (grid_sample, align_corners=False)."""
    x1, y1, x2, y2 = box
    xs = x1 + (torch.arange(width, dtype=torch.float64) + 0.5) * (x2 - x1) / width
    ys = y1 + (torch.arange(height, dtype=torch.float64) + 0.5) * (y2 - y1) / height
    gy, gx = torch.meshgrid(2 * ys / IMAGE - 1, 2 * xs / IMAGE - 1, indexing='ij')
    grid = torch.stack([gx, gy], dim=-1)[None]
    return F.grid_sample(image, grid, mode='bilinear', align_corners=False)


def normalised(box, crop, mirror):
    """Overlap ``box`` in ``crop``'s normalised coordinates (mirrored when flipped)."""
    cx1, cy1, cx2, cy2 = crop
    x1, x2 = (box[0] - cx1) / (cx2 - cx1), (box[2] - cx1) / (cx2 - cx1)
    y1, y2 = (box[1] - cy1) / (cy2 - cy1), (box[3] - cy1) / (cy2 - cy1)
    return [1 - x2, y1, 1 - x1, y2] if mirror else [x1, y1, x2, y2]


def aligned_views(flags_seen_by_alignment):
    """Two overlapping crops of one smooth image, each as an unflipped and a flipped view
    (H x W = 40 x 56): align_to_overlap on the four; and the overlap resampled directly."""
    image = smooth_image(60)
    crop1, crop2 = (20.0, 30.0, 170.0, 200.0), (70.0, 10.0, 230.0, 150.0)
    overlap = (70.0, 30.0, 170.0, 150.0)
    height, width = 40, 56
    maps, boxes = [], []
    for crop in (crop1, crop2):
        view = resample(image, crop, height, width)
        for flip in (False, True):
            maps.append(view.flip(-1) if flip else view)
            boxes.append(normalised(overlap, crop, flip))
    flipped = torch.tensor([False, True, False, True])
    out = align_to_overlap(torch.cat(maps).float(), torch.tensor(boxes, dtype=torch.float32),
                           flipped & torch.tensor(flags_seen_by_alignment))
    return out.double(), resample(image, overlap, height, width)


def test_align_to_overlap_brings_both_views_onto_the_same_region():
    aligned, direct = aligned_views([True] * 4)
    # Two bilinear resamplings (crop, then overlap) against one, on an image of range -3..3
    # varying by at most ~0.08 per grid pixel: inside, the curvature error is ~1e-3. On the
    # rows/columns where the overlap's edge is the crop's edge, the bin centre lies up to half a
    # view pixel (~1.5 grid pixels) beyond the outermost sample, where roi_align clamps: <= 0.03.
    for i in range(4):
        torch.testing.assert_close(aligned[i:i + 1, :, 1:-1, 1:-1], direct[..., 1:-1, 1:-1],
                                   atol=3e-3, rtol=0)
        torch.testing.assert_close(aligned[i:i + 1], direct, atol=0.03, rtol=0)
    torch.testing.assert_close(aligned[1:, :, 1:-1, 1:-1],
                               aligned[:1, :, 1:-1, 1:-1].expand(3, -1, -1, -1), atol=5e-3, rtol=0)
    assert direct.std() > 0.5


def test_align_to_overlap_fails_if_the_flip_were_ignored():
    aligned, direct = aligned_views([True, False, True, False])
    torch.testing.assert_close(aligned[0:1], direct, atol=0.03, rtol=0)
    for i in (1, 3):
        assert (aligned[i:i + 1] - direct).abs().max() > 0.5


# ---------------------------------------------------------------- teacher momentum / EMA

def test_teacher_momentum_follows_the_cosine_schedule():
    assert teacher_momentum(0, 1000) == pytest.approx(0.99, abs=1e-12)
    assert teacher_momentum(1000, 1000) == pytest.approx(1.0, abs=1e-12)
    assert teacher_momentum(500, 1000) == pytest.approx(0.995, abs=1e-12)         # cos = 0
    assert teacher_momentum(250, 1000) == pytest.approx(0.9914644661, abs=1e-10)  # cos = 1/sqrt2
    assert teacher_momentum(750, 1000) == pytest.approx(0.9985355339, abs=1e-10)
    assert teacher_momentum(100, 200, base=0.9) == pytest.approx(0.95, abs=1e-12)
    values = [teacher_momentum(k, 40) for k in range(41)]
    assert all(a < b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError, match='outside'):
        teacher_momentum(41, 40)
    with pytest.raises(ValueError, match='total_steps'):
        teacher_momentum(0, 0)


def small_branch(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), DINOHead2d(4, 8, 4))


def test_ema_update_moves_parameters_only():
    teacher, student = small_branch(0), small_branch(1)
    student.add_module('predictor', DINOHead1d(4, 8, 4))   # extra student parameters are fine
    with torch.no_grad():
        student[1].running_mean.fill_(5.0)
        teacher[1].running_mean.fill_(-2.0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_state = student.state_dict()
    ema_update_(teacher, student, 0.9)
    params = dict(teacher.named_parameters())
    for name, value in teacher.state_dict().items():
        if name in params:
            torch.testing.assert_close(value, 0.9 * before[name] + 0.1 * student_state[name])
        else:
            torch.testing.assert_close(value, before[name])   # buffers untouched
    assert float(teacher[1].running_mean[0]) == -2.0


def test_ema_update_names_a_missing_parameter():
    teacher, student = small_branch(0), small_branch(1)
    teacher.add_module('extra', nn.Linear(2, 2))
    with pytest.raises(KeyError, match='extra.weight'):
        ema_update_(teacher, student, 0.99)


# ---------------------------------------------------------------- heads

@pytest.mark.parametrize('head_class, linear, norm', [(DINOHead2d, nn.Conv2d, nn.BatchNorm2d),
                                                      (DINOHead1d, nn.Linear, nn.BatchNorm1d)])
def test_dino_heads_structure_init_and_shapes(head_class, linear, norm):
    torch.manual_seed(0)
    head = head_class(96, 512, 16)
    layers = list(head.mlp)
    assert [type(layer) for layer in layers] == [linear, norm, nn.GELU, linear, norm, nn.GELU,
                                                 linear]
    dims = [(96, 512), (512, 512), (512, 16)]
    for layer, (in_dim, out_dim) in zip(layers[::3], dims):
        weight = layer.weight.detach().reshape(out_dim, -1)
        assert weight.shape == (out_dim, in_dim)
        assert float(weight.std()) == pytest.approx(0.02, rel=0.05)   # default init: ~0.03+
        assert abs(float(weight.mean())) < 0.002
        assert torch.count_nonzero(layer.bias) == 0
    for layer in (layers[1], layers[4]):
        assert torch.all(layer.weight == 1) and torch.all(layer.bias == 0)
    if head_class is DINOHead2d:
        assert head(torch.randn(2, 96, 3, 5)).shape == (2, 16, 3, 5)
    else:
        assert head(torch.randn(4, 96)).shape == (4, 16)
