"""The runner: (encoder, task) jobs pulled by worker processes, each job training every
training config of its task on one encoding, then the summary.

- One worker per GPU (``device='auto'`` with GPUs: ``cuda:0``, ``cuda:1``, ...); on a
  machine without GPUs ``workers`` CPU processes (the cores split between them). Workers
  are ``spawn``ed processes pulling jobs from one queue; with one worker the jobs run in
  this process.
- A job: build the encoder (weights checked key by key, ``virb.encoders``), read the task's
  data, encode it once unless the task entry sets ``pre_encode: false`` (the original's
  rule: its pixelwise entries do, to save memory; ``virb.pre_encoding``, with the optional
  on-disk cache), then train one fresh head per
  pending training config (``virb.training``).
- A run (encoder, task, config) whose ``results.json`` says ``finished`` with the same
  digest (encoder weights' sha256 or random-init seed, task entry, training config) is
  skipped; ``fresh=True`` deletes this sweep's run folders first.
- A job that fails (bad weights, missing data, an error in training) writes
  ``<out>/<experiment>/FAILED-<task key>.json`` with the error; the other jobs go on and
  the summary lists it. The runner returns the summary (``virb.report.write_summary``).
"""
import glob
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import queue
import shutil
import sys
import time
import traceback
from dataclasses import dataclass

import torch

from densessl.atomic_io import atomic_write_json
from virb.encoders import (build_custom_encoder, build_resnet_encoder, check_encoder_outputs,
                           file_digest)
from virb.errors import VirbError
from virb.grid import BUG_SCHEDULER
from virb.pre_encoding import EncodingCache, encode_task
from virb.progress import Progress
from virb.report import FAILED_PREFIX, read_results, write_summary

FINISHED = 'finished'


@dataclass
class Job:
    index: int
    encoder: object          # config.EncoderSpec
    task: object             # config.TaskSpec
    encoder_id: str
    pending: list            # names of the training configs to run


@dataclass
class Settings:
    out: str
    data_root: str = 'data'
    cache_dir: str = None
    bug_compat: tuple = ()
    seed: int = 0
    threads: int = 1
    tensorboard: bool = True


def encoder_identity(spec):
    """What an encoder's results depend on: the weight file's sha256, the random init's
    arch and seed, or the custom factory and its options."""
    if spec.factory:
        return f'factory:{spec.factory}:{json.dumps(spec.options, sort_keys=True)}:' + (
            file_digest(spec.weights) if spec.weights else '')
    if spec.weights:
        return f'sha256:{file_digest(spec.weights)}:{spec.arch or "auto"}'
    return f'random:{spec.arch}:seed{spec.seed}'


def applicable_bug_compat(task_spec, bug_compat=()):
    """The switches that apply to a task entry: its own ``bug_compat`` and those of the
    command line, less the task-specific ones its task does not take."""
    from virb.config import TASK_SPECIFIC_BUG_COMPAT
    from virb.tasks import get_task_class
    takes = get_task_class(task_spec.task).bug_switches
    return sorted(b for b in set(task_spec.bug_compat) | set(bug_compat)
                  if b not in TASK_SPECIFIC_BUG_COMPAT or b in takes)


