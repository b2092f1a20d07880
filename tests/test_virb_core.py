"""ViRB core: scheduler stepping, strict weight loading, metrics, results.json, the task
registry, config errors and the summary page."""
import json
import os.path as osp

import pytest
import torch
import torchvision

from virb.config import load_experiment_list, load_virb_configs
from virb.encoders import (ResNetEncoder, build_resnet_encoder, fold_frames,
                           load_resnet_weights, unfold_frames)
from virb.errors import VirbError
from virb.grid import build_optimizer, build_scheduler, parse_training_config
from virb.metrics import DepthL1, MeanIoU, Top1, confusion_matrix
from virb.report import results_record, write_summary


# ----------------------------------------------------------------------------- schedulers
def _lr_after(spec, epochs, steps_per_epoch, never_step=False, n_epochs_run=None,
              n_batches_run=None, lr=0.1, optimizer='sgd'):
    config = parse_training_config('c', {'optimizer': optimizer, 'lr': lr, 'scheduler': spec},
                                   'test')
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config)
    stepper = build_scheduler(opt, config, epochs, steps_per_epoch, never_step)
    for _ in range(n_batches_run or 0):
        opt.step()
        stepper.after_batch()
    for _ in range(n_epochs_run or 0):
        for _ in range(steps_per_epoch):
            opt.step()
            stepper.after_batch()
        stepper.after_epoch()
    return opt.param_groups[0]['lr']


