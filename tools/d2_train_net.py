#!/usr/bin/env python
"""Detection transfer with detectron2: detectron2's usual train_net, with densessl's parts.

    python tools/d2_train_net.py --config-file configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml \\
        MODEL.WEIGHTS work_dirs/slotcon_r18.pkl OUTPUT_DIR work_dirs/d2_slotcon
    python tools/d2_train_net.py --config-file configs/d2/coco_mask_rcnn_R_50_FPN_1x_syncbn.yaml \\
        --num-gpus 8 MODEL.WEIGHTS slotcon_r50.pkl OUTPUT_DIR work_dirs/d2_coco
    python tools/d2_train_net.py --config-file CFG --resume OUTPUT_DIR OUT          # continue
    python tools/d2_train_net.py --config-file CFG --eval-only MODEL.WEIGHTS OUT/model_final.pth
    multi-node: --num-machines N --machine-rank R --dist-url tcp://HOST:PORT (tools/slurm_d2_train.sh)

The flags are detectron2's (``default_argument_parser``) and processes start through
detectron2's own ``launch`` (``--num-gpus`` processes per machine; on a machine without a GPU
that many CPU processes with gloo). Trailing ``KEY VALUE`` pairs override the config;
unknown keys are an error. ``MODEL.WEIGHTS`` takes ``tools/convert_checkpoint.py --dst-format
d2`` files, and every load is checked (``d2_plugins.checked_checkpointer``). After evaluation
the main process writes ``OUTPUT_DIR/results.{json,md}`` (COCO / VOC AP per task) and
``manifest.json``; TensorBoard logs and ``metrics.json`` are detectron2's own.
"""
import os.path as osp
import sys

try:
    import d2_plugins  # noqa: F401  (fixes + registration; needs detectron2)
except ImportError as error:
    if 'detectron2' not in str(error):
        raise
    sys.exit(f'tools/d2_train_net.py: {error}')

import detectron2.utils.comm as comm  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.engine import (DefaultTrainer, default_argument_parser,  # noqa: E402
                               default_setup, launch)
from detectron2.evaluation import (COCOEvaluator, PascalVOCDetectionEvaluator,  # noqa: E402
                                   verify_results)

from d2_plugins.checked_checkpointer import CheckedDetectionCheckpointer  # noqa: E402
from d2_plugins.compat import adapt_config_for_device  # noqa: E402
from d2_plugins.results_table import write_results  # noqa: E402


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with the evaluator of each data set's ``evaluator_type``."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or osp.join(cfg.OUTPUT_DIR, 'inference', dataset_name)
        kind = MetadataCatalog.get(dataset_name).evaluator_type
        if kind == 'coco':
            return COCOEvaluator(dataset_name, output_dir=output_folder)
        if kind == 'pascal_voc':
            return PascalVOCDetectionEvaluator(dataset_name)
        raise NotImplementedError(f'no evaluator for data set {dataset_name!r} of type {kind!r}')


def setup(args):
    """The config: file, then KEY VALUE overrides, then this machine's device (compat)."""
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    adapt_config_for_device(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        CheckedDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        # DefaultTrainer.train returns them only with TEST.EXPECTED_RESULTS; the final
        # evaluation (EvalHook, also at the last iteration) keeps them here
        results = getattr(trainer, '_last_eval_results', None)
    if comm.is_main_process() and results:
        verify_results(cfg, results)
        write_results(results, cfg, args)
    return results


if __name__ == '__main__':
    args = default_argument_parser().parse_args()
    print('Command Line Args:', args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
