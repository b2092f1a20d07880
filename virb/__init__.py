"""ViRB, the frozen-encoder benchmark (Kotar et al., ICCV 2021), framework-free.

    python tools/virb.py --experiment_list=configs/virb/experiment_lists/demo_cpu.yaml \\
        --virb_configs=configs/virb/virb_configs/demo_cpu.yaml --workers 2

One package, one concept per module: ``encoders`` (checked weight loading, the encoder
interface), ``tasks`` (the task registry and the data readers), ``heads``, ``pre_encoding``
(encode once, fp16, on-disk cache), ``grid`` (optimizers and schedulers of a training
config), ``metrics``, ``training`` (one head, one config), ``config`` (the YAML files),
``runner`` (jobs and worker processes), ``progress``, ``report`` (results.json and the
summary pages), ``demo``. Imports no VISSL, MMSeg or detectron2 module. docs/virb.md.
"""