@pytest.mark.parametrize('epochs_run', [0, 1, 2, 3, 5])
def test_steplr_steps_every_epoch(epochs_run):
    lr = _lr_after({'type': 'StepLR', 'step_size': 2, 'gamma': 0.5}, 10, 4,
                   n_epochs_run=epochs_run)
    assert lr == pytest.approx(0.1 * 0.5 ** (epochs_run // 2))


@pytest.mark.parametrize('epochs_run', [0, 1, 2, 3, 6, 9])
def test_onecycle_steps_every_epoch_linear(epochs_run):
    epochs, pct, max_lr = 10, 0.3, 0.1
    initial = max_lr / 25.0
    final = initial / 1e4
    up_end = pct * epochs - 1
    k = epochs_run
    expected = (initial + (max_lr - initial) * k / up_end if k <= up_end else
                max_lr + (final - max_lr) * (k - up_end) / (epochs - 1 - up_end))
    lr = _lr_after({'type': 'OneCycle'}, epochs, 3, n_epochs_run=epochs_run)
    assert lr == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('batches', [0, 1, 7, 19])
def test_poly_steps_every_batch(batches):
    epochs, steps = 5, 4
    lr = _lr_after({'type': 'Poly', 'exponent': 0.9}, epochs, steps, n_batches_run=batches)
    assert lr == pytest.approx(0.1 * (1 - batches / (epochs * steps)) ** 0.9)


@pytest.mark.parametrize('spec, constant', [
    ({'type': 'StepLR', 'step_size': 1, 'gamma': 0.1}, 0.1),
    ({'type': 'OneCycle'}, 0.1 / 25),  # OneCycleLR starts at max_lr / div_factor
    ({'type': 'Poly', 'exponent': 0.9}, 0.1)])
def test_bug_compat_keeps_the_lr_constant(spec, constant):
    """The original built its schedulers and never stepped them: the LR stays at the
    scheduler's starting value."""
    assert _lr_after(spec, 5, 3, never_step=True, n_epochs_run=4) == pytest.approx(constant)


def test_sgd_momentum_and_weight_decay_reach_the_optimizer():
    config = parse_training_config('c', {'optimizer': 'sgd', 'lr': 0.01, 'momentum': 0.9,
                                         'weight_decay': 1e-4}, 'test')
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config)
    assert opt.param_groups[0]['momentum'] == 0.9
    assert opt.param_groups[0]['weight_decay'] == 1e-4


# ----------------------------------------------------------------------------- weights
@pytest.fixture(scope='module')
def r18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_virb_model_prefixed_file_loads_every_key(r18_state, tmp_path):
    path = str(tmp_path / 'virb.pt')
    torch.save({f'model.{k}': v for k, v in r18_state.items()}, path)
    encoder, report = build_resnet_encoder(None, path, log=lambda *_: None)
    assert report.arch == 'resnet18' and report.source_format == 'virb'
    assert torch.equal(encoder.model.conv1.weight, r18_state['conv1.weight'])
    assert 'fc.weight' in report.dropped_keys


def test_missing_trunk_key_is_an_error_naming_it(r18_state, tmp_path):
    state = {f'model.{k}': v for k, v in r18_state.items() if k != 'layer3.1.bn2.weight'}
    path = str(tmp_path / 'broken.pt')
    torch.save(state, path)
    with pytest.raises(VirbError, match=r'missing keys: layer3\.1\.bn2\.weight') as e:
        load_resnet_weights(path, log=lambda *_: None)
    assert 'broken.pt' in str(e.value)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = str(tmp_path / 'r34.pth')
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(VirbError, match='another architecture') as e:
        load_resnet_weights(path, 'resnet18', log=lambda *_: None)
    assert 'resnet34' in str(e.value) and 'r34.pth' in str(e.value)


def test_unknown_layout_and_missing_file(tmp_path):
    path = str(tmp_path / 'other.pt')
    torch.save({'encoder.weight': torch.zeros(2)}, path)
    with pytest.raises(VirbError, match='not a ResNet checkpoint of a known format'):
        load_resnet_weights(path, log=lambda *_: None)
    with pytest.raises(VirbError, match='not found'):
        load_resnet_weights(str(tmp_path / 'nope.pt'))


def test_vissl_checkpoint_loads_through_the_converters(r18_state, tmp_path):
    trunk = {f'_feature_blocks.{k}': v for k, v in r18_state.items() if not k.startswith('fc.')}
    path = str(tmp_path / 'model_final_checkpoint_phase1.torch')
    torch.save({'classy_state_dict': {'base_model': {'model': {'trunk': trunk, 'heads': {}}}}},
               path)
    encoder, report = build_resnet_encoder(None, path, log=lambda *_: None)
    assert report.source_format == 'vissl'
    assert torch.equal(encoder.model.layer4[1].bn2.running_var,
                       r18_state['layer4.1.bn2.running_var'])


def test_encoder_outputs_and_frame_folding():
    encoder = ResNetEncoder('resnet18').eval()
    x = torch.randn(2, 3, 3, 32, 32)  # (B, T, C, H, W)
    folded, t = fold_frames(x)
    assert folded.shape == (6, 3, 32, 32) and t == 3
    assert torch.equal(unfold_frames(folded, t), x)
    with torch.no_grad():
        out = encoder(x)
    assert out['embedding'].shape == (2, 3, 512)
    assert out['conv'].shape == (2, 3, 64, 16, 16)
    assert out['block4'].shape == (2, 3, 512, 1, 1)


# ----------------------------------------------------------------------------- metrics
def test_miou_from_a_hand_computed_confusion_matrix():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    # rows label, cols prediction; the two ignored pixels left out
    expected = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert torch.equal(confusion_matrix(pred, target, 3), expected)
    metric = MeanIoU(3)
    metric.update(pred[None], target[None])  # ids (not logits) are accepted
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / 2
    assert metric.compute() == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_miou_accumulates_over_the_data_set_not_per_batch():
    metric = MeanIoU(2)
    metric.update(torch.tensor([[0, 0]]), torch.tensor([[0, 0]]))
    metric.update(torch.tensor([[1, 0]]), torch.tensor([[1, 1]]))
    # one matrix: [[2, 0], [1, 1]] -> IoU 2/3, 1/2
    assert metric.compute() == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)


