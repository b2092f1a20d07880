#!/usr/bin/env python
"""Draw a trained detectron2 model's predictions beside the ground truth (one PNG).

    python tools/d2_visualize.py --config-file configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml \\
        --out work_dirs/d2_slotcon/predictions.png MODEL.WEIGHTS work_dirs/d2_slotcon/model_final.pth

A row per image of the first test set (``--dataset`` to choose another registered one):
annotated instances left, predicted boxes and masks with score >= ``--score`` right.
"""
import argparse
import json
import sys

try:
    import d2_plugins  # noqa: F401  (fixes + registration; needs detectron2)
except ImportError as error:
    if 'detectron2' not in str(error):
        raise
    sys.exit(f'tools/d2_visualize.py: {error}')

from detectron2.config import get_cfg  # noqa: E402

from d2_plugins.compat import adapt_config_for_device  # noqa: E402
from d2_plugins.prediction_pictures import draw_predictions  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config-file', required=True)
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--dataset', help='registered data set (default: first DATASETS.TEST)')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--score', type=float, default=0.5, help='score threshold')
    parser.add_argument('--scale', type=float, default=3.0, help='enlargement of the images')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE config overrides')
    args = parser.parse_args()
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    adapt_config_for_device(cfg)
    cfg.freeze()
    if not cfg.MODEL.WEIGHTS:
        sys.exit('tools/d2_visualize.py: set MODEL.WEIGHTS to the trained model '
                 '(OUTPUT_DIR/model_final.pth of tools/d2_train_net.py)')
    counts = draw_predictions(cfg, args.dataset or cfg.DATASETS.TEST[0], args.out,
                              args.num_images, args.score, args.scale)
    print(json.dumps(counts, indent=1))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
