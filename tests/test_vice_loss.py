"""ViCE's dense SwAV head, loss and hooks against a slow per-region reference written from the
spec (shared/specs/pretrain.md 1(a) C-D and section 6)."""
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

import vissl_plugins  # noqa: F401  (registers the plugins)
from vissl_plugins.vice.dense_swav_head import DenseSwAVHead
from vissl_plugins.vice.dense_swav_hooks import (DenseSwAVNormalizePrototypesHook,
                                                 DenseSwAVQueueScoresHook, dense_swav_hooks)
from vissl_plugins.vice.dense_swav_loss import DenseSwAVConfigError, DenseSwAVLoss
from densessl.vice.sinkhorn import sinkhorn_knopp

TAU, EPS, ITERS = 0.1, 0.05, 3


# ---------------------------------------------------------------- slow reference (loops)
def reference_sinkhorn(scores, eps=EPS, iters=ITERS):
    """SwAV's Sinkhorn-Knopp on one process, float64: rows of Q^T sum to 1/K, columns 1/n."""
    q = torch.exp(scores.double() / eps).t()
    q = q / q.sum()
    k, n = q.shape
    for _ in range(iters):
        for row in range(k):
            q[row] = q[row] / q[row].sum() / k
        for col in range(n):
            q[:, col] = q[:, col] / q[:, col].sum() / n
    for col in range(n):
        q[:, col] = q[:, col] / q[:, col].sum()
    return q.t()


def reference_loss(embeddings, scores, superpixels, num_views, queue_scores=None):
    """Region by region, as the spec states it; regions matched across views by id."""
    num_maps, _, height, width = embeddings.shape
    num_images = num_maps // num_views
    pdist = nn.PairwiseDistance()  # eps 1e-6 added to the difference, as the original
    reps = {}
    coherence_per_map = []
    for b in range(num_maps):
        view, image = divmod(b, num_images)
        region_means = []
        for region in sorted(set(superpixels[b][superpixels[b] >= 0].tolist())):
            pixels = [(y, x) for y in range(height) for x in range(width)
                      if superpixels[b, y, x] == region]
            z = torch.stack([embeddings[b, :, y, x] for y, x in pixels])
            s = torch.stack([scores[b, :, y, x] for y, x in pixels])
            best = [float(s[j].max()) for j in range(len(pixels))]
            p_star = best.index(max(best))  # first pixel in raster order on ties
            z_star, s_star = z[p_star].detach(), s[p_star]
            region_means.append(pdist(z, z_star.expand_as(z)).mean())
            reps[(view, image, region)] = (z_star, s_star)
        if region_means:
            coherence_per_map.append(torch.stack(region_means).mean())
    loss_coherence = torch.stack(coherence_per_map).mean()

    view0 = sorted(key for key in reps if key[0] == 0)
    view0_scores = torch.stack([reps[key][1] for key in view0]).detach()
    if queue_scores is not None:
        view0_scores = torch.cat([view0_scores, queue_scores])
    q = reference_sinkhorn(view0_scores)[:len(view0)]
    row_of = {(image, region): i for i, (_, image, region) in enumerate(view0)}
    view_losses = []
    for view in range(1, num_views):
        terms = []
        for (v, image, region), (_, s_star) in sorted(reps.items()):
            if v == view and (image, region) in row_of:
                log_p = F.log_softmax(s_star / TAU, dim=0)
                terms.append(-(q[row_of[(image, region)]].float() * log_p).sum())
        if terms:
            view_losses.append(torch.stack(terms).mean())
    loss_swav = torch.stack(view_losses).mean()
    return (loss_coherence + loss_swav) / 2


