#!/usr/bin/env bash
# The runs of docs/results.md, "Why end to end differs", side by side on one machine (one GPU, or CPUs):
# every preset of this folder as its own Snakemake run, each with a share of the job slots (15 at once),
# all stopped at a deadline; then every results folder (without checkpoints) packed into OUT/causes.tar.gz.
#
#   presets/causes/run.sh OUT [DEADLINE_SECONDS] [KEY=VALUE ...]
#
# KEY=VALUE pairs go to every run's --config (e.g. data_cache=/path/to/files device=cuda). Each run is
# the command its preset's header names; a run stopped at the deadline resumes when started again.
set -u
out=${1:?usage: presets/causes/run.sh OUT [DEADLINE_SECONDS] [KEY=VALUE ...]}
deadline=${2:-3600}
shift $(($# >= 2 ? 2 : 1))
mkdir -p "$out/logs"
snakemake=${SNAKEMAKE:-snakemake}
start=$SECONDS

# run NAME SLOTS CONFIGFILES... [-- TARGETS]: one Snakemake run with SLOTS training jobs at a time
run() {
    local name=$1 slots=$2 left=$((deadline - (SECONDS - start)))
    shift 2
    if ((left < 30)); then
        echo "$name: not started, the deadline is near" >>"$out/status.txt"
        return
    fi
    local files=() targets=()
    while (($#)) && [ "$1" != -- ]; do files+=("$1"); shift; done
    (($#)) && shift && targets=(-- "$@")
    (
        timeout --signal=INT --kill-after=30 "$left" \
            "$snakemake" --cores "$slots" --resources gpu="$slots" --keep-going --nolock \
            --configfile presets/shared_data.yaml "${files[@]}" "${config[@]}" "${targets[@]}" \
            >"$out/logs/$name.log" 2>&1
        echo "$name: exit $? after $((SECONDS - start)) s" >>"$out/status.txt"
    ) &
}

config=()
(($#)) && config=(--config "$@")
c=presets/comparison.yaml
run kl_mean 3 $c presets/causes/kl_mean.yaml
run l2 3 $c presets/causes/l2.yaml
run l2_kl_mean 2 $c presets/causes/l2_kl_mean.yaml
run table6_kl_mean 1 presets/table6.yaml presets/causes/table6_kl_mean.yaml \
    -- results/causes/table6_kl_mean/tables/table6_lambda_kl.md
run lambda_auto 1 $c presets/causes/lambda_auto.yaml
run codec_init_pretrained 1 $c presets/causes/codec_init_pretrained.yaml
run hard_midpoints 2 $c presets/causes/hard_midpoints.yaml
run retinamnist_full 2 presets/causes/retinamnist_full.yaml
wait
run lr_wide 8 $c presets/causes/lr_wide.yaml  # the longest: after the others
wait
tar -czf "$out/causes.tar.gz" --exclude=checkpoints --exclude=prepared results/causes
cat "$out/status.txt"
