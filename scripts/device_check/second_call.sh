#!/usr/bin/env bash
# The second device call (README.md beside this): join the GGUF, convert it, run the configs.
W=/root/tw
[ -f $W/part_a ] || { echo "FRESH machine: part_a missing"; exit 3; }
cat $W/part_a .gpu/b/part_b > $W/m.gguf; sha256sum $W/m.gguf
export PYTHONPATH=$W/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false W OUT
(while true; do nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >> $OUT/smi.csv; sleep 1; done) &
python3 .gpu/convert.py $W/m.gguf $W/base 2>&1 | tail -2
timeout ${LIMIT:-470} python3 .gpu/go.py $W/base 2>&1 | grep -v -i "warn" | tee $OUT/log.txt | tail -40
ls -la $OUT
