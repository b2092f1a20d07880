"""Training one head for one (encoder, task, training config) and writing its results.

``train_head`` runs ``num_epochs`` epochs: a train pass (the head in train mode, the frozen
encoder in eval mode without gradients, or pre-encoded features), then a test pass over the
whole test set, the scheduler stepped at its unit (``virb.grid``). After every epoch the
run's ``results.json`` is rewritten atomically with the per-epoch history and the best and
last epochs (``virb.report.results_record``); at the end the head's weights
(``model_head.pt``: last epoch, ``model_head_best.pt``: best) and ``status: finished``.
TensorBoard scalars (``TrainLoss/<task>``, ``TrainAccuracy/<task>``, ``TestLoss/<task>``,
``TestAccuracy/<task>`` (the task's metric, whatever its name; the original's tags),
``LR/<task>`` (the LR the epoch started with)) by epoch, in the run folder; event files of
an earlier, unfinished attempt of the run are removed first so that its steps are not
doubled.
"""
import glob
import os
import os.path as osp
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from densessl.atomic_io import atomic_torch_save
from virb.grid import build_optimizer, build_scheduler
from virb.pre_encoding import EncodedLoader
from virb.report import results_record, write_results


class EncoderBatches:
    """Batches of images run through the frozen encoder (no gradients): ``(features dict,
    targets)``, for tasks that are not pre-encoded."""

    def __init__(self, encoder, dataset, batch_size, device, shuffle, drop_last, generator,
                 keys):
        self.encoder, self.device, self.keys = encoder, device, keys
        drop_last = drop_last and len(dataset) >= batch_size
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                 drop_last=drop_last, generator=generator, num_workers=0)
        self.forward_calls = 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.encoder.eval()
        for images, targets in self.loader:
            with torch.no_grad():
                out = self.encoder(images.to(self.device))
            self.forward_calls += 1
            yield {k: out[k] for k in self.keys}, targets.to(self.device)


def _match_size(pred, target):
    """Resize a dense prediction (B, K, h, w) to the target's (H, W)."""
    if pred.dim() == 4 and target.dim() >= 3 and pred.shape[-2:] != target.shape[-2:]:
        pred = F.interpolate(pred, size=target.shape[-2:], mode='bilinear',
                             align_corners=False)
    return pred


def run_epoch(head, task, batches, optimizer=None, stepper=None):
    """One pass; trains when ``optimizer`` is given. Returns (mean loss, metric value)."""
    training = optimizer is not None
    head.train(training)
    metric, total, count = task.new_metric(), 0.0, 0
    for features, targets in batches:
        with torch.set_grad_enabled(training):
            pred = _match_size(head(features), targets)
            loss = task.loss(pred, targets)
        if training:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stepper.after_batch()
        total += float(loss.detach()) * len(targets)
        count += len(targets)
        metric.update(pred.detach().float(), targets)
    return total / max(1, count), metric.compute()


def make_batches(task, encoder, data, spec, device, seed):
    """(train batches, test batches) from pre-encoded sets (``data = ('encoded', train,
    test)``) or datasets run through the encoder (``('images', train, test)``)."""
    kind, train, test = data
    generator = torch.Generator().manual_seed(seed)
    keys = spec['keys']
    if kind == 'encoded':
        return (EncodedLoader(train, spec['batch_size'], shuffle=True, drop_last=True,
                              generator=generator),
                EncodedLoader(test, spec['test_batch_size']))
    return (EncoderBatches(encoder, train, spec['batch_size'], device, True, True, generator,
                           keys),
            EncoderBatches(encoder, test, spec['test_batch_size'], device, False, False, None,
                           keys))


def train_head(*, task, encoder, head, config, spec, data, device, out_dir, identity,
               never_step=False, seed=0, log=print, on_epoch=None, writer_factory=None):
    """Train ``head`` with ``config`` (a ``TrainingConfig``); ``spec``: num_epochs,
    batch_size, test_batch_size, keys. ``identity``: what results.json records about the
    run (experiment, task, config, digest, ...). Returns the final results record."""
    torch.manual_seed(seed)
    head.to(device)
    train_batches, test_batches = make_batches(task, encoder, data, spec, device, seed)
    optimizer = build_optimizer(head.parameters(), config)
    stepper = build_scheduler(optimizer, config, spec['num_epochs'], len(train_batches),
                              never_step)
    metric = task.new_metric()
    os.makedirs(out_dir, exist_ok=True)
    writer = None
    if writer_factory:
        for stale in glob.glob(osp.join(out_dir, 'events.out.tfevents.*')):
            os.remove(stale)
        writer = writer_factory(out_dir)
    history, start = [], time.time()
    if spec['num_epochs'] == 0:  # evaluation only (a head from task_head_weights_path)
        test_loss, test_metric = run_epoch(head, task, test_batches)
        history.append({'epoch': 0, 'lr': None, 'train_loss': None, 'train_metric': None,
                        'test_loss': test_loss, 'test_metric': test_metric, 'seconds': 0.0})
    for epoch in range(1, spec['num_epochs'] + 1):
        t0 = time.time()
        lr = optimizer.param_groups[0]['lr']
        train_loss, train_metric = run_epoch(head, task, train_batches, optimizer, stepper)
        with torch.no_grad():
            test_loss, test_metric = run_epoch(head, task, test_batches)
        stepper.after_epoch()
        history.append({'epoch': epoch, 'lr': lr, 'train_loss': train_loss,
                        'train_metric': train_metric, 'test_loss': test_loss,
                        'test_metric': test_metric, 'seconds': time.time() - t0})
        record = results_record(identity, metric, history, 'running')
        write_results(out_dir, record)
        if record['best']['epoch'] == epoch:
            atomic_torch_save(head.state_dict(), osp.join(out_dir, 'model_head_best.pt'))
        if writer is not None:
            for tag, value in (('TrainLoss', train_loss), ('TrainAccuracy', train_metric),
                               ('TestLoss', test_loss), ('TestAccuracy', test_metric),
                               ('LR', lr)):
                writer.add_scalar(f'{tag}/{task.name}', value, epoch)
        log(f'{identity["experiment"]} {identity["task_key"]}-{identity["config_name"]} '
            f'epoch {epoch}/{spec["num_epochs"]}: train loss {train_loss:.4f} '
            f'{metric.name} {train_metric:.2f}, test loss {test_loss:.4f} {metric.name} '
            f'{test_metric:.2f}, lr {lr:.3g}')
        if on_epoch is not None:
            on_epoch()
    if writer is not None:
        writer.close()
    atomic_torch_save(head.state_dict(), osp.join(out_dir, 'model_head.pt'))
    identity = dict(identity, train_seconds=time.time() - start)
    record = results_record(identity, metric, history, 'finished')
    write_results(out_dir, record)
    return record
