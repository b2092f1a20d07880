"""Pretraining file lists: parsers, split choice (no eval leak), the .npy + summary, the CLI."""
import json
import os
import os.path as osp
import subprocess
import warnings

import numpy as np
import pytest
from PIL import Image

from densessl import dataset_filelists as fl

TOOL = osp.join('tools', 'gen_dataset_filelist.py')
COCO_COUNTS = {'train2017': 3, 'unlabeled2017': 4, 'val2017': 2, 'test2017': 2}
CITYSCAPES_COUNTS = {'train': 3, 'train_extra': 2, 'val': 2, 'test': 2}


def _image(path, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope='module')
def trees(tmp_path_factory):
    """Fake COCO 2017 and Cityscapes trees (tiny real images, plus files that must be skipped)."""
    base = tmp_path_factory.mktemp('filelist_trees')
    coco, cityscapes = str(base / 'coco'), str(base / 'cityscapes')
    seed = 0
    for folder, n in COCO_COUNTS.items():
        for i in range(n):
            seed += 1
            _image(osp.join(coco, folder, f'{seed:012d}.jpg'), seed)
    open(osp.join(coco, 'train2017', 'README.txt'), 'w').close()  # not an image
    os.makedirs(osp.join(coco, 'annotations'))
    for split, n in CITYSCAPES_COUNTS.items():
        for i in range(n):
            seed += 1
            city = ('aachen', 'bonn')[i % 2]
            _image(osp.join(cityscapes, 'leftImg8bit', split, city,
                            f'{city}_{i:06d}_000019_leftImg8bit.png'), seed)
        # labels live beside in gtFine; they must never be listed
        _image(osp.join(cityscapes, 'gtFine', split, 'aachen',
                        'aachen_000000_000019_gtFine_color.png'), 0)
    return coco, cityscapes


def _collect(sources, splits=()):
    with warnings.catch_warnings():
        warnings.simplefilter('error', fl.EvalSplitWarning)  # any eval split fails the test
        return fl.collect_images(sources, splits)


def test_defaults_are_coco_train_unlabeled_and_cityscapes_train_only(trees):
    coco, cityscapes = trees
    paths, rows = _collect([('coco', coco), ('cityscapes', cityscapes)])
    assert [(r['dataset'], r['split'], r['count']) for r in rows] == [
        ('coco', 'train', 3), ('coco', 'unlabeled', 4), ('cityscapes', 'train', 3)]
    assert len(paths) == 10 and all(osp.isabs(p) and osp.isfile(p) for p in paths)
    for p in paths:  # no evaluation image, no label, no non-image
        assert '/val' not in p and '/test' not in p and 'gtFine' not in p
        assert p.endswith('.jpg') or p.endswith('_leftImg8bit.png')
    assert not any('train_extra' in p for p in paths)


def test_eval_splits_only_by_name_and_with_a_warning(trees):
    coco, cityscapes = trees
    with pytest.warns(fl.EvalSplitWarning, match="cityscapes split 'val' .*2 images.*must not "
                                                 "be evaluated"):
        paths, rows = fl.collect_images([('cityscapes', cityscapes)], ['train', 'val'])
    assert [r['split'] for r in rows] == ['train', 'val'] and rows[1]['eval_split']
    assert sum('/leftImg8bit/val/' in p for p in paths) == 2


def test_per_dataset_split_entries(trees):
    coco, cityscapes = trees
    paths, rows = _collect([('coco', coco), ('cityscapes', cityscapes)],
                           ['coco:train', 'cityscapes:train', 'cityscapes:train_extra'])
    assert [(r['dataset'], r['split']) for r in rows] == [
        ('coco', 'train'), ('cityscapes', 'train'), ('cityscapes', 'train_extra')]
    assert len(paths) == 3 + 3 + 2
    # a plain entry applies to every data set without its own entries
    _, rows = _collect([('coco', coco), ('cityscapes', cityscapes)], ['train', 'coco:unlabeled'])
    assert [(r['dataset'], r['split']) for r in rows] == [('coco', 'unlabeled'),
                                                         ('cityscapes', 'train')]


