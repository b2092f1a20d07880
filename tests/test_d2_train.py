"""tools/d2_train_net.py for real: a few iterations on the synthetic scenes, --eval-only with
COCO AP, --resume, a 2-process run through detectron2's launch (gloo, CPU), the picture, and
the messages without detectron2 or with bad input."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml'


def _detectron2_installed():
    import importlib.util
    return importlib.util.find_spec('detectron2') is not None


needs_d2 = pytest.mark.skipif(not _detectron2_installed(),
                              reason='detectron2 is not installed (docs/install.md)')

TINY = ['SOLVER.MAX_ITER', '4', 'SOLVER.IMS_PER_BATCH', '2', 'SOLVER.WARMUP_ITERS', '2',
        'SOLVER.STEPS', '(3,)', 'SOLVER.CHECKPOINT_PERIOD', '2', 'DATALOADER.NUM_WORKERS', '0',
        'TEST.PRECISE_BN.NUM_ITER', '2', 'MODEL.RPN.POST_NMS_TOPK_TEST', '50',
        'MODEL.ROI_HEADS.SCORE_THRESH_TEST', '0.0']  # predictions even after 4 iterations


def _run(args, env, timeout=600):
    proc = subprocess.run([sys.executable, 'tools/d2_train_net.py', *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def d2_env(tmp_path_factory):
    """The tiny synthetic scenes (with instance maps and COCO JSON) as synthetic_scenes_*."""
    from densessl import synthetic_scenes
    root = str(tmp_path_factory.mktemp('d2_scenes'))
    synthetic_scenes.generate(root, synthetic_scenes.SyntheticScenesConfig(
        num_train=8, num_val=4, num_unlabeled=0, height=64, width=128), progress=False)
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               DENSESSL_SYNTHETIC_SCENES=root)
    env.pop('WORLD_SIZE', None)
    return env


@pytest.fixture(scope='module')
def r18_weights(tmp_path_factory):
    """A torchvision ResNet-18 converted by the converter hub to a detectron2 pickle."""
    import torch
    import torchvision
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), folder / 'r18.pth')
    from converters import convert
    convert(str(folder / 'r18.pth'), str(folder / 'r18.pkl'), 'torchvision', 'd2',
            log=lambda *a: None)
    return str(folder / 'r18.pkl')


@needs_d2
@pytest.mark.slow
def test_train_then_eval_only_then_resume(d2_env, r18_weights, tmp_path):
    out = str(tmp_path / 'run')
    code, log = _run(['--config-file', CONFIG, 'MODEL.WEIGHTS', r18_weights,
                      'OUTPUT_DIR', out, *TINY], d2_env)
    assert code == 0, log[-4000:]
    assert 'MODEL.RESNETS.NORM SyncBN -> naiveSyncBN' in log        # compat fix 2 said so
    assert 'eta:' in log                                           # detectron2's progress line
    results = json.load(open(osp.join(out, 'results.json')))
    assert set(results['results']) == {'bbox', 'segm'}
    assert 0.0 <= results['results']['bbox']['AP'] <= 100.0
    assert '| bbox |' in open(osp.join(out, 'results.md')).read()
    manifest = json.load(open(osp.join(out, 'manifest.json')))
    assert manifest['kind'] == 'd2_train' and manifest['config']['MODEL']['WEIGHTS'] == r18_weights
    assert any(f.startswith('events.out.tfevents') for f in os.listdir(out))  # TensorBoard
    assert open(osp.join(out, 'last_checkpoint')).read() == 'model_final.pth'

    code, log = _run(['--config-file', CONFIG, '--eval-only', 'MODEL.WEIGHTS',
                      osp.join(out, 'model_final.pth'), 'OUTPUT_DIR', out, *TINY], d2_env)
    assert code == 0, log[-4000:]
    assert 'Evaluation results for bbox' in log and 'Evaluation results for segm' in log
    evaluated = json.load(open(osp.join(out, 'results.json')))
    assert evaluated['results'] == results['results']  # the same model, the same AP

    # an interrupted run resumes: continue from the iteration-2 checkpoint to 4
    os.replace(osp.join(out, 'model_final.pth'), osp.join(tmp_path, 'final_first_run.pth'))
    with open(osp.join(out, 'last_checkpoint'), 'w') as f:
        f.write('model_0000001.pth')
    code, log = _run(['--config-file', CONFIG, '--resume', 'MODEL.WEIGHTS', r18_weights,
                      'OUTPUT_DIR', out, *TINY], d2_env)
    assert code == 0, log[-4000:]
    assert 'Starting training from iteration 2' in log


@needs_d2
@pytest.mark.slow
def test_two_processes_through_detectron2s_launch(d2_env, r18_weights, tmp_path):
    out = str(tmp_path / 'ddp')
    code, log = _run(['--config-file', CONFIG, '--num-gpus', '2', '--dist-url', 'auto',
                      'MODEL.WEIGHTS', r18_weights, 'OUTPUT_DIR', out, *TINY], d2_env)
    assert code == 0, log[-4000:]
    rank1_log = open(osp.join(out, 'log.txt.rank1')).read()  # detectron2's per-rank log
    assert 'Rank of current process: 1. World size: 2' in rank1_log
    assert json.load(open(osp.join(out, 'results.json')))['results']['bbox']['AP'] >= 0.0


@needs_d2
@pytest.mark.slow
def test_prediction_picture(d2_env, r18_weights, tmp_path):
    out = str(tmp_path / 'pic')
    code, log = _run(['--config-file', CONFIG, 'MODEL.WEIGHTS', r18_weights, 'OUTPUT_DIR', out,
                      *TINY], d2_env)
    assert code == 0, log[-4000:]
    png = str(tmp_path / 'pred.png')
    proc = subprocess.run([sys.executable, 'tools/d2_visualize.py', '--config-file', CONFIG,
                           '--out', png, '--num-images', '2', '--score', '0.0', 'MODEL.WEIGHTS',
                           osp.join(out, 'model_final.pth')], cwd=REPO, env=d2_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image
    image = Image.open(png)
    assert image.size == (2 * 128 * 3, 2 * 64 * 3)  # 2 rows of truth | predictions, x3


@needs_d2
def test_bad_input_messages(d2_env, tmp_path):
    missing = str(tmp_path / 'missing.pkl')
    code, log = _run(['--config-file', CONFIG, 'MODEL.WEIGHTS', missing,
                      'OUTPUT_DIR', str(tmp_path / 'a'), *TINY], d2_env, timeout=300)
    assert code != 0 and missing in log and '--dst-format d2' in log
    code, log = _run(['--config-file', CONFIG, 'MODEL.NO_SUCH_KEY', '1',
                      'OUTPUT_DIR', str(tmp_path / 'b')], d2_env, timeout=300)
    assert code != 0 and 'MODEL.NO_SUCH_KEY' in log


def test_without_detectron2_the_tool_says_how_to_install(tmp_path):
    code = ("import sys, runpy; sys.modules['detectron2'] = None; "
            "sys.argv = ['tools/d2_train_net.py', '--config-file', 'x.yaml']; "
            "runpy.run_path('tools/d2_train_net.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert 'detectron2 is not installed' in proc.stderr
    assert 'DENSESSL_DETECTRON2' in proc.stderr and 'docs/install.md' in proc.stderr
