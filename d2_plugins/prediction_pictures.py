"""Pictures of a detector's predictions: ground truth beside predicted boxes and masks.

One PNG: a row per image, the annotated instances (left) and the predictions above a score
threshold (right), both drawn by detectron2's ``Visualizer`` with the data set's class names
and colours, enlarged ``scale`` times so that small images stay readable.
"""
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer
from PIL import Image


def draw_pair(record, predictor, metadata, score_threshold, scale):
    """(H*scale, 2*W*scale, 3) uint8: ground truth | predictions of one data-set record."""
    bgr = read_image(record['file_name'], format='BGR')
    rgb = bgr[:, :, ::-1]
    truth = Visualizer(rgb, metadata, scale=scale).draw_dataset_dict(record).get_image()
    instances = predictor(bgr)['instances'].to('cpu')
    instances = instances[instances.scores >= score_threshold]
    predicted = Visualizer(rgb, metadata, scale=scale, instance_mode=ColorMode.IMAGE) \
        .draw_instance_predictions(instances).get_image()
    return np.concatenate([truth, predicted], axis=1), len(instances)


def draw_predictions(cfg, dataset_name, out_png, num_images=4, score_threshold=0.5, scale=3.0):
    """Write the picture for the first ``num_images`` images of ``dataset_name``;
    ``cfg.MODEL.WEIGHTS`` is the trained model (loaded checked). Returns per-image counts."""
    predictor = DefaultPredictor(cfg)
    metadata = MetadataCatalog.get(dataset_name)
    records = sorted(DatasetCatalog.get(dataset_name), key=lambda r: r['file_name'])
    rows, counts = [], []
    for record in records[:num_images]:
        row, count = draw_pair(record, predictor, metadata, score_threshold, scale)
        rows.append(row)
        counts.append(dict(file_name=record['file_name'], annotated=len(record['annotations']),
                           predicted=count))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out_png)
    return counts