def test_bad_requests_are_clear_errors(trees, tmp_path):
    coco, cityscapes = trees
    with pytest.raises(fl.FileListError, match="cityscapes has no split 'unlabeled'.*train, "
                                               "train_extra, val, test"):
        fl.collect_images([('coco', coco), ('cityscapes', cityscapes)], ['unlabeled'])
    with pytest.raises(fl.FileListError, match="no file-list parser for data set 'kitti'.*"
                                               "cityscapes, coco.*docs/datasets.md"):
        fl.collect_images([('kitti', coco)])
    with pytest.raises(fl.FileListError, match='--splits coco:train: coco is not one of'):
        fl.collect_images([('cityscapes', cityscapes)], ['coco:train'])
    with pytest.raises(fl.FileListError, match='(?s)coco: root .*nowhere does not exist.*'
                                               'unlabeled2017.*cocodataset.org'):
        fl.collect_images([('coco', str(tmp_path / 'nowhere'))])
    with pytest.raises(fl.FileListError, match='more than once'):
        fl.collect_images([('coco', coco), ('coco', coco + '/')])
    with pytest.raises(fl.FileListError, match='expected NAME=ROOT'):
        fl.parse_source('/data/coco')
    with pytest.raises(fl.FileListError, match='no data sets given'):
        fl.collect_images([])


def test_missing_or_empty_split_folder(tmp_path):
    root = tmp_path / 'coco'
    _image(str(root / 'train2017' / '1.jpg'), 1)
    with pytest.raises(fl.FileListError, match="(?s)coco split 'unlabeled': folder .*unlabeled2017 "
                                               "does not exist.*--splits"):
        fl.collect_images([('coco', str(root))])
    os.makedirs(root / 'unlabeled2017')
    with pytest.raises(fl.FileListError, match=r"coco split 'unlabeled': no images matching "
                                               r".*unlabeled2017/\*\.jpg"):
        fl.collect_images([('coco', str(root))])
    paths, _ = fl.collect_images([('coco', str(root))], ['train'])
    assert paths == [str(root / 'train2017' / '1.jpg')]


def test_write_filelist_is_a_vissl_disk_filelist(trees, tmp_path):
    from vissl.config import AttrDict
    from vissl.data.disk_dataset import DiskImageDataset

    import vissl_plugins  # noqa: F401  (framework fixes)
    coco, cityscapes = trees
    paths, rows = _collect([('coco', coco), ('cityscapes', cityscapes)])
    out = str(tmp_path / 'lists' / 'mix.npy')
    summary = fl.write_filelist(paths, rows, out)
    assert summary['total'] == 10 and sorted(os.listdir(tmp_path / 'lists')) == [
        'mix.npy', 'mix.summary.json']  # no temp files left
    assert json.load(open(fl.summary_path(out))) == json.loads(json.dumps(summary))
    array = np.load(out)  # plain unicode array, no pickle needed
    assert array.dtype.kind == 'U' and list(array) == paths
    split_cfg = {'BATCHSIZE_PER_REPLICA': 2, 'REMOVE_IMG_PATH_PREFIX': '',
                 'NEW_IMG_PATH_PREFIX': '', 'ENABLE_QUEUE_DATASET': False, 'MMAP_MODE': True,
                 'DEFAULT_GRAY_IMG_SIZE': 224}
    dataset = DiskImageDataset(AttrDict({'DATA': {'TRAIN': split_cfg}}), 'disk_filelist', out,
                               'TRAIN', 'road_mix')
    assert len(dataset) == 10
    for index in (0, 9):
        image, ok = dataset[index]
        assert ok and image.size == (8, 6)
        np.testing.assert_array_equal(np.array(image), np.array(Image.open(paths[index])))
    with pytest.raises(fl.FileListError, match='use a .npy file name'):
        fl.write_filelist(paths, rows, str(tmp_path / 'mix.txt'))


def test_parser_definition_checks_and_registration():
    with pytest.raises(ValueError, match='evaluation split cannot be a default'):
        fl.DatasetParser('x', {'train': 'a/*.jpg', 'val': 'b/*.jpg'}, ('train', 'val'),
                         ('val',), '', '')
    with pytest.raises(ValueError, match=r"splits \['extra'\] are not in"):
        fl.DatasetParser('x', {'train': 'a/*.jpg'}, ('extra',), (), '', '')
    with pytest.raises(ValueError, match='needs a wildcard'):
        fl.DatasetParser('x', {'train': 'a/b.jpg'}, ('train',), (), '', '')
    with pytest.raises(ValueError, match="'coco' is already registered"):
        fl.register(fl.DatasetParser('coco', {'train': 'a/*.jpg'}, ('train',), (), '', ''))
    assert {'coco', 'cityscapes'} <= set(fl.PARSERS)


def test_a_newly_registered_parser_is_used(tmp_path):
    root = tmp_path / 'vistas'
    _image(str(root / 'training' / 'images' / 'a.jpg'), 3)
    _image(str(root / 'validation' / 'images' / 'b.jpg'), 4)
    parser = fl.DatasetParser('vistas_test', {'train': 'training/images/*.jpg',
                                              'val': 'validation/images/*.jpg'},
                              ('train',), ('val',), '  ROOT/training/images', 'somewhere')
    fl.register(parser)
    try:
        paths, rows = _collect([('vistas_test', str(root))])
        assert paths == [str(root / 'training' / 'images' / 'a.jpg')]
    finally:
        del fl.PARSERS['vistas_test']


