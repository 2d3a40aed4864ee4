#!/usr/bin/env bash
# The GPU checks, as one prepared script for a lent GPU machine (run from the repo root):
#
#   OUT=dir DATA=path/to/hdfs bash bench/gpu_check.sh
#
# 1. bench.quality_sweep: tiny / small / base on HDFS, three seeds each, in parallel (#5);
#    beside it, the production recipe through the real command line under torchrun (DDP,
#    one rank, preset base, default learning rate) and `logad evaluate` of its bundle.
# 2. On the GPU alone afterwards: bench.train_throughput (packed and not), bench.score_throughput
#    and bench.model_process with preset base, and bench.replay_hdfs (the stream's sessionizer
#    + scorer) on the GPU with the sweep's base bundle.
# 3. bench.stream_e2e with serve on the GPU: backlog drains against the bare scorer, the
#    latency at half the cache-off drain's rate. It needs Java and the broker's jars, which the
#    device lacks: `python -m bench.device_kit` packs both into .devkit/ (carry it), unpacked
#    here; without Java the step is skipped.
# 4. bench.seed_epoch (the seed's 2.46M-session epoch through `logad train`), last, as far as
#    its time allows.
# Wheels in .whl/ (orjson, structlog, aiokafka, async-timeout for Python 3.12; bench.device_kit
# --wheels fetches them) are installed first when present (docs/performance.md, "On a GPU").
# ONLY="step ..." runs only the named steps (the sweep's bundle is then replaced by a few
# steps of `logad train` where a step needs one). Every step has its own time limit
# (T_SWEEP, T_BENCH, T_E2E, T_EPOCH seconds, from the environment on a GPU); a device call
# may last 600 s, so #21's figures come from
#   ONLY="train_throughput stream_e2e seed_epoch" T_EPOCH=150 bash bench/gpu_check.sh
# Results land in $OUT/gpu_check.tgz: collect/results/ holds each bench's result under its
# stable name with its index.json (BENCH_RESULTS_DIR), the rest are logs; the checkout's
# bench/results/ is left alone. Copy a result in there to make it the current one.
# SMOKE=1 shrinks every step to seconds, for a dry run on CPU.
set -u
OUT=${OUT:-/tmp/gpu_check_out}
DATA=${DATA:-data/hdfs}
PY=${PY:-python3}
W=$(mktemp -d)
mkdir -p "$OUT" "$W/collect/results"
export PYTHONUNBUFFERED=1
export BENCH_RESULTS_DIR="$W/collect/results"

