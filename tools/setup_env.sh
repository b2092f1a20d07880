#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv.
#
#   bash tools/setup_env.sh          # idempotent: does nothing when .venv matches requirements/
#
# The order matters and is why this is a script and not one `pip install -r`:
#   1. torch/torchvision, 2. vissl --no-deps, 3. classy-vision --no-deps --force-reinstall,
#   4. the pinned runtime (VISSL's real deps, MMSeg 1.x), then OpenCV's contrib build in place
#   of opencv-python, 5. densessl itself (editable), 6. detectron2 when asked for.
#
# detectron2 is optional and not on the package index. DENSESSL_DETECTRON2 names what to
# install it from: a wheel (.whl), a source checkout (folder) or a git URL (git+https://...);
# sources are built in place (~4 min on 2 CPU cores), all --no-deps with requirements/detectron2.txt:
#   DENSESSL_DETECTRON2=git+https://github.com/facebookresearch/detectron2.git bash tools/setup_env.sh
# Without it, a prebuilt wheel for this Python in the team's wheel folder DENSESSL_WHEELS
# (default: ../shared/wheels beside the checkout, where CI keeps the CPU wheel built from
# detectron2's official repository) is used when there is one; otherwise nothing is installed
# or removed (docs/install.md) and the detectron2 tests skip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DENSESSL_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.densessl-requirements.sha1"
D2_SOURCE="${DENSESSL_DETECTRON2:-}"
if [ -z "$D2_SOURCE" ]; then
  WHEELS="${DENSESSL_WHEELS:-$ROOT/../shared/wheels}"
  PY_TAG="$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  D2_SOURCE="$(ls "$WHEELS"/detectron2-*-"$PY_TAG"-"$PY_TAG"-*.whl 2>/dev/null | sort | tail -n 1 || true)"
fi
WANT="$( (cat "$ROOT"/requirements/*.txt "$ROOT/pyproject.toml"; [ -z "$D2_SOURCE" ] || echo "detectron2: $D2_SOURCE") | sha1sum | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
echo "[setup_env] creating/updating $VENV (first time: a few minutes; torch is ~5 GB)" >&2
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" -r "$ROOT/requirements/torch.txt"
"${PIP[@]}" "setuptools<80" wheel
"${PIP[@]}" --no-deps vissl==0.1.6
"${PIP[@]}" --no-deps --force-reinstall classy-vision==0.7.0
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/test.txt"
# OpenCV: ViCE needs cv2.ximgproc (contrib build). mmengine / mmcv-lite declare opencv-python,
# which pip then installs beside it; both write the same cv2 package, so remove the plain
# builds and reinstall the pinned contrib build over what they left.
OPENCV_PIN="$(grep -o '^opencv-contrib-python-headless==[^ ]*' "$ROOT/requirements/runtime.txt")"
"$VENV/bin/python" -m pip uninstall -y -q opencv-python opencv-python-headless opencv-contrib-python \
  2>/dev/null || true
"${PIP[@]}" --no-deps --force-reinstall "$OPENCV_PIN"
# compat mode: a path entry to the repo, so new plugin packages are found without reinstalling
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat
"$VENV/bin/python" -c "import vissl_plugins, mmseg_plugins, converters, cv2; cv2.ximgproc" \
  || { echo "[setup_env] the environment does not import; see the errors above" >&2; exit 1; }
if [ -n "$D2_SOURCE" ]; then
  echo "[setup_env] detectron2 from $D2_SOURCE" >&2
  "${PIP[@]}" -r "$ROOT/requirements/detectron2.txt"
  if [ ! -e "$D2_SOURCE" ] && [[ "$D2_SOURCE" != git+* ]]; then
    echo "[setup_env] DENSESSL_DETECTRON2=$D2_SOURCE: no such wheel or folder, and not a git+ URL" >&2
    exit 1
  fi
  "${PIP[@]}" --no-deps --no-build-isolation "$D2_SOURCE"
  "$VENV/bin/python" -c "import d2_plugins" \
    || { echo "[setup_env] detectron2 from $D2_SOURCE does not import; see the errors above" >&2; exit 1; }
fi
echo "$WANT" > "$STAMP"
echo "[setup_env] ready: $VENV" >&2