def run_digest(encoder_id, task_spec, config_name, bug_compat=()):
    entry = task_spec.as_dict()
    entry['training_configs'] = entry['training_configs'][config_name]
    entry['bug_compat'] = applicable_bug_compat(task_spec, bug_compat)
    text = json.dumps([encoder_id, entry], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_dir(out, experiment, task_key, config_name):
    return osp.join(out, experiment, f'{task_key}-{config_name}')


def failed_path(out, experiment, task_key):
    return osp.join(out, experiment, f'{FAILED_PREFIX}{task_key}.json')


def plan_jobs(encoders, tasks, settings, fresh=False, log=print):
    """[Job] with their pending configs; finished runs with the same digest are skipped
    (``fresh``: their folders are deleted instead)."""
    jobs, skipped = [], 0
    for spec in encoders:
        encoder_id = encoder_identity(spec)
        for task in tasks:
            pending = []
            for name in task.training_configs:
                folder = run_dir(settings.out, spec.name, task.key, name)
                if fresh and osp.isdir(folder):
                    shutil.rmtree(folder)
                record = read_results(folder)
                digest = run_digest(encoder_id, task, name, settings.bug_compat)
                if record and record.get('status') == FINISHED and record.get('digest') == digest:
                    skipped += 1
                else:
                    pending.append(name)
            if fresh and osp.isfile(failed_path(settings.out, spec.name, task.key)):
                os.remove(failed_path(settings.out, spec.name, task.key))
            if pending:
                jobs.append(Job(len(jobs), spec, task, encoder_id, pending))
    if skipped:
        log(f'virb: {skipped} finished runs skipped (same encoder, task and config; '
            f'--fresh runs them again)')
    return jobs


def build_encoder(spec, log):
    if spec.factory:
        encoder = build_custom_encoder(spec.factory, spec.options)
        if spec.weights:  # a custom encoder's own state dict, every key checked
            state = torch.load(spec.weights, map_location='cpu', weights_only=True)
            encoder.load_state_dict(state, strict=True)
        return encoder
    encoder, report = build_resnet_encoder(spec.arch, spec.weights, spec.seed, log=log)
    if report is not None:
        for line in report.lines():
            log(line)
    else:
        log(f'encoder {spec.name}: {spec.arch} randomly initialised (seed {spec.seed})')
    return encoder


def _head_weights(pattern, experiment, head):
    path_pattern = pattern % experiment if '%s' in pattern else pattern
    matches = sorted(glob.glob(path_pattern))
    if not matches:
        raise VirbError(f'task_head_weights_path {pattern!r}: no file matches {path_pattern}')
    head.load_state_dict(torch.load(matches[0], map_location='cpu', weights_only=True),
                         strict=True)
    return matches[0]


def run_job(job, settings, device, log=print, on_epoch=None):
    """Run one (encoder, task) job's pending configs. Returns {config: 'finished'}; raises
    on failure (the caller records it)."""
    from virb.tasks import get_task_class
    from virb.training import train_head
    spec, task_spec = job.encoder, job.task
    torch.manual_seed(settings.seed)
    encoder = build_encoder(spec, log).to(device)
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    check_encoder_outputs(encoder)
    bug_compat = applicable_bug_compat(task_spec, settings.bug_compat)
    task = get_task_class(task_spec.task)(settings.data_root, task_spec.options,
                                          task_spec.data_root, where=task_spec.key,
                                          bug_compat=bug_compat)
    datasets = task.datasets()
    probe_head = task.build_head(encoder)
    keys = tuple(probe_head.required_encodings)
    pre_encode = task_spec.pre_encode  # default: image-level tasks only (virb.config)
    if pre_encode and task.train_augmentation() is not None:
        log(f'{task_spec.key}: pre_encode with train augmentation: each of the '
            f'{task_spec.num_dataset_repeats} encoding pass(es) keeps one augmented draw '
            f'(set pre_encode: false to augment every epoch)')
    encode_seconds = 0.0
    if pre_encode:
        train, test, encode_seconds = encode_task(
            encoder, job.encoder_id, task, datasets, keys, device,
            EncodingCache(settings.cache_dir), task_spec.num_dataset_repeats, log=log)
        data = ('encoded', train, test)
    else:
        data = ('images', *datasets)
    never_step = BUG_SCHEDULER in bug_compat
    writer_factory = None
    if settings.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer_factory = SummaryWriter
    done = {}
    for name in job.pending:
        config = task_spec.training_configs[name]
        head = task.build_head(encoder)
        loaded = None
        if task_spec.task_head_weights_path:
            loaded = _head_weights(task_spec.task_head_weights_path, spec.name, head)
        identity = {'experiment': spec.name, 'task': task_spec.task, 'task_key': task_spec.key,
                    'config_name': name, 'config': config.as_dict(),
                    'digest': run_digest(job.encoder_id, task_spec, name, settings.bug_compat),
                    'encoder': spec.as_dict(), 'encoder_id': job.encoder_id,
                    'pre_encoded': pre_encode, 'encode_seconds': encode_seconds,
                    'scheduler_never_steps': never_step, 'bug_compat': bug_compat,
                    'head_weights_loaded': loaded,
                    'device': str(device)}
        train_head(task=task, encoder=encoder, head=head, config=config,
                   spec={'num_epochs': task_spec.num_epochs, 'batch_size': task_spec.batch_size,
                         'test_batch_size': task_spec.test_batch_size, 'keys': keys},
                   data=data, device=device,
                   out_dir=run_dir(settings.out, spec.name, task_spec.key, name),
                   identity=identity, never_step=never_step, seed=settings.seed, log=log,
                   on_epoch=on_epoch, writer_factory=writer_factory)
        done[name] = FINISHED
    stale = failed_path(settings.out, spec.name, task_spec.key)
    if osp.isfile(stale):
        os.remove(stale)
    return done


def record_failure(settings, job, error, trace):
    path = failed_path(settings.out, job.encoder.name, job.task.key)
    atomic_write_json({'experiment': job.encoder.name, 'task_key': job.task.key,
                       'task': job.task.task, 'error': f'{type(error).__name__}: {error}',
                       'traceback': trace, 'time': time.time()}, path)
    return path


def _worker(worker_id, device, threads, jobs, events, settings):
    """Worker process: pull jobs until the None sentinel; report through ``events``."""
    torch.set_num_threads(threads)

    def log(line):
        events.put(('log', worker_id, line))

    while True:
        job = jobs.get()
        if job is None:
            events.put(('exit', worker_id, None))
            return
        try:
            run_job(job, settings, device, log=log,
                    on_epoch=lambda: events.put(('epoch', worker_id, job.index)))
            events.put(('done', worker_id, job.index))
        except Exception as e:  # noqa: BLE001 - a failing job must not stop the others
            trace = traceback.format_exc()
            record_failure(settings, job, e, trace)
            events.put(('failed', worker_id, (job.index, f'{type(e).__name__}: {e}')))


def resolve_devices(device, workers):
    """[(torch device string, threads)] for the workers."""
    cores = os.cpu_count() or 1
    if device in ('auto', 'cuda') and torch.cuda.is_available():
        return [(f'cuda:{i}', max(1, cores // torch.cuda.device_count()))
                for i in range(torch.cuda.device_count())]
    if device == 'cuda':
        raise VirbError('--device cuda: no GPU is visible (torch.cuda.is_available() is False)')
    if device not in ('auto', 'cpu') and not device.startswith('cuda:'):
        raise VirbError(f'--device {device!r}: one of auto, cpu, cuda, cuda:N')
    if device.startswith('cuda:'):
        return [(device, cores)]
    workers = max(1, int(workers))
    return [('cpu', max(1, cores // workers))] * workers


def run_benchmark(encoders, tasks, out, data_root='data', workers=1, device='auto',
                  cache_dir=None, fresh=False, bug_compat=(), reference_task=None, seed=0,
                  tensorboard=True, log=print, stream=None):
    """Run every (encoder, task) job and write the summary; returns the summary dict."""
    os.makedirs(out, exist_ok=True)
    devices = resolve_devices(device, workers)
    settings = Settings(osp.abspath(out), data_root, cache_dir, tuple(bug_compat), seed,
                        devices[0][1], tensorboard)
    jobs = plan_jobs(encoders, tasks, settings, fresh=fresh, log=log)
    total = sum(len(j.pending) * max(1, j.task.num_epochs) for j in jobs)
    log(f'virb: {len(jobs)} jobs ({len(encoders)} encoders x {len(tasks)} tasks, '
        f'{sum(len(j.pending) for j in jobs)} runs) on {len(devices)} worker(s): '
        f'{", ".join(d for d, _ in devices)}')
    progress = Progress(total, 'virb', stream=stream)
    log = progress.wrap(log)
    failures = []
    if jobs and len(devices) == 1:
        torch.set_num_threads(devices[0][1])
        for job in jobs:
            try:
                run_job(job, settings, devices[0][0], log=log,
                        on_epoch=lambda: progress.advance(1))
            except Exception as e:  # noqa: BLE001
                record_failure(settings, job, e, traceback.format_exc())
                failures.append((job, f'{type(e).__name__}: {e}'))
                log(f'virb: job {job.encoder.name} / {job.task.key} FAILED: {e}')
    elif jobs:
        failures = _run_in_workers(jobs, devices, settings, progress, log)
    progress.close()
    summary = write_summary(out, reference_task)
    log(f'virb: summary {summary["paths"]["md"]}, {summary["paths"]["html"]}'
        + (f'; {len(failures)} job(s) failed' if failures else ''))
    return summary


def _run_in_workers(jobs, devices, settings, progress, log):
    ctx = multiprocessing.get_context('spawn')
    job_queue, events = ctx.Queue(), ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    n = min(len(devices), len(jobs))
    for _ in range(n):
        job_queue.put(None)
    procs = [ctx.Process(target=_worker, args=(i, devices[i][0], devices[i][1], job_queue,
                                               events, settings), daemon=True)
             for i in range(n)]
    for p in procs:
        p.start()
    by_index = {j.index: j for j in jobs}
    failures, running = [], n
    while running:
        try:
            kind, worker, payload = events.get(timeout=5)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
            continue
        if kind == 'log':
            log(f'[w{worker}] {payload}')
        elif kind == 'epoch':
            progress.advance(1, note=f'w{worker}: {by_index[payload].encoder.name} / '
                                     f'{by_index[payload].task.key}')
        elif kind == 'failed':
            index, error = payload
            failures.append((by_index[index], error))
            log(f'[w{worker}] job {by_index[index].encoder.name} / {by_index[index].task.key} '
                f'FAILED: {error}')
        elif kind == 'exit':
            running -= 1
    for p in procs:
        p.join(timeout=30)
        if p.exitcode not in (0, None):
            log(f'virb: a worker exited with code {p.exitcode}')
    return failures


def print_table(summary, stream=sys.stdout):
    from virb.report import summary_rows
    header, rows = summary_rows(summary)
    stream.write('| ' + ' | '.join(header) + ' |\n')
    for row in rows:
        stream.write('| ' + ' | '.join(row) + ' |\n')
    stream.flush()
