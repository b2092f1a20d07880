"""Benchmark: ViCE's vectorised dense SwAV loss against a per-region reference.

Shape of spec section 6: 5 views x 100x100 pixels, ~150 regions per view, D = K = 128,
queue 5000 rows, 1 and 4 images; forward + backward on CPU. The reference pools region by
region with masked tensor ops in a Python loop (how the original computes it); both get the
same inputs (the head's z and s, as leaves: the time is the loss's) and must give the same
value and gradients. Every case runs in its own process so that peak
memory (ru_maxrss above the process's baseline, after a small warm-up call) is its own.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/vice_loss.py [--images 1 4] [--threads 2]
        [--skip-reference-above 4]
"""
import argparse
import json
import multiprocessing as mp
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VIEWS, SIZE, REGIONS, DIM, CLUSTERS, QUEUE = 5, 100, 150, 128, 128, 5000
TAU, EPS, ITERS = 0.1, 0.05, 3


def make_inputs(num_images, seed=0):
    """Trunk output (V*N, D, S, S), prototypes (K, D), superpixels (V*N, S, S), queue scores."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for _ in range(num_images):  # nearest-seed (Voronoi) regions, shared by the views
        seeds = torch.rand(REGIONS, 2, generator=g) * SIZE
        yx = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing='ij'),
                         -1).reshape(-1, 2).float()
        maps.append(torch.cdist(yx, seeds).argmin(1).reshape(SIZE, SIZE))
    base = torch.stack(maps)
    views = []
    for _ in range(VIEWS):
        view = base.clone()
        view[torch.rand(view.shape, generator=g) < 0.1] = -1
        views.append(view)
    trunk_out = torch.randn(VIEWS * num_images, DIM, SIZE, SIZE, generator=g)
    prototypes = F.normalize(torch.randn(CLUSTERS, DIM, generator=g), dim=1)
    queue_scores = torch.rand(QUEUE, CLUSTERS, generator=g) * 2 - 1
    return trunk_out, prototypes, torch.cat(views), queue_scores


def head_outputs(trunk_out, prototypes):
    """The head's [z, s] as leaves that require grad: the timing is the loss's alone."""
    z = F.normalize(trunk_out, dim=1)
    s = F.conv2d(z, prototypes[:, :, None, None])
    return z.requires_grad_(True), s.requires_grad_(True)


def per_region_loss(z, s, superpixels, queue_scores, num_views, original_style=False):
    """The reference: a Python loop over (view, image, region) with masked tensor ops.

    ``original_style``: select a region's rows with ``masked_select`` of a broadcast mask over
    the whole (HW, D) / (HW, K) maps, as the original code does (its backward writes a full-size
    gradient per region; that is where the original's time and memory go)."""
    from densessl.vice.sinkhorn import sinkhorn_knopp
    num_images = z.shape[0] // num_views
    pdist = nn.PairwiseDistance()
    reps, coherence = {}, []
    for b in range(z.shape[0]):
        view, image = divmod(b, num_images)
        zb = z[b].reshape(z.shape[1], -1).t()
        sb = s[b].reshape(s.shape[1], -1).t()
        ids = superpixels[b].reshape(-1)
        means = []
        for region in torch.unique(ids[ids >= 0]).tolist():
            mask = ids == region
            if original_style:
                z_r = torch.masked_select(zb, mask[:, None]).reshape(-1, zb.shape[1])
                s_r = torch.masked_select(sb, mask[:, None]).reshape(-1, sb.shape[1])
            else:
                z_r, s_r = zb[mask], sb[mask]
            p_star = torch.argmax(s_r.max(dim=1).values)
            z_star = z_r[p_star].detach()
            means.append(pdist(z_r, z_star.expand_as(z_r)).mean())
            reps[(view, image, region)] = s_r[p_star]
        coherence.append(torch.stack(means).mean())
    view0 = sorted(k for k in reps if k[0] == 0)
    q = sinkhorn_knopp(torch.cat([torch.stack([reps[k] for k in view0]).detach(), queue_scores]),
                       EPS, ITERS)[:len(view0)]
    row = {(i, r): n for n, (_, i, r) in enumerate(view0)}
    swav = []
    for view in range(1, num_views):
        keys = [k for k in sorted(reps) if k[0] == view and (k[1], k[2]) in row]
        scores = torch.stack([reps[k] for k in keys])
        targets = q[[row[(k[1], k[2])] for k in keys]]
        swav.append(-(targets * F.log_softmax(scores / TAU, dim=1)).sum(1).mean())
    return (torch.stack(coherence).mean() + torch.stack(swav).mean()) / 2


def vectorised_loss(queue_scores):
    from vissl_plugins.vice.dense_swav_loss import DenseSwAVLoss
    loss = DenseSwAVLoss(TAU, EPS, ITERS, VIEWS, CLUSTERS, DIM, local_queue_length=QUEUE)

    def compute(z, s, superpixels):
        loss.queue_scores.copy_(queue_scores)  # as DenseSwAVQueueScoresHook would refresh them
        loss._queue_scores_iteration = int(loss.num_iteration)
        return loss([z, s], {'superpixels': superpixels, 'num_views': VIEWS})
    return compute


def run_case(kind, num_images, threads, result_queue):
    torch.set_num_threads(threads)
    import vissl_plugins  # noqa: F401  (imports outside the timed and measured part)
    trunk_out, prototypes, superpixels, queue_scores = make_inputs(num_images)
    fn = (vectorised_loss(queue_scores) if kind == 'vectorised' else
          lambda z, s, sp: per_region_loss(z, s, sp, queue_scores, VIEWS,
                                           original_style=kind == 'original-style'))
    # warm-up on a 16x16 crop (first-call costs of the ops), not measured
    z, s = head_outputs(trunk_out[..., :16, :16].contiguous(), prototypes)
    fn(z, s, superpixels[..., :16, :16].contiguous()).backward()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    z, s = head_outputs(trunk_out, prototypes)
    start = time.perf_counter()
    value = fn(z, s, superpixels)
    forward = time.perf_counter() - start
    value.backward()
    total = time.perf_counter() - start
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    regions = int(sum(len(torch.unique(m[m >= 0])) for m in superpixels)) / superpixels.shape[0]
    result_queue.put({'kind': kind, 'images': num_images, 'value': float(value.detach()),
                      'forward_s': forward, 'total_s': total, 'peak_mb': peak_mb,
                      'grad_norm': float(z.grad.norm() + s.grad.norm()), 'regions_per_view': regions})


def measure(kind, num_images, threads, timeout):
    ctx = mp.get_context('spawn')
    result_queue = ctx.Queue()
    process = ctx.Process(target=run_case, args=(kind, num_images, threads, result_queue))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        return None
    return result_queue.get() if not result_queue.empty() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-reference-above', type=int, default=4,
                        help='do not run the reference for more images than this')
    parser.add_argument('--original-style-images', type=int, nargs='*', default=[1],
                        help='also run the original-style reference (masked_select) for these')
    parser.add_argument('--timeout', type=float, default=900)
    parser.add_argument('--json', help='also write the rows here')
    args = parser.parse_args()
    rows = []
    for n in args.images:
        ours = measure('vectorised', n, args.threads, args.timeout)
        ref = (measure('reference', n, args.threads, args.timeout)
               if n <= args.skip_reference_above else None)
        rows.append({'images': n, 'ours': ours, 'reference': ref, 'reference_kind': 'per-region loop'})
        if n in args.original_style_images:
            rows.append({'images': n, 'ours': ours, 'reference_kind': 'original-style',
                         'reference': measure('original-style', n, args.threads, args.timeout)})
    print(f'dense_swav_loss, {VIEWS} views x {SIZE}x{SIZE}, D=K={DIM}, queue {QUEUE}, '
          f'{args.threads} CPU threads, forward + backward')
    print('| images | regions/view | reference | reference s | vectorised s | speed-up | |loss diff| | '
          '|grad-norm diff| | reference peak MB | vectorised peak MB |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for row in rows:
        ours, ref = row['ours'], row['reference']
        if ours is None:
            print(f'| {row["images"]} | - | - | - | failed | - | - | - | - | - |')
            continue
        ref_s = f'{ref["total_s"]:.2f}' if ref else 'not run'
        speed = f'{ref["total_s"] / ours["total_s"]:.0f}x' if ref else '-'
        diff = f'{abs(ref["value"] - ours["value"]):.1e}' if ref else '-'
        grad = f'{abs(ref["grad_norm"] - ours["grad_norm"]):.1e}' if ref else '-'
        ref_mb = f'{ref["peak_mb"]:.0f}' if ref else '-'
        print(f'| {row["images"]} | {ours["regions_per_view"]:.0f} | {row["reference_kind"]} | '
              f'{ref_s} | '
              f'{ours["total_s"]:.3f} | {speed} | {diff} | {grad} | {ref_mb} | {ours["peak_mb"]:.0f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
