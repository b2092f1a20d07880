"""Per-class FIFO queues of feature vectors: U2PL's memory bank of negative keys, as buffers.

Spec: shared/specs/semisup.md 2(a) "Memory bank", 2(e)6 and 4.6. Class c owns a queue of at most
cap_c vectors of dimension D (U2PL: D = 256, cap_0 = 50000, cap_c = 30000 otherwise). A push
appends the new keys of every class in order and keeps the last cap_c of each queue, exactly as
the original's ``cat`` + ``[-queue_size:]``, but in fixed storage:

    features (sum_c cap_c, D)   class c owns rows offsets[c] .. offsets[c] + cap_c - 1 (a ring)
    counts   (C,)               filled rows of each class, <= cap_c
    pointers (C,)               next ring slot to write; the oldest row when the ring is full

The logical (oldest-first) row i of class c lives at ring slot (pointers[c] - counts[c] + i)
mod cap_c, so a queue is read in the order the original's list would have. Everything is a
registered buffer: the bank follows the module to its device and is saved in checkpoints (the
original keeps it on the CPU and loses it on resume, spec 2(e)6). Loading a bank of another
layout (number of classes, capacities, dimension) raises ``MemoryBankMismatchError`` naming both.

Across processes: ``gather_fn`` (default: identity) receives this process's new keys packed as
(n, D + 1) float32, class id in the last column, and must return the concatenation over all
processes in rank order (the original all-gathers per class, rank-major, then appends). Rows
whose class id is negative are skipped, so a gather that pads to a common length (e.g.
mmengine.dist.all_gather, which needs equal shapes) can mark its padding with -1.
"""
import torch
import torch.nn as nn

U2PL_QUEUE_SIZE = 30000
U2PL_QUEUE_SIZE_CLASS0 = 50000


class MemoryBankMismatchError(RuntimeError):
    """A saved memory bank does not match the layout of the bank it is loaded into."""


def u2pl_queue_sizes(num_classes, queue_size=U2PL_QUEUE_SIZE,
                     queue_size_class0=U2PL_QUEUE_SIZE_CLASS0):
    """U2PL's capacities: [queue_size_class0, queue_size, ..., queue_size] (num_classes long)."""
    return [queue_size_class0] + [queue_size] * (num_classes - 1)


def _describe_capacities(capacities):
    """[50000, 30000, 30000] -> '[50000, 30000 x 2]' (runs collapsed, for error messages)."""
    runs = []
    for value in capacities:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return '[' + ', '.join(f'{v}' if n == 1 else f'{v} x {n}' for v, n in runs) + ']'


def _layout(num_classes, capacities, dim):
    return (f'num_classes={num_classes}, capacities={_describe_capacities(capacities)}, '
            f'dim={dim}')


