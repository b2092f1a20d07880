"""Distributed Sinkhorn-Knopp: SwAV's equipartitioned soft assignments (Caron et al. 2020, eq. 3).

Spec: shared/specs/pretrain.md 1(a) D and section 6 item 4. For scores S (n, K) on this process
(n may differ between processes), with the column count N summed over all processes:

    Q0 = exp((S - max S) / eps)^T            (K, n), max over all rows of all processes
    repeat ``num_iters`` times:
        Q <- diag(1/K / rowsum(Q)) Q           rowsum all-reduced: prototypes equally used
        Q <- Q diag(1/N / colsum(Q))           local: every row of S gets the same mass
    return (Q / colsum(Q))^T                   (n, K), each row a distribution over K

Runs in float32 (float64 with ``double_precision``) under no_grad, whatever the input dtype.
Only sums and the max cross processes, so every process gets the rows of its own S.
"""
import torch
import torch.distributed as dist


def _is_distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(tensor, op=None):
    if _is_distributed():
        dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
    return tensor


@torch.no_grad()
def sinkhorn_knopp(scores, epsilon=0.05, num_iters=3, double_precision=False):
    """scores (n, K) -> assignments Q (n, K), rows summing to 1; see the module docstring."""
    dtype = torch.float64 if double_precision else torch.float32
    scores = scores.to(dtype)
    num_prototypes = scores.shape[1]
    local_max = scores.max() if scores.numel() else scores.new_tensor(float('-inf'))
    global_max = _all_reduce(local_max.clone(), dist.ReduceOp.MAX)
    q = torch.exp((scores - global_max) / epsilon).t()                # (K, n)
    num_columns = _all_reduce(torch.tensor(float(q.shape[1]), dtype=dtype, device=q.device))
    q /= _all_reduce(q.sum())
    for _ in range(num_iters):
        row_sum = _all_reduce(q.sum(dim=1))
        q *= ((1.0 / num_prototypes) / row_sum).unsqueeze(1)
        q *= ((1.0 / num_columns) / q.sum(dim=0)).unsqueeze(0)
    return (q / q.sum(dim=0, keepdim=True)).t().float()
