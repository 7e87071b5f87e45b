#!/usr/bin/env bash
# Run every benchmark in sequence on a quiet machine; logs and JSON go to benchmarks/results/.
# Usage: bash benchmarks/run_all.sh   (about 25 minutes on a 2-core machine)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .venv/bin/activate
out=benchmarks/results
mkdir -p "$out"
cohort=$(python -c "from thyrocad.data.phantom import ensure_default_cohort; print(ensure_default_cohort())")
run() {  # name, command...
    local name=$1; shift
    echo "== $name: $*" | tee "$out/$name.log"
    /usr/bin/time -f "wall %e s, max RSS %M KB" "$@" >> "$out/$name.log" 2>&1
    tail -n 25 "$out/$name.log"
}
lscpu | grep -E "Model name|^CPU\(s\)" > "$out/machine.txt"
run phantom python benchmarks/bench_phantom.py
run calibrate python benchmarks/calibrate_uptake_ratio.py --cohort "$cohort"
run preprocess python benchmarks/bench_preprocess.py "$cohort"
run locator python benchmarks/bench_locator.py --files 446
run preprocess_truth python benchmarks/preprocess_truth.py "$cohort" --presets paper default grabcut_bed
run models python benchmarks/bench_models.py
run engines python benchmarks/bench_engines.py
run train_head python benchmarks/bench_train_head.py
run predict python benchmarks/bench_predict.py --studies 100
run experiment python benchmarks/bench_experiment.py
run server python benchmarks/bench_server.py --duration 60