if [ -z "${SMOKE:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi

if [ -z "${SMOKE:-}" ] && [ -f .devkit/jre.tar.xz ] && [ -f .devkit/kafka-libs.tar.xz ]; then
    # Python's tarfile, not tar: the image need not have xz.
    $PY -c "import tarfile
for src, dst in (('.devkit/jre.tar.xz', '/tmp/devkit'), ('.devkit/kafka-libs.tar.xz', '/tmp/devkit/cache')):
    tarfile.open(src).extractall(dst, filter='tar')" || exit 1
    export PATH=/tmp/devkit/jre/bin:$PATH LOGAD_CACHE_DIR=/tmp/devkit/cache
fi

if [ -n "${SMOKE:-}" ]; then
    DEV=cpu BIG=tiny EPOCHS=1 SEEDS="0" RUNS="tiny:2e-3" JOBS=1 DDP_EPOCHS=1
    TT="--preset tiny --steps 2 --warmup 1 --baseline-steps 1 --pack-tokens 512"
    ST="--preset tiny --windows 16 --repeats 1"
    MP="--preset tiny --windows 40"
    SE="--sessions 3000 --days 3 --preset tiny --tokens-per-batch 4096 --checkpoint-every-steps 5"
    E2E="--drain-events 3000 --nocache-events 6000 --repeats 1 --live-sessions 100 \
        --low-repetition 0 --latency-s 3 --model-processes 0 --scorer-windows 300"
    T_SWEEP=200 T_BENCH=120 T_EPOCH=150 T_E2E=240
else
    DEV=cuda BIG=base EPOCHS=60 SEEDS="0 1 2" RUNS="tiny:2e-3 small:1e-3 base:2e-4" JOBS=9
    DDP_EPOCHS=10
    TT="--preset base --steps 20 --warmup 5 --baseline-steps 5 --pack-tokens 512"
    ST="--preset base --windows 400 --repeats 1 --groups 10"
    MP="--preset base --windows 2000"
    SE="--sessions 2460000 --days 286 --preset base"
    E2E="--drain-events 200000 --nocache-events 600000 --repeats 2 --live-sessions 0 \
        --low-repetition 0 --latency-s 20 --scorer-windows 20000"
    T_SWEEP=${T_SWEEP:-300} T_BENCH=${T_BENCH:-90} T_EPOCH=${T_EPOCH:-300} T_E2E=${T_E2E:-240}
fi

wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

step() {  # step NAME LIMIT_S CMD...: time-limited, output to $W/collect/NAME.log
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 0
    local t0=$SECONDS
    timeout "$limit" "$@" >"$W/collect/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$W/collect/steps.txt"
    collect
}

collect() {  # after every step, so that a run stopped at the device's limit still reports
    tar czf "$OUT/gpu_check.tgz" -C "$W" collect
}

# A first look at the device's own transformers; if the model does not run on it, the
# version CI uses (a wheel in .whl/fallback/, when carried) goes in, and the look is repeated.
sanity() {
    timeout 120 $PY -m bench.score_throughput --preset tiny --windows 8 --repeats 1 \
        --device "$DEV" --out "$W/sanity/score_throughput.json" >>"$W/collect/sanity.log" 2>&1
}
if ! sanity && ls .whl/fallback/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/fallback/*.whl
    sanity
fi
echo "sanity rc=$?" | tee -a "$W/collect/steps.txt"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch, transformers; print(torch.__version__, transformers.__version__)"
  nproc; } >"$W/collect/machine.txt" 2>&1

# shellcheck disable=SC2086
step sweep "$T_SWEEP" $PY -m bench.quality_sweep --device "$DEV" --jobs "$JOBS" \
    --runs $RUNS --seeds $SEEDS --epochs "$EPOCHS" --threads 1 \
    --data "$DATA" --out "$W/sweep" &
sweep_pid=$!

ddp() {  # a function, run through `bash -c` so that `timeout` can run it
    $PY -m torch.distributed.run --standalone --nproc-per-node 1 -m stream.cli.train train \
        --data "$DATA/train.jsonl" --out "$W/ddp-$BIG" --preset "$BIG" --epochs "$DDP_EPOCHS" \
        --device "$DEV" --checkpoint-every-steps 0 --token-cache-dir "$W/ddp-cache" &&
        $PY -m stream.cli --log-level warning evaluate --model "$W/ddp-$BIG" --device "$DEV" \
            --normal "$DATA/dev_normal.jsonl" --abnormal "$DATA/dev_abnormal.jsonl" \
            --population-normals 552640 --population-abnormals 16838 --report "$W/collect/eval-ddp"
}
export -f ddp
export PY W BIG DATA DEV DDP_EPOCHS
step ddp_train_evaluate "$T_SWEEP" bash -c ddp
wait $sweep_pid

# shellcheck disable=SC2086
step train_throughput "$T_BENCH" $PY -m bench.train_throughput $TT --device "$DEV"
# shellcheck disable=SC2086
step score_throughput "$T_BENCH" $PY -m bench.score_throughput $ST --device "$DEV"
# shellcheck disable=SC2086
step model_process "$T_BENCH" $PY -m bench.model_process $MP --device "$DEV"
bundle=$(ls -d "$W"/sweep/"$BIG"-*-s0/model.trained 2>/dev/null | head -1)
if [ -z "$bundle" ] && { wanted replay || wanted stream_e2e; }; then
    # Speed does not depend on how well the model learned: a few steps make a bundle.
    ONLY="" step bundle "$T_BENCH" $PY -m stream.cli.train train --data "$DATA/train.jsonl" \
        --out "$W/quick-$BIG" --preset "$BIG" --max-steps 5 --device "$DEV" \
        --checkpoint-every-steps 0 --token-cache-dir "$W/quick-cache"
    [ -f "$W/quick-$BIG/manifest.json" ] && bundle="$W/quick-$BIG"
fi
if [ -n "$bundle" ]; then
    step replay "$T_BENCH" $PY -m bench.replay_hdfs --model "$bundle" --device "$DEV" \
        --events "$DATA/dev_events.jsonl.gz" --data "$DATA"
    if command -v java >/dev/null; then
        # shellcheck disable=SC2086
        step stream_e2e "$T_E2E" $PY -m bench.stream_e2e --model "$bundle" --device "$DEV" $E2E
    else
        echo "stream_e2e skipped: no java (carry .devkit: python -m bench.device_kit)" |
            tee -a "$W/collect/steps.txt"
    fi
fi

# The seed's epoch last, as far as its time allows (the result projects 10 epochs from the
# share done); the same command on the same workdir would resume it.
# shellcheck disable=SC2086
step seed_epoch "$T_EPOCH" $PY -m bench.seed_epoch --workdir "$W/seed_epoch" $SE --device "$DEV" \
    --time-limit-s $((T_EPOCH - 60))

for d in "$W"/sweep/*/; do cp "$d/log.txt" "$W/collect/sweep-$(basename "$d").log" 2>/dev/null; done
cp "$W"/ddp-"$BIG"/manifest.json "$W/collect/ddp-manifest.json" 2>/dev/null
collect
tail -n 15 "$W/collect/sweep.log"
tail -n 12 "$W/collect/ddp_train_evaluate.log"
for f in train_throughput score_throughput model_process seed_epoch replay stream_e2e; do tail -n 8 "$W/collect/$f.log" 2>/dev/null; done
