#!/bin/bash
# Submit a sharded delinea experiment to Slurm: the array of experiment.sbatch (one task per
# shard), then gather.sbatch with --dependency=afterok on every task of the array, and print both
# job ids.
#
#   MANIFEST=/data/cohort/manifest.json CONFIG=/data/exp.json OUT=/scratch/exp1 \
#       examples/slurm/submit.sh [sbatch options for both jobs, e.g. --partition=short]
#
# The settings of the jobs are environment variables (DELINEA, MANIFEST, SOURCE, TARGETS,
# QUERIES, ADAPTS, BUDGET, CONFIG, OUT, DEVICE, THREADS, WAIT, ...: see experiment.sbatch), which
# sbatch hands to the jobs (--export=ALL, its default). This script also reads:
#   SHARDS     number of shards = array tasks        (3)
#   LOG_DIR    where the jobs' logs go                (./slurm-logs)
#   EXPERIMENT_SBATCH_ARGS / GATHER_SBATCH_ARGS  extra sbatch options of one of the two jobs only,
#              split on spaces (e.g. EXPERIMENT_SBATCH_ARGS="--gres=gpu:1 --partition=gpu")
# Options on the command line go to both sbatch calls and override the #SBATCH lines.
#
# Output: two lines, `experiment array job: <id> (...)` and `gather job: <id> (...)`.
# Follow with `squeue -u $USER`, `tail -f $LOG_DIR/*`; cancel everything with `scancel <id> <id>`.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARDS=${SHARDS:-3}
LOG_DIR=${LOG_DIR:-$PWD/slurm-logs}
# shellcheck disable=SC2206  # split on purpose
experiment_extra=(${EXPERIMENT_SBATCH_ARGS:-})
# shellcheck disable=SC2206
gather_extra=(${GATHER_SBATCH_ARGS:-})

if ! [[ "$SHARDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "submit.sh: SHARDS must be a positive number, not '$SHARDS'" >&2
    exit 2
fi
# Slurm opens the log files before a job starts: their folder has to exist
mkdir -p "$LOG_DIR"

# --parsable prints "<job id>" or "<job id>;<cluster>"
array=$(sbatch --parsable --array="0-$((SHARDS - 1))" \
    --output="$LOG_DIR/experiment-%A_%a.log" \
    "${experiment_extra[@]}" "$@" "$here/experiment.sbatch")
array=${array%%;*}
echo "experiment array job: $array (shards 0-$((SHARDS - 1)), logs $LOG_DIR/experiment-${array}_<shard>.log)"

# afterok on each task (afterok:<array>_0:<array>_1:...), not on the array as a whole: Slurm keeps
# the highest exit code any task of an array ever had, so with afterok:<array> a task that exited
# 75 once and succeeded after its requeue still counts as failed and the gather step would never
# run (DependencyNeverSatisfied). A task's own record is reset when it is requeued.
dependency=afterok
for ((k = 0; k < SHARDS; k++)); do dependency+=":${array}_$k"; done
gather=$(sbatch --parsable --dependency="$dependency" \
    --output="$LOG_DIR/gather-%j.log" \
    "${gather_extra[@]}" "$@" "$here/gather.sbatch")
gather=${gather%%;*}
echo "gather job: $gather (after every shard of $array exited 0, log $LOG_DIR/gather-$gather.log)"
