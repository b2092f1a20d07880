"""ViRB runs: a task registered in the test runs without touching the runner, the cache
hit, skipping finished runs, TensorBoard scalars, the CLI with 2 CPU workers over the
synthetic tasks (with a failing job reported), and --dst-format virb."""
import glob
import json
import os.path as osp
import subprocess

import pytest
import torch
import torchvision
import yaml
from torch.utils.data import TensorDataset

from converters import convert
from virb.config import EncoderSpec, load_virb_configs
from virb.metrics import Top1
from virb.runner import run_benchmark
from virb.tasks import TASKS, Task, register_task
from virb.tasks.image_classification import ImageClassificationTask


@pytest.fixture
def toy_task():
    """A new task: one registered class, nothing else."""
    @register_task('ToyBrightness')
    class ToyBrightness(ImageClassificationTask):
        options = {}

        def datasets(self):
            g = torch.Generator().manual_seed(0)
            labels = torch.randint(0, 2, (24,), generator=g)
            images = torch.rand(24, 3, 32, 32, generator=g) * 0.2 + labels.view(-1, 1, 1, 1) * 0.8
            return TensorDataset(images[:16], labels[:16]), TensorDataset(images[16:], labels[16:])

        def num_outputs(self):
            return 2

        def new_metric(self):
            return Top1()
    yield ToyBrightness
    TASKS.pop('ToyBrightness')


def _config(tmp_path, task='ToyBrightness', epochs=2, extra=None):
    entry = {'task': task, 'num_epochs': epochs, 'batch_size': 8,
             'training_configs': {'adam-0.01': {'optimizer': 'adam', 'lr': 0.01},
                                  'sgd-0.1': {'optimizer': 'sgd', 'lr': 0.1, 'momentum': 0.9,
                                              'scheduler': {'type': 'StepLR', 'step_size': 1,
                                                            'gamma': 0.5}}},
             **(extra or {})}
    path = tmp_path / 'virb.yaml'
    path.write_text(yaml.safe_dump({'Toy': entry}))
    return load_virb_configs(str(path))


def test_a_registered_task_runs_and_the_second_run_hits_the_cache(toy_task, tmp_path):
    assert issubclass(toy_task, Task)
    tasks = _config(tmp_path)
    encoders = [EncoderSpec('rand18', arch='resnet18')]
    out, cache = str(tmp_path / 'out'), str(tmp_path / 'cache')
    lines = []
    summary = run_benchmark(encoders, tasks, out, workers=1, device='cpu', cache_dir=cache,
                            log=lines.append, tensorboard=False)
    assert any('encoding ToyBrightness train: 16 images' in l for l in lines)
    record = json.load(open(osp.join(out, 'rand18', 'Toy-sgd-0.1', 'results.json')))
    assert record['status'] == 'finished' and len(record['history']) == 2
    assert [h['lr'] for h in record['history']] == pytest.approx([0.1, 0.05])  # StepLR steps
    assert record['best'] and record['last']['epoch'] == 2
    assert osp.isfile(osp.join(out, 'rand18', 'Toy-sgd-0.1', 'model_head.pt'))
    assert summary['cells']['rand18']['Toy']['config'] in ('adam-0.01', 'sgd-0.1')

    # again: finished runs are skipped, nothing is encoded
    lines.clear()
    run_benchmark(encoders, tasks, out, workers=1, device='cpu', cache_dir=cache,
                  log=lines.append, tensorboard=False)
    assert any('2 finished runs skipped' in l for l in lines)
    assert not any(l.startswith('encoding') for l in lines)

    # --fresh: every run again, the features come from the cache (no encoder pass)
    lines.clear()
    run_benchmark(encoders, tasks, out, workers=1, device='cpu', cache_dir=cache, fresh=True,
                  log=lines.append, tensorboard=False)
    assert sum('cache hit' in l for l in lines) == 2  # train and test
    assert not any('images, keys' in l for l in lines)


