#!/usr/bin/env bash
# detectron2 training on a SLURM cluster: one task per node, each running
# tools/d2_train_net.py, which starts GPUS_PER_NODE processes through detectron2's own
# `launch` (as detectron2's train_net is run on clusters); rank 0's node is the rendezvous.
#
#   [NODES=2] [GPUS_PER_NODE=8] [CPUS_PER_TASK=40] [PORT=29511] [SRUN_ARGS="..."] \
#     tools/slurm_d2_train.sh PARTITION JOB_NAME CONFIG [d2_train_net.py flags] [KEY VALUE ...]
#
# e.g. tools/slurm_d2_train.sh gpu slotcon_coco configs/d2/coco_mask_rcnn_R_50_FPN_1x_syncbn.yaml \
#        MODEL.WEIGHTS slotcon_r50.pkl OUTPUT_DIR work_dirs/d2_slotcon_coco
# Re-submitting with --resume continues from OUTPUT_DIR/last_checkpoint.
# GPUS_PER_NODE=0 runs CPU nodes (one process per node, gloo).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG [d2_train_net.py arguments]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
NODES=${NODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-40}
PORT=${PORT:-29511}
SRUN_ARGS=${SRUN_ARGS:-""}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
GRES=()
PROCS_PER_NODE=1
if [ "$GPUS_PER_NODE" -gt 0 ]; then GRES=(--gres="gpu:$GPUS_PER_NODE"); PROCS_PER_NODE=$GPUS_PER_NODE; fi
export ROOT PYTHON CONFIG NODES PROCS_PER_NODE PORT
# shellcheck disable=SC2086,SC2016  # SRUN_ARGS is a list of words; $SLURM_* expand per task
srun -p "$PARTITION" --job-name="$JOB_NAME" "${GRES[@]}" --nodes="$NODES" --ntasks="$NODES" \
  --ntasks-per-node=1 --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
  bash -c 'MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
           cd "$ROOT" && exec "$PYTHON" -u tools/d2_train_net.py --config-file "$CONFIG" \
             --num-gpus "$PROCS_PER_NODE" --num-machines "$NODES" --machine-rank "$SLURM_NODEID" \
             --dist-url "tcp://$MASTER:$PORT" "$@"' d2_train_net "$@"
