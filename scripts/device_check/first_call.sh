#!/usr/bin/env bash
# The first device call (README.md beside this): keep part_a and install the wheels where the second call finds them.
set -e
W=/root/tw
mkdir -p $W
cp .gpu/a/part_a $W/
PY=$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')
python3 -m pip install -q --no-deps --no-index --target $W/site $(ls .gpu/a/*.whl | grep -v multiprocess) \
  .gpu/a/multiprocess-*-$PY-none-any.whl 2>&1 | tail -3
PYTHONPATH=$W/site python3 -c "import torch, transformers, peft, trl, datasets, gguf
print(torch.__version__, torch.cuda.is_available(), transformers.__version__, trl.__version__, peft.__version__)"
nvidia-smi --query-gpu=name,memory.total --format=csv
