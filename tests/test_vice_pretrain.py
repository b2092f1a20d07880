"""ViCE through VISSL's real entry point: tiny runs of config=pretrain/vice/vice_synthetic_cpu
(1 and 2 processes, gloo), and the config inference of dense_swav_config."""
import copy
import glob
import json
import os.path as osp
import subprocess

import pytest
import torch

from vissl_plugins.vice.dense_swav_config import infer_dense_swav_config
from vissl_plugins.vice.dense_swav_loss import DenseSwAVConfigError

CONFIG = 'config=pretrain/vice/vice_synthetic_cpu'


def _overrides(data_root, out_dir, procs):
    return [CONFIG, f'config.CHECKPOINT.DIR={out_dir}', f'config.DATA.TRAIN.DATA_PATHS=[{data_root}]',
            'config.DATA.TRAIN.DATA_LIMIT=16', 'config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=2',
            'config.DATA.TRAIN.DENSE_SSL.VIEW_SIZE=40', 'config.DATA.NUM_DATALOADER_WORKERS=0',
            'config.MODEL.TRUNK.DEEPLABV3PLUS.DECODER_CHANNELS=16',
            'config.LOSS.dense_swav_loss.queue.queue_length=64',
            'config.LOSS.dense_swav_loss.queue.start_iter=2',
            "config.MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[['module.heads.0.prototypes0.weight',1]]",
            'config.OPTIMIZER.num_epochs=1', 'config.LOG_FREQUENCY=1',
            f'config.DISTRIBUTED.NUM_PROC_PER_NODE={procs}']