def _run(python, repo_root, cpu_env, *args):
    return subprocess.run([python, TOOL, *args], cwd=repo_root, env=cpu_env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_list_and_summary(python, repo_root, cpu_env, trees, tmp_path):
    coco, cityscapes = trees
    out = str(tmp_path / 'road_mix.npy')
    result = _run(python, repo_root, cpu_env, '--dataset', f'coco={coco}',
                  '--dataset', f'cityscapes={cityscapes}', '--out', out, '--splits', 'train')
    assert result.returncode == 0, result.stderr
    assert 'WARNING' not in result.stderr
    assert len(np.load(out)) == 6
    summary = json.load(open(osp.join(tmp_path, 'road_mix.summary.json')))
    assert [(r['dataset'], r['split'], r['count']) for r in summary['sources']] == [
        ('coco', 'train', 3), ('cityscapes', 'train', 3)]
    assert 'total' in result.stdout and ' 6 ' in result.stdout
    # re-run with an evaluation split: the list is replaced, with a warning
    again = _run(python, repo_root, cpu_env, '--dataset', f'cityscapes={cityscapes}',
                 '--out', out, '--splits', 'test')
    assert again.returncode == 0, again.stderr
    assert "WARNING: cityscapes split 'test'" in again.stderr
    assert 'EVALUATION SPLIT' in again.stdout
    assert all('/leftImg8bit/test/' in p for p in np.load(out))


def test_cli_errors(python, repo_root, cpu_env, trees, tmp_path):
    coco, _ = trees
    missing = _run(python, repo_root, cpu_env, '--dataset', f'cityscapes={tmp_path}/none',
                   '--out', str(tmp_path / 'x.npy'))
    assert missing.returncode == 1 and 'error: cityscapes: root' in missing.stderr
    assert 'Traceback' not in missing.stderr and not osp.exists(tmp_path / 'x.npy')
    usage = _run(python, repo_root, cpu_env, '--dataset', f'coco={coco}')
    assert usage.returncode == 2 and '--out FILE.npy' in usage.stderr
    listed = _run(python, repo_root, cpu_env, '--list-datasets')
    assert listed.returncode == 0 and 'cityscapes: splits train, train_extra, val, test; ' \
        'default train;' in listed.stdout


@pytest.mark.slow
def test_vissl_pretrains_from_the_list_through_its_dataset_catalog(python, repo_root, cpu_env,
                                                                   tiny_scenes, tmp_path):
    """The docs' recipe end to end: the synthetic scenes (Cityscapes layout) -> file list ->
    VISSL catalog entry (VISSL_DATASET_CATALOG_PATH) -> a real SimCLR epoch on disk_filelist."""
    out = str(tmp_path / 'filelists' / 'scenes.npy')
    made = _run(python, repo_root, cpu_env, '--dataset', f'cityscapes={tiny_scenes}',
                '--splits', 'train', 'train_extra', '--out', out)
    assert made.returncode == 0, made.stderr
    assert len(np.load(out)) == 8 + 16
    catalog = tmp_path / 'dataset_catalog.json'
    catalog.write_text(json.dumps({'scenes_mix': {'train': [out, '<unused>'],
                                                  'val': ['<unused>', '<unused>']}}))
    run_dir = tmp_path / 'run'
    env = dict(cpu_env, VISSL_DATASET_CATALOG_PATH=str(catalog))
    result = subprocess.run(
        [python, osp.join(repo_root, 'tools', 'run_distributed_engines.py'),
         'config=pretrain/simclr/simclr_resnet18_synthetic_cpu',
         'config.DATA.TRAIN.DATA_SOURCES=[disk_filelist]',
         'config.DATA.TRAIN.DATASET_NAMES=[scenes_mix]', f'config.CHECKPOINT.DIR={run_dir}',
         'config.OPTIMIZER.num_epochs=1', 'config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=8',
         'config.DATA.TRAIN.TRANSFORMS.0.size=48', 'config.DATA.TRAIN.TRANSFORMS.2.size=32',
         'config.DATA.NUM_DATALOADER_WORKERS=0', 'config.LOG_FREQUENCY=1'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / 'log.txt').read_text()
    assert f'Loading data from file: {out}' in log
    iterations = [json.loads(line)['iter'] for line in open(run_dir / 'stdout.json')]
    assert iterations == [0, 1, 2]  # 24 images / batch 8
    assert (run_dir / 'model_final_checkpoint_phase0.torch').is_file()