class ClassMemoryBank(nn.Module):
    """C fixed-capacity FIFO queues of D-dim features (see the module docstring).

    num_classes: C; dim: D; capacity: one int for every class, a sequence of C ints, or None
    for U2PL's sizes (50000 for class 0, 30000 for the others); gather_fn: (n, D + 1) ->
    (N, D + 1) across processes, None = identity; dtype: storage type of the features.
    """

    def __init__(self, num_classes, dim=256, capacity=None, gather_fn=None,
                 dtype=torch.float32):
        super().__init__()
        if capacity is None:
            capacity = u2pl_queue_sizes(num_classes)
        elif isinstance(capacity, int):
            capacity = [capacity] * num_classes
        capacity = [int(c) for c in capacity]
        if num_classes < 1 or len(capacity) != num_classes or min(capacity) < 1 or dim < 1:
            raise ValueError(f'ClassMemoryBank: need num_classes >= 1, dim >= 1 and one positive '
                             f'capacity per class, got num_classes={num_classes}, dim={dim}, '
                             f'capacity={capacity}')
        self.num_classes = num_classes
        self.dim = dim
        self.gather_fn = gather_fn
        capacities = torch.tensor(capacity, dtype=torch.long)
        self.register_buffer('capacities', capacities)
        self.register_buffer('offsets', torch.cumsum(capacities, 0) - capacities)
        self.register_buffer('features', torch.zeros(int(capacities.sum()), dim, dtype=dtype))
        self.register_buffer('counts', torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer('pointers', torch.zeros(num_classes, dtype=torch.long))

    def extra_repr(self):
        return _layout(self.num_classes, self.capacities.tolist(), self.dim)

    @torch.no_grad()
    def reset(self):
        """Empty every queue."""
        self.counts.zero_()
        self.pointers.zero_()
        self.features.zero_()

    def _starts(self):
        """(C,) ring slot of each queue's oldest row."""
        return torch.remainder(self.pointers - self.counts, self.capacities)

    @torch.no_grad()
    def push(self, features_per_class):
        """Append ``features_per_class[c]`` (n_c, D) to queue c for every c (sequence of C
        tensors, empty ones allowed); returns (C,) the number of keys each queue received
        (after the gather, before truncation to the capacity)."""
        if len(features_per_class) != self.num_classes:
            raise ValueError(f'ClassMemoryBank.push: got {len(features_per_class)} tensors for '
                             f'{self.num_classes} classes')
        counts = [f.shape[0] for f in features_per_class]
        class_ids = torch.repeat_interleave(torch.arange(self.num_classes),
                                            torch.tensor(counts, dtype=torch.long))
        features = torch.cat([f.reshape(-1, self.dim).to(self.features)
                              for f in features_per_class])
        return self.push_flat(features, class_ids)

    @torch.no_grad()
    def push_flat(self, features, class_ids):
        """Vectorised push: features (n, D), class_ids (n,) long (negative = skip). Keys of a
        class enter its queue in their order here (after the gather: rank-major). Returns (C,)
        long, the keys received per class (after the gather, before truncation)."""
        if features.dim() != 2 or features.shape[1] != self.dim \
                or class_ids.shape != features.shape[:1]:
            raise ValueError(f'ClassMemoryBank.push_flat: features {tuple(features.shape)} and '
                             f'class_ids {tuple(class_ids.shape)} must be (n, {self.dim}), (n,)')
        device = self.features.device
        features = features.detach().to(device)
        class_ids = class_ids.to(device=device, dtype=torch.long)
        if self.gather_fn is not None:
            packed = torch.cat([features.float(), class_ids[:, None].float()], dim=1)
            packed = self.gather_fn(packed).to(device)
            features, class_ids = packed[:, :self.dim], packed[:, self.dim].round().long()
        keep = class_ids >= 0
        if not bool(keep.all()):
            features, class_ids = features[keep], class_ids[keep]
        if class_ids.numel() and int(class_ids.max()) >= self.num_classes:
            raise ValueError(f'ClassMemoryBank.push_flat: class id {int(class_ids.max())} '
                             f'>= num_classes {self.num_classes}')
        # rank of each key within its class (stable: arrival order), then one gather and one
        # index_copy_ of the keys that stay (the last cap_c of each class)
        grouped = bool((class_ids[1:] >= class_ids[:-1]).all())            # class-major already
        if grouped:
            order = torch.arange(class_ids.numel(), device=device)
            sorted_ids = class_ids
        else:
            order = torch.argsort(class_ids, stable=True)
            sorted_ids = class_ids[order]
        received = torch.bincount(sorted_ids, minlength=self.num_classes)
        first = torch.cumsum(received, 0) - received                       # (C,) into the rows
        rank = torch.arange(sorted_ids.numel(), device=device) - first[sorted_ids]
        capacity = self.capacities
        skipped = (received - capacity).clamp_min(0)                       # older than the cap
        kept = rank >= skipped[sorted_ids]
        cls, source = sorted_ids[kept], order[kept]
        slot = torch.remainder(self.pointers[cls] + rank[kept] - skipped[cls], capacity[cls])
        rows = features if grouped and bool(kept.all()) else features[source]
        self.features.index_copy_(0, self.offsets[cls] + slot, rows.to(self.features.dtype))
        written = received - skipped
        self.pointers.copy_(torch.remainder(self.pointers + written, capacity))
        self.counts.copy_(torch.minimum(self.counts + received, capacity))
        return received

    @torch.no_grad()
    def push_rows(self, table, rows, class_ids):
        """``push_flat(table[rows], class_ids)`` without gathering the keys first: table (T, D),
        rows (n,) long, class_ids (n,) long in 0..C-1 and grouped by class (non-decreasing).
        The last cap_c new keys of class c fill one or two runs of its ring (before and after
        the wrap), each copied straight from ``table`` (``index_select`` into the run): no
        (n, D) temporary, no second copy into the bank. Anything else (a ``gather_fn``, whose
        keys must travel, another device or dtype, ungrouped ids) is ``push_flat`` of the
        gathered rows. Returns (C,) long, the keys received per class."""
        rows = rows.to(table.device)
        class_ids = class_ids.to(device=table.device, dtype=torch.long)
        direct = (self.gather_fn is None and table.device == self.features.device
                  and table.dtype == self.features.dtype and table.dim() == 2
                  and table.shape[1] == self.dim and rows.shape == class_ids.shape)
        if not direct or (class_ids.numel() and (
                int(class_ids.min()) < 0 or int(class_ids.max()) >= self.num_classes
                or not bool((class_ids[1:] >= class_ids[:-1]).all()))):
            return self.push_flat(table.index_select(0, rows), class_ids)
        received = torch.bincount(class_ids, minlength=self.num_classes)
        written = torch.minimum(received, self.capacities)
        first_kept = torch.cumsum(received, 0) - written        # older keys beyond cap_c go
        for count, source, pointer, capacity, offset in zip(
                written.tolist(), first_kept.tolist(), self.pointers.tolist(),
                self.capacities.tolist(), self.offsets.tolist()):
            head = min(count, capacity - pointer)               # up to the end of the ring
            for start, slot, length in ((source, pointer, head), (source + head, 0, count - head)):
                if length:
                    torch.index_select(table, 0, rows[start:start + length],
                                       out=self.features[offset + slot:offset + slot + length])
        self.pointers.copy_(torch.remainder(self.pointers + written, self.capacities))
        self.counts.copy_(torch.minimum(self.counts + received, self.capacities))
        return received

    def slots(self, class_ids, index):
        """Where logical (oldest-first) positions live: class_ids (R,) long, index (R, ...) long
        with 0 <= index[r] < counts[class_ids[r]] (not checked) -> (R, ...) long rows of
        ``features``."""
        class_ids = class_ids.to(self.features.device)
        shape = (-1,) + (1,) * (index.dim() - 1)
        capacity = self.capacities[class_ids].reshape(shape)
        start = self._starts()[class_ids].reshape(shape)
        slot = torch.remainder(start + index.to(self.features.device), capacity)
        return self.offsets[class_ids].reshape(shape) + slot

    def lookup(self, class_ids, index):
        """Rows by logical (oldest-first) position: class_ids (R,) long, index (R, ...) long with
        0 <= index[r] < counts[class_ids[r]] (not checked) -> (R, ..., D)."""
        rows = self.slots(class_ids, index)
        return self.features.index_select(0, rows.reshape(-1)).view(*rows.shape, self.dim)

    def ordered(self, class_id):
        """Queue ``class_id`` oldest first: (counts[class_id], D)."""
        count = int(self.counts[class_id])
        index = torch.arange(count, device=self.features.device)[None]
        return self.lookup(torch.tensor([class_id]), index)[0]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # refuse another layout outright (also under non-strict loaders that only warn on
        # size mismatches, such as mmengine's non-strict load_checkpoint)
        saved_capacities = state_dict.get(prefix + 'capacities')
        saved_features = state_dict.get(prefix + 'features')
        if saved_capacities is not None or saved_features is not None:
            mine = _layout(self.num_classes, self.capacities.tolist(), self.dim)
            if saved_capacities is None or saved_features is None:
                raise MemoryBankMismatchError(
                    f'memory bank {prefix!r}: the checkpoint holds only part of a bank '
                    f'(capacities and features both needed); this bank has {mine}')
            caps = [int(c) for c in saved_capacities.reshape(-1).tolist()]
            saved_dim = saved_features.shape[1] if saved_features.dim() == 2 else -1
            if caps != self.capacities.tolist() or saved_dim != self.dim \
                    or saved_features.shape[0] != sum(caps):
                raise MemoryBankMismatchError(
                    f'memory bank {prefix!r}: the checkpoint has '
                    f'{_layout(len(caps), caps, saved_dim)} (features '
                    f'{tuple(saved_features.shape)}), this bank has {mine}; a bank cannot be '
                    f'loaded into another layout (drop its keys from the checkpoint to start '
                    f'with an empty bank)')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
