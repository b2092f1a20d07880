"""d2_plugins.datasets: the synthetic scenes' instances as detectron2 data sets, checked."""
import os

import pytest

pytest.importorskip('detectron2', reason='detectron2 is not installed (docs/install.md)')

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from d2_plugins.datasets import register_synthetic_scenes  # noqa: E402
from densessl import synthetic_scenes  # noqa: E402

CONFIG = synthetic_scenes.SyntheticScenesConfig(num_train=4, num_val=3, num_unlabeled=0,
                                                height=64, width=128, seed=1)


@pytest.fixture
def scenes(tmp_path):
    root = str(tmp_path / 'scenes')
    synthetic_scenes.generate(root, CONFIG, progress=False)
    return root


def test_records_carry_the_thing_instances_with_contiguous_classes(scenes):
    train, val = register_synthetic_scenes(scenes, prefix='t_scenes')
    records = DatasetCatalog.get(val)
    assert len(records) == CONFIG.num_val
    assert MetadataCatalog.get(val).thing_classes == ['car', 'person', 'pole']
    assert MetadataCatalog.get(val).evaluator_type == 'coco'
    annotations = [a for r in records for a in r['annotations']]
    assert annotations and {a['category_id'] for a in annotations} <= {0, 1, 2}
    assert all(os.path.isfile(r['file_name']) for r in records)
    assert all(a['segmentation']['counts'] for a in annotations)  # RLE (MASK_FORMAT bitmask)


def test_a_json_naming_a_missing_image_fails_naming_it(scenes):
    _, val = register_synthetic_scenes(scenes, prefix='t_missing')
    gone = synthetic_scenes.image_path(scenes, 'val', 1)
    os.remove(gone)
    with pytest.raises(FileNotFoundError) as info:
        DatasetCatalog.get(val)
    assert os.path.basename(gone) in str(info.value) and 'instances_val.json' in str(info.value)


def test_a_set_without_json_says_how_to_make_it(tmp_path):
    _, val = register_synthetic_scenes(str(tmp_path / 'empty'), prefix='t_empty')
    with pytest.raises(FileNotFoundError, match='gen_synthetic_scenes.py'):
        DatasetCatalog.get(val)