# ---------------------------------------------------------------- inputs
def random_superpixels(num_views, num_images, size, num_regions, generator):
    """Blocky random region maps; ids shared across the views of an image, some -1."""
    blocks = torch.randint(0, num_regions, (num_images, size // 2, size // 2),
                           generator=generator)
    base = blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    maps = []
    for _ in range(num_views):
        view = base.clone()
        view[torch.rand(view.shape, generator=generator) < 0.1] = -1
        maps.append(view)
    return torch.cat(maps)  # (V*N, S, S) view-major


def head_and_inputs(num_views=3, num_images=2, size=12, dim=8, clusters=6, regions=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = DenseSwAVHead(None, dims=[dim], num_clusters=[clusters])
    with torch.no_grad():
        head.prototypes0.weight.copy_(torch.randn(clusters, dim, generator=g))
    trunk_out = torch.randn(num_views * num_images, dim, size, size, generator=g)
    superpixels = random_superpixels(num_views, num_images, size, regions, g)
    return head, trunk_out, superpixels


def make_loss(num_views=3, dim=8, clusters=6, queue_length=0, start_iter=0):
    return DenseSwAVLoss.from_config({
        'temperature': TAU, 'epsilon': EPS, 'num_iters': ITERS, 'num_crops': num_views,
        'num_prototypes': clusters, 'embedding_dim': dim,
        'queue': {'queue_length': queue_length, 'start_iter': start_iter}})


def loss_and_grads(fn, head, trunk_out):
    x = trunk_out.clone().requires_grad_(True)
    head.zero_grad()
    value = fn(head(x))
    value.backward()
    return value.detach(), x.grad.clone(), head.prototypes0.weight.grad.clone()


def assert_matches_reference(head, trunk_out, superpixels, num_views, loss, queue_scores=None):
    ours = loss_and_grads(lambda out: loss(out, superpixels), head, trunk_out)
    ref = loss_and_grads(lambda out: reference_loss(out[0], out[1], superpixels, num_views,
                                                    queue_scores), head, trunk_out)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b.to(a.dtype), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- tests
def test_head_normalises_and_scores_every_pixel():
    head, trunk_out, _ = head_and_inputs()
    z, s = head(trunk_out)
    assert z.shape == trunk_out.shape and s.shape == (trunk_out.shape[0], 6) + trunk_out.shape[2:]
    torch.testing.assert_close(z.norm(dim=1), torch.ones_like(z[:, 0]))
    pixel = z[1, :, 3, 4]
    torch.testing.assert_close(s[1, :, 3, 4], head.prototypes0.weight @ pixel)


def test_head_with_projection_mlp_and_wrong_width():
    head = DenseSwAVHead(None, dims=[16, 32, 8], use_bn=True, num_clusters=[5],
                         identity_projection=False)
    z, s = head(torch.randn(2, 16, 4, 4))
    assert z.shape == (2, 8, 4, 4) and s.shape == (2, 5, 4, 4)
    with pytest.raises(ValueError, match="OUT_FEAT_DIM"):
        DenseSwAVHead(None, dims=[8], num_clusters=[5])(torch.randn(1, 16, 4, 4))
    with pytest.raises(ValueError, match="one set of prototypes"):
        DenseSwAVHead(None, dims=[8], num_clusters=[5, 6])


@pytest.mark.parametrize('num_views,num_images,seed', [(3, 1, 0), (3, 2, 1), (5, 2, 2)])
def test_loss_and_gradients_match_the_per_region_reference(num_views, num_images, seed):
    head, trunk_out, superpixels = head_and_inputs(num_views, num_images, seed=seed)
    assert_matches_reference(head, trunk_out, superpixels, num_views, make_loss(num_views))


def test_views_with_missing_regions_are_matched_by_id():
    head, trunk_out, superpixels = head_and_inputs(num_views=3, num_images=2, seed=3)
    num_images = 2
    ids_view1_image0 = superpixels[num_images * 1 + 0]
    lost = int(ids_view1_image0[ids_view1_image0 >= 0][0])
    ids_view1_image0[ids_view1_image0 == lost] = -1        # view 1 loses a region
    ids_view2_image1 = superpixels[num_images * 2 + 1]
    ids_view2_image1[:3, :3] = 50                          # view 2 gains one view 0 lacks
    superpixels[0][superpixels[0] == int(superpixels[0][superpixels[0] >= 0][-1])] = -1
    assert_matches_reference(head, trunk_out, superpixels, 3, make_loss(3))


def test_ties_take_the_first_pixel_in_raster_order():
    head, trunk_out, superpixels = head_and_inputs(seed=4)
    with torch.no_grad():  # one prototype dominates everywhere: every pixel of a region ties
        head.prototypes0.weight.zero_()
    assert_matches_reference(head, trunk_out, superpixels, 3, make_loss(3))


def test_queue_enters_sinkhorn_and_is_filled_fifo():
    head, trunk_out, superpixels = head_and_inputs(seed=5)
    loss = make_loss(queue_length=40, start_iter=1)
    before = loss.queue_embeddings.clone()
    loss(head(trunk_out), superpixels)  # iteration 0: no queue, nothing pushed
    torch.testing.assert_close(loss.queue_embeddings, before)
    assert loss.queue_used_this_step()
    with pytest.raises(RuntimeError, match='DenseSwAVQueueScoresHook'):
        loss(head(trunk_out), superpixels)
    loss.refresh_queue_scores(head.prototypes0.weight.detach())
    queue_scores = loss.queue_scores.clone()
    torch.testing.assert_close(queue_scores, before @ head.prototypes0.weight.detach().t())
    assert_matches_reference(head, trunk_out, superpixels, 3, loss, queue_scores=queue_scores)

    # after that forward the view-0 representatives of the batch head the queue
    z, _ = head(trunk_out)
    view0 = {}
    for n in range(2):
        for r in sorted(set(superpixels[n][superpixels[n] >= 0].tolist())):
            ys, xs = torch.nonzero(superpixels[n] == r, as_tuple=True)
            s = (head.prototypes0.weight @ z[n, :, ys, xs]).max(0).values
            view0[(n, r)] = z[n, :, ys[int(s.argmax())], xs[int(s.argmax())]].detach()
    expected = torch.stack([view0[k] for k in sorted(view0)])
    count = len(expected)
    torch.testing.assert_close(loss.queue_embeddings[:count], expected)
    torch.testing.assert_close(loss.queue_embeddings[count:], before[:40 - count])


def test_sinkhorn_matches_the_reference_and_is_equipartitioned():
    g = torch.Generator().manual_seed(6)
    scores = torch.randn(30, 6, generator=g)
    q = sinkhorn_knopp(scores, EPS, ITERS)
    torch.testing.assert_close(q, reference_sinkhorn(scores).float(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(q.sum(1), torch.ones(30))
    q_many = sinkhorn_knopp(scores, EPS, 200)
    torch.testing.assert_close(q_many.sum(0) / 30, torch.full((6,), 1 / 6), atol=1e-3, rtol=0)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _sinkhorn_worker(rank, world_size, port, scores, splits, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        start = sum(splits[:rank])
        out[rank] = sinkhorn_knopp(scores[start:start + splits[rank]], EPS, ITERS)
    finally:
        dist.destroy_process_group()


def test_sinkhorn_across_two_processes_equals_one_process():
    """Unequal row counts per process (regions differ per image): all-reduced sums and max."""
    scores = torch.randn(23, 5, generator=torch.Generator().manual_seed(7))
    out = mp.get_context('fork').Manager().dict()
    # fork: the worker is a function of this test module, which a spawned child cannot import
    mp.start_processes(_sinkhorn_worker, args=(2, _free_port(), scores, [9, 14], out), nprocs=2,
                       start_method='fork')
    torch.testing.assert_close(torch.cat([out[0], out[1]]), sinkhorn_knopp(scores, EPS, ITERS))


def test_config_errors_name_the_key():
    with pytest.raises(DenseSwAVConfigError, match='dense_swav_loss.temprature'):
        DenseSwAVLoss.from_config({'temprature': 0.1})
    with pytest.raises(DenseSwAVConfigError, match='queue.size'):
        DenseSwAVLoss.from_config({'queue': {'size': 3}})
    with pytest.raises(DenseSwAVConfigError, match='crops_for_assign'):
        DenseSwAVLoss.from_config({'crops_for_assign': [0, 1]})
    head, trunk_out, superpixels = head_and_inputs()
    with pytest.raises(DenseSwAVConfigError, match='num_prototypes'):
        make_loss(clusters=9)(head(trunk_out), superpixels)
    with pytest.raises(DenseSwAVConfigError, match='num_crops'):
        make_loss(num_views=4)(head(trunk_out), superpixels)


def test_hooks_refresh_queue_scores_and_renormalise_prototypes():
    head, trunk_out, superpixels = head_and_inputs(seed=8)
    loss = make_loss(queue_length=16, start_iter=0)
    task = SimpleNamespace(model=SimpleNamespace(module=SimpleNamespace(heads=[head])), loss=loss)
    DenseSwAVQueueScoresHook().on_forward(task)
    loss(head(trunk_out), superpixels)  # no error: the scores were refreshed
    DenseSwAVNormalizePrototypesHook().on_update(task)
    torch.testing.assert_close(head.prototypes0.weight.norm(dim=1), torch.ones(6))
    assert len(dense_swav_hooks({'LOSS': {'name': 'dense_swav_loss'}})) == 3
    assert dense_swav_hooks({'LOSS': {'name': 'swav_loss'}}) == []


def test_loss_state_round_trips_through_a_checkpoint():
    head, trunk_out, superpixels = head_and_inputs(seed=9)
    loss = make_loss(queue_length=16, start_iter=0)
    loss.refresh_queue_scores(head.prototypes0.weight.detach())
    loss(head(trunk_out), superpixels)
    restored = make_loss(queue_length=16, start_iter=0)
    restored.set_classy_state(loss.get_classy_state())
    assert int(restored.num_iteration) == 1
    torch.testing.assert_close(restored.queue_embeddings, loss.queue_embeddings)