def test_tensorboard_scalars_in_the_run_folder(toy_task, tmp_path):
    """Each run writes its per-epoch losses, metric and LR as TensorBoard scalars in
    out/<experiment>/<task>-<config>/; a re-run of the run replaces the old event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tasks = _config(tmp_path, epochs=3)
    out = str(tmp_path / 'out')
    run_benchmark([EncoderSpec('rand18', arch='resnet18')], tasks, out, device='cpu',
                  log=lambda *_: None, tensorboard=True)
    folder = osp.join(out, 'rand18', 'Toy-sgd-0.1')
    events = glob.glob(osp.join(folder, 'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(folder)
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert tags == {f'{t}/ToyBrightness' for t in
                    ('TrainLoss', 'TrainAccuracy', 'TestLoss', 'TestAccuracy', 'LR')}
    record = json.load(open(osp.join(folder, 'results.json')))
    for tag, field in (('TrainLoss', 'train_loss'), ('TestAccuracy', 'test_metric'),
                       ('LR', 'lr')):
        scalars = acc.Scalars(f'{tag}/ToyBrightness')
        assert [e.step for e in scalars] == [1, 2, 3]
        assert [e.value for e in scalars] == pytest.approx([h[field] for h in record['history']],
                                                           rel=1e-5)
    assert [e.value for e in acc.Scalars('LR/ToyBrightness')] == pytest.approx([0.1, 0.05, 0.025])
    # an interrupted run (status running) runs again in its folder: one event file
    record['status'] = 'running'
    with open(osp.join(folder, 'results.json'), 'w') as f:
        json.dump(record, f)
    lines = []
    run_benchmark([EncoderSpec('rand18', arch='resnet18')], tasks, out, device='cpu',
                  log=lines.append, tensorboard=True)
    assert any('1 finished runs skipped' in line for line in lines)
    assert len(glob.glob(osp.join(folder, 'events.out.tfevents.*'))) == 1


def test_encoder_forward_calls_once_per_batch_of_the_encoding(toy_task, tmp_path, monkeypatch):
    """Six training configs share one encoding: the encoder runs over the data once."""
    from virb import encoders as enc
    calls = []
    original = enc.ResNetEncoder.forward
    monkeypatch.setattr(enc.ResNetEncoder, 'forward',
                        lambda self, x: calls.append(len(x)) or original(self, x))
    configs = {f'adam-{i}': {'optimizer': 'adam', 'lr': 0.001 * (i + 1)} for i in range(6)}
    path = tmp_path / 'grid.yaml'
    path.write_text(yaml.safe_dump({'Toy': {'task': 'ToyBrightness', 'num_epochs': 3,
                                            'batch_size': 8, 'training_configs': configs}}))
    run_benchmark([EncoderSpec('r', arch='resnet18')], load_virb_configs(str(path)),
                  str(tmp_path / 'out'), device='cpu', log=lambda *_: None, tensorboard=False)
    assert sum(calls) - 1 == 24  # 16 train + 8 test images, plus the interface check's one


def test_dst_format_virb_round_trip(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    src, dst = str(tmp_path / 'r18.pth'), str(tmp_path / 'r18_virb.pt')
    torch.save(state, src)
    report = convert(src, dst, 'torchvision', 'virb', log=lambda *_: None)
    assert report['status'] == 'written' and report['num_matched'] == len(state)
    written = torch.load(dst, weights_only=True)
    assert set(written) == {f'model.{k}' for k in state}
    back = convert(dst, str(tmp_path / 'back.pth'), 'auto', 'torchvision', log=lambda *_: None)
    assert back['source_format'] == 'virb' and back['status'] == 'written'
    assert torch.equal(torch.load(str(tmp_path / 'back.pth'), weights_only=True)['conv1.weight'],
                       state['conv1.weight'])


@pytest.mark.slow
def test_cli_two_tasks_two_workers_with_a_failing_job(python, repo_root, tiny_scenes, cpu_env,
                                                      tmp_path):
    """tools/virb.py as a user runs it: 2 CPU workers, the two synthetic tasks, a trained-
    format encoder, a random one and one with weights of another architecture (its jobs
    fail and are reported; the others finish)."""
    torch.manual_seed(0)
    r18 = str(tmp_path / 'r18_virb.pt')
    torch.save({f'model.{k}': v for k, v in torchvision.models.resnet18().state_dict().items()},
               r18)
    r34 = str(tmp_path / 'r34.pth')
    torch.save(torchvision.models.resnet34().state_dict(), r34)
    exp = tmp_path / 'experiments.yaml'
    exp.write_text(yaml.safe_dump({'Trained_R18': r18,
                                   'Random_R18': {'weights': None, 'arch': 'resnet18'},
                                   'Wrong_Arch': {'weights': r34, 'arch': 'resnet18'}}))
    size = {'image_size': [32, 64]}
    cfg = tmp_path / 'virb.yaml'
    cfg.write_text(yaml.safe_dump({
        'SyntheticCarCount': {'task': 'SyntheticCarCount', 'num_epochs': 2, 'batch_size': 4,
                              'options': size,
                              'training_configs': {'adam-0.001': {'optimizer': 'adam',
                                                                  'lr': 0.001}}},
        'SyntheticScenesSegmentation': {
            'task': 'SyntheticScenesSegmentation', 'num_epochs': 1, 'batch_size': 4,
            'pre_encode': False, 'options': size,
            'training_configs': {'adam-0.001-Poly': {'optimizer': 'adam', 'lr': 0.001,
                                                     'scheduler': {'type': 'Poly'}}}}}))
    out = tmp_path / 'out'
    proc = subprocess.run([python, 'tools/virb.py', f'--experiment_list={exp}',
                           f'--virb_configs={cfg}', '--data-root', tiny_scenes, '--out',
                           str(out), '--workers', '2', '--device', 'cpu'],
                          cwd=repo_root, env=cpu_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # a job failed
    assert 'another architecture' in proc.stdout + proc.stderr
    assert '[w0]' in proc.stdout and '[w1]' in proc.stdout
    for name in ('Trained_R18', 'Random_R18'):
        for run in ('SyntheticCarCount-adam-0.001', 'SyntheticScenesSegmentation-adam-0.001-Poly'):
            record = json.load(open(out / name / run / 'results.json'))
            assert record['status'] == 'finished'
    assert (out / 'Wrong_Arch' / 'FAILED-SyntheticCarCount.json').is_file()
    summary = json.load(open(out / 'summary.json'))
    assert {f['experiment'] for f in summary['failures']} == {'Wrong_Arch'}
    page = (out / 'summary.html').read_text()
    for name in ('Trained_R18', 'Random_R18', 'Wrong_Arch', 'SyntheticCarCount',
                 'SyntheticScenesSegmentation', 'FAILED'):
        assert name in page
    assert '| Trained_R18 |' in proc.stdout
    assert list((out / 'Random_R18' / 'SyntheticCarCount-adam-0.001').glob('events.out.tfevents*'))


def test_cli_bad_input_exits_2_naming_the_key(python, repo_root, tmp_path, cpu_env):
    cfg = tmp_path / 'virb.yaml'
    cfg.write_text(yaml.safe_dump({'T': {'task': 'SyntheticCarCount', 'num_epochs': 1,
                                         'batch_size': 4, 'training_configs': {
                                             'x': {'optimizer': 'adamw', 'lr': 0.1}}}}))
    proc = subprocess.run([python, 'tools/virb.py', '--name', 'r', '--arch', 'resnet18',
                           f'--virb_configs={cfg}', '--out', str(tmp_path / 'o')],
                          cwd=repo_root, env=cpu_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "virb.yaml: T.training_configs.x.optimizer: unknown optimizer 'adamw'" in proc.stderr
