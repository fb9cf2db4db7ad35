#!/usr/bin/env bash
# Install sr_iqa without network on a machine whose Python already has torch (the GPU image): the wheels of
# `make wheelhouse`, then sr_iqa itself, into a --target folder that PYTHONPATH puts first. Nothing is
# downloaded and no installed package is touched. Then checks that everything imports from there.
#   PY=python3 bash benchmarks/gpu_install.sh [WHEELHOUSE=wheelhouse] [SITE=/tmp/sr_iqa_site]
#   export PYTHONPATH=SITE
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
WHEELS=${1:-wheelhouse}
SITE=${2:-/tmp/sr_iqa_site}
if [ ! -f "$WHEELS/MANIFEST.txt" ]; then
  echo "gpu_install.sh: no wheelhouse at $WHEELS: run 'make wheelhouse' on a machine with the package index and" \
       "carry the folder along" >&2
  exit 1
fi
install=("$PY" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check --upgrade
         --target "$SITE")
# Every wheel but setuptools, which only serves pip's isolated build of sr_iqa below (found with --find-links):
# in SITE it would shadow the machine's own.
runtime=()
for wheel in "$WHEELS"/*.whl; do
  case $(basename "$wheel") in setuptools-*) ;; *) runtime+=("$wheel") ;; esac
done
"${install[@]}" "${runtime[@]}"
"${install[@]}" --find-links "$WHEELS" .
cd /tmp  # import from SITE, not from the working tree
PYTHONPATH="$SITE" "$PY" - "$SITE" <<'EOF'
import sys
from pathlib import Path

import sr_iqa  # noqa: F401  (installs the basicsr compatibility finder first)
import basicsr, lpips, omegaconf, pyiqa, torch, torchvision  # noqa: E401

site = Path(sys.argv[1]).resolve()
for module in (sr_iqa, basicsr, pyiqa, lpips, omegaconf):
    if site not in Path(module.__file__).resolve().parents:
        sys.exit(f"gpu_install.sh: {module.__name__} was imported from {module.__file__}, not from {site}")
print(f"gpu_install.sh: sr_iqa, basicsr {basicsr.__version__}, pyiqa {pyiqa.__version__} import from {site}; "
      f"torch {torch.__version__} (CUDA {torch.version.cuda}, GPU {torch.cuda.is_available()}), "
      f"torchvision {torchvision.__version__}, Python {sys.version.split()[0]}")
EOF