@pytest.mark.slow
@pytest.mark.parametrize('procs', [1, 2])
def test_vice_pretraining_runs_through_vissl(procs, python, repo_root, tiny_scenes, tmp_path,
                                             cpu_env):
    out_dir = str(tmp_path / 'run')
    proc = subprocess.run([python, osp.join(repo_root, 'tools', 'run_distributed_engines.py'),
                           *_overrides(tiny_scenes, out_dir, procs)], cwd=repo_root, env=cpu_env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    final = osp.join(out_dir, 'model_final_checkpoint_phase0.torch')
    assert osp.exists(final), log[-3000:]
    state = torch.load(final)['classy_state_dict']
    model = state['base_model']['model']
    assert '_feature_blocks.decoder.projection.weight' in model['trunk']
    prototypes = model['heads']['0.prototypes0.weight']
    assert prototypes.shape == (128, 128)  # K = 128 prototypes of the 128-d embedding
    # the normalisation hook ran after the last step
    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(128))
    loss_state = state['loss']
    iterations = 16 // (2 * procs)
    assert int(loss_state['num_iteration']) == iterations
    assert loss_state['queue_embeddings'].shape == (64 // procs, 128)  # split over processes
    with open(osp.join(out_dir, 'stdout.json')) as f:
        losses = [json.loads(line)['loss'] for line in f if '"loss"' in line]
    assert len(losses) == iterations and all(0 < x < 10 for x in losses)
    assert glob.glob(osp.join(out_dir, 'tb_logs', '**', 'events.out.tfevents.*'), recursive=True)
    if procs == 1:
        assert 'dense_swav_loss terms: coherence' in log


def _config():
    return {
        'LOSS': {'name': 'dense_swav_loss', 'dense_swav_loss': {'temperature': 0.1}},
        'MODEL': {'HEAD': {'PARAMS': [['dense_swav_head', {'dims': [128],
                                                           'num_clusters': [32]}]]},
                  'TRUNK': {'NAME': 'deeplabv3plus', 'DEEPLABV3PLUS': {'OUT_FEAT_DIM': 128}}},
        'DATA': {'TRAIN': {'DATASET_TYPE': 'dense_ssl_dataset', 'COLLATE_FUNCTION': 'dense_collator',
                           'DENSE_SSL': {'VIEW_N': 3}}},
    }


def test_loss_sizes_are_inferred_from_the_head_and_the_data():
    config = infer_dense_swav_config(_config())
    assert config['LOSS']['dense_swav_loss'] == {'temperature': 0.1, 'num_crops': 3,
                                                 'num_prototypes': 32, 'embedding_dim': 128}


@pytest.mark.parametrize('change,message', [
    (lambda c: c['MODEL']['HEAD'].update(PARAMS=[['swav_head', {'dims': [128]}]]),
     'dense_swav_head'),
    (lambda c: c['DATA']['TRAIN'].update(COLLATE_FUNCTION='simclr_collator'), 'dense_collator'),
    (lambda c: c['MODEL']['TRUNK']['DEEPLABV3PLUS'].update(OUT_FEAT_DIM=64), 'OUT_FEAT_DIM=64'),
])
def test_parts_that_do_not_fit_are_refused(change, message):
    config = copy.deepcopy(_config())
    change(config)
    with pytest.raises(DenseSwAVConfigError, match=message):
        infer_dense_swav_config(config)


@pytest.mark.parametrize('name,views,images,queue', [
    ('vice_8node_resnet_coco_exp27', 5, 4, 160000),
    ('vice_8node_resnet_road_exp31', 5, 4, 160000),
    ('vice_1gpu_resnet_coco_demo', 3, 1, 160000),
    ('vice_synthetic_cpu', 3, 8, 4096),  # one epoch, 100 iterations
])
def test_shipped_vice_configs_compose_check_and_infer(name, views, images, queue):
    """Every shipped ViCE config passes the key check and the loss-size inference."""
    from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

    import vissl_plugins  # noqa: F401  (config search path)
    from vissl_plugins.config_check import check_config_keys, with_plugin_defaults
    cfg = with_plugin_defaults(compose_hydra_configuration([f'config=pretrain/vice/{name}']))
    check_config_keys(cfg)
    _, config = convert_to_attrdict(cfg)
    infer_dense_swav_config(config)
    loss = config.LOSS.dense_swav_loss
    assert loss['num_crops'] == views and loss['queue']['queue_length'] == queue
    assert config.DATA.TRAIN.BATCHSIZE_PER_REPLICA == images
    assert config.DATA.TRAIN.DATASET_TYPE == 'dense_ssl_dataset'


@pytest.mark.slow
def test_lr_zero_run_changes_bn_statistics_but_no_weight(python, repo_root, tiny_scenes, tmp_path,
                                                         cpu_env):
    """The demo's second random baseline: the pretraining run with the demo's lr-0 overrides
    (tools/demo.py bn_statistics_only) moves BN running statistics, never a weight."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('demo', osp.join(repo_root, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    overrides = [o for o in _overrides(tiny_scenes, str(tmp_path / 'run'), 1)
                 if not o.startswith('config.OPTIMIZER.num_epochs')]
    overrides += [o for o in demo.bn_statistics_only(demo.RECIPES['vice'])
                  if not o.startswith(('config.OPTIMIZER.num_epochs', 'config.DATA.TRAIN.DATA_LIMIT'))]
    overrides += ['config.OPTIMIZER.num_epochs=2', 'config.CHECKPOINT.CHECKPOINT_FREQUENCY=1']
    proc = subprocess.run([python, osp.join(repo_root, 'tools', 'run_distributed_engines.py'),
                           *overrides], cwd=repo_root, env=cpu_env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    def trunk(name):
        state = torch.load(str(tmp_path / 'run' / name))['classy_state_dict']
        return state['base_model']['model']['trunk']
    first, last = trunk('model_phase0.torch'), trunk('model_final_checkpoint_phase1.torch')
    bn_stats = [k for k in first if k.endswith(('running_mean', 'running_var'))]
    weights = [k for k in first if k.endswith(('weight', 'bias'))]
    assert bn_stats and weights
    assert any(not torch.equal(first[k], last[k]) for k in bn_stats)
    for key in weights:
        assert torch.equal(first[key], last[key]), key