def test_top1_and_depth_l1():
    top1 = Top1()
    top1.update(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    assert top1.compute() == 50.0
    depth = DepthL1()
    depth.update(torch.tensor([[1.0, 2.0, 5.0]]), torch.tensor([[1.5, 0.0, 4.0]]))
    assert depth.compute() == pytest.approx(0.75) and not depth.higher_is_better


# ----------------------------------------------------------------------------- results
def _history(values):
    return [{'epoch': i + 1, 'test_metric': v, 'test_loss': 1.0} for i, v in enumerate(values)]


def test_results_record_best_and_last():
    record = results_record({'experiment': 'e'}, Top1(), _history([10, 30, 20]), 'finished')
    assert record['best']['epoch'] == 2 and record['last']['epoch'] == 3
    record = results_record({'experiment': 'e'}, DepthL1(), _history([0.5, 0.3, 0.4]),
                            'finished')
    assert record['best']['epoch'] == 2 and record['best']['test_metric'] == 0.3
    assert record['metric'] == {'name': 'L1', 'higher_is_better': False}


def test_summary_page_names_every_encoder_and_task(tmp_path):
    from virb.report import write_results
    out = str(tmp_path)
    for enc, offset in (('Enc_A', 0), ('Enc_B', 5)):
        for task, metric in (('TaskTop', Top1()), ('TaskDepth', DepthL1())):
            for config, bonus in (('adam-0.001', 0), ('sgd-0.01', 1)):
                values = [offset + bonus + 1, offset + bonus + 3]
                identity = {'experiment': enc, 'task': task, 'task_key': task,
                            'config_name': config}
                write_results(osp.join(out, enc, f'{task}-{config}'),
                              results_record(identity, metric, _history(values), 'finished'))
    summary = write_summary(out, reference_task='TaskTop')
    page = open(summary['paths']['html']).read()
    for name in ('Enc_A', 'Enc_B', 'TaskTop', 'TaskDepth', 'data:image/png;base64'):
        assert name in page
    assert 'LOWER is better' in page
    cells = summary['cells']
    assert cells['Enc_A']['TaskTop'] == {'value': 4, 'config': 'sgd-0.01', 'epoch': 2,
                                         'last': 4}
    assert cells['Enc_A']['TaskDepth']['config'] == 'adam-0.001'  # lower is better
    assert cells['Enc_A']['TaskDepth']['value'] == 1
    md = open(summary['paths']['md']).read()
    assert 'TaskDepth (L1, LOWER is better)' in md
    assert osp.isfile(osp.join(out, 'plot_heatmap.png'))
    assert json.load(open(summary['paths']['json']))['reference_task'] == 'TaskTop'


# ----------------------------------------------------------------------------- configs
GOOD_TASK = {'task': 'SyntheticCarCount', 'num_epochs': 1, 'batch_size': 4,
             'training_configs': {'adam': {'optimizer': 'adam', 'lr': 0.001}}}


def _write_yaml(tmp_path, data, name='cfg.yaml'):
    import yaml
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize('change, message', [
    ({'epochs': 3}, r"cfg\.yaml: T\.epochs: unknown key"),
    ({'task': 'NoSuchTask'}, r"cfg\.yaml: T\.task: unknown task 'NoSuchTask'"),
    ({'training_configs': {'x': {'optimizer': 'rmsprop', 'lr': 0.1}}},
     r"T\.training_configs\.x\.optimizer: unknown optimizer 'rmsprop'"),
    ({'training_configs': {'x': {'optimizer': 'sgd', 'lr': 0.1,
                                 'scheduler': {'type': 'StepLR', 'step_size': 2,
                                               'gama': 0.1}}}},
     r"T\.training_configs\.x\.scheduler\.gama: unknown key for StepLR"),
    ({'training_configs': {'x': {'optimizer': 'sgd', 'lr': 0.1,
                                 'scheduler': {'type': 'Cosine'}}}},
     r"unknown scheduler 'Cosine'"),
    ({'options': {'image_sise': [8, 8]}}, r"T\.options\.image_sise: unknown option"),
])
def test_config_errors_name_the_file_and_key(tmp_path, change, message):
    path = _write_yaml(tmp_path, {'T': {**GOOD_TASK, **change}})
    with pytest.raises(VirbError, match=message):
        load_virb_configs(path)


def test_the_shipped_configs_parse(repo_root):
    import glob
    for path in glob.glob(osp.join(repo_root, 'configs', 'virb', 'virb_configs', '*.yaml')):
        assert load_virb_configs(path)


def test_experiment_list_naming_a_missing_weight_file(tmp_path):
    path = _write_yaml(tmp_path, {'SWAV_800': 'pretrained_weights/SWAV_800.pt'}, 'list.yaml')
    with pytest.raises(VirbError, match=r'list\.yaml: SWAV_800: weight file not found: '
                                        r'pretrained_weights/SWAV_800\.pt'):
        load_experiment_list(path)
    path = _write_yaml(tmp_path, {'R': {'weights': None, 'arch': 'resnet18', 'wieghts': 1}},
                       'list2.yaml')
    with pytest.raises(VirbError, match=r'list2\.yaml: R\.wieghts: unknown key'):
        load_experiment_list(path)
