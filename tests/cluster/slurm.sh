#!/bin/bash
# A sharded delinea experiment under a real Slurm scheduler, on a one-node cluster set up here.
#
#   bash tests/cluster/slurm.sh                 # set up, run, compare, tear down
#   bash tests/cluster/slurm.sh --keep          # leave the cluster (and the work folder) up after
#   bash tests/cluster/slurm.sh --cluster-only  # just the cluster and a dummy array job
#   bash tests/cluster/slurm.sh --stop          # stop a cluster left up by --keep
#
# Needs root (it installs packages and runs the Slurm and munge daemons): run as root or with
# sudo rights, it re-runs itself under `sudo -E` otherwise. Debian/Ubuntu (apt) only.
#
# What it does:
#   1. installs slurm-wlm and munge from apt if missing; makes a munge key if there is none and
#      starts munged unless a munged already answers;
#   2. writes a one-node slurm.conf under $SLURM_TEST_DIR (default /var/tmp/delinea-slurm: the
#      system's /etc/slurm is not touched; its own ports, so a real Slurm on the host is left
#      alone), starts slurmctld and slurmd as daemons (logs in $SLURM_TEST_DIR/log) and waits for
#      the node to be idle; then checks with a dummy array of 3 that the tasks run side by side;
#   3. in a fresh work folder on the local disk (the "cluster's shared file system", one node):
#      synthesises a tiny cohort, runs the single-process reference experiment (ref/), then
#      examples/slurm/submit.sh: examples/slurm/experiment.sbatch as an array of 3 shards into
#      sharded/ and examples/slurm/gather.sbatch with --dependency=afterok on its tasks, unchanged,
#      with their settings as environment variables; waits for both (no accounting here, so by
#      `scontrol show job`), prints each task's log tail;
#   4. compares sharded/'s cases.csv, table.md, table.csv and summary.md with ref/'s (each folder's
#      own path replaced by <OUT>), prints a diff and fails on any difference; then every model's
#      weights, selection, adaptation plan and prediction and results.json, byte for byte; ends
#      with `slurm: PASS ...` and the timings.
# At exit the daemons it started are stopped (the jobs cancelled first) unless --keep; the work
# folder is removed after a PASS, kept (and named) after a failure. Rerunnable: a cluster left up
# by an earlier run is stopped and started afresh with an empty state.
#
# Environment:
#   DELINEA             the delinea binary (default: <repo>/target/release/delinea)
#   SLURM_TEST_DIR      Slurm's config, state and logs (default /var/tmp/delinea-slurm)
#   SLURM_TEST_WORK     where the work folder is made (default /var/tmp)
#   SLURM_TEST_PORT     slurmctld's port; slurmd's is the next one (default 16817)
#   SLURM_TEST_TIMEOUT  seconds to wait for the jobs (default 1200)
#   SLURM_TEST_CONFIG   an experiment config to use instead of the built-in tiny one (whose 10
#                       source iterations leave every prediction empty: the tables still compare
#                       the queries' picks, and the models and predictions are compared byte for
#                       byte; 300 source and adaptation iterations give non-zero Dice, ~1 min)
#
# slurm.conf settings this needs in a container without systemd and without a writable cgroup
# tree (tested with Slurm 22.05.8 on Debian 12): ProctrackType=proctrack/linuxproc and
# TaskPlugin=task/none (no cgroup plugins), JobAcctGatherType=jobacct_gather/none,
# AccountingStorageType=accounting_storage/none (no slurmdbd, hence no sacct: jobs are followed
# with scontrol, MinJobAge raised so finished records stay visible), SlurmUser=root, and
# OverSubscribe=FORCE on the partition so that three one-CPU tasks share the two cores of a
# small machine instead of one waiting for a free core (select/cons_tres with CR_Core alone runs
# only two at a time there).

set -euo pipefail

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

keep=0
mode="test"
for arg in "$@"; do
    case $arg in
        --keep) keep=1 ;;
        --stop) mode=stop ;;
        --cluster-only) mode=cluster ;;
        -h|--help) usage; exit 0 ;;
        *) echo "slurm.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "slurm.sh: needs root (no sudo here)" >&2; exit 2; }
    exec sudo -E bash "$0" "$@"
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DELINEA=${DELINEA:-$root/target/release/delinea}
SLURM_TEST_DIR=${SLURM_TEST_DIR:-/var/tmp/delinea-slurm}
SLURM_TEST_WORK=${SLURM_TEST_WORK:-/var/tmp}
SLURM_TEST_PORT=${SLURM_TEST_PORT:-16817}
SLURM_TEST_TIMEOUT=${SLURM_TEST_TIMEOUT:-1200}
sdir=$SLURM_TEST_DIR
export SLURM_CONF=$sdir/slurm.conf

t0=$SECONDS
say() { echo "slurm: $*"; }
die() { echo "slurm: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- daemons

# A daemon of ours: the pid in its pid file, still running the program of that name.
our_pid() {
    local file=$sdir/$1.pid pid
    [ -s "$file" ] || return 1
    pid=$(cat "$file")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

stop_cluster() {
    local name pid
    if our_pid slurmctld >/dev/null; then
        # jobs first: their slurmstepd would outlive slurmd
        squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for name in slurmd slurmctld; do
        pid=$(our_pid "$name") || continue
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        rm -f "$sdir/$name.pid"
    done
}

print_daemon_logs() {
    local f
    for f in "$sdir"/log/slurmctld.log "$sdir"/log/slurmd.log; do
        [ -f "$f" ] || continue
        echo "----- tail of $f" >&2
        tail -n 30 "$f" >&2
    done
}

if [ "$mode" = stop ]; then
    stop_cluster
    if [ -s "$sdir/munged.started" ]; then
        pid=$(cat "$sdir/munged.started")
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = munged ] && kill "$pid"
        rm -f "$sdir/munged.started"
    fi
    say "stopped the cluster of $sdir"
    exit 0
fi

install_packages() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sbatch scontrol munged munge; do
        command -v "$cmd" >/dev/null || missing=1
    done
    [ "$missing" = 0 ] && return 0
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get"
    say "installing slurm-wlm and munge (apt)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get install -y -qq --no-install-recommends slurm-wlm munge \
            || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; }
         } >"$sdir/apt.log" 2>&1; then
        tail -n 30 "$sdir/apt.log" >&2
        die "apt-get install slurm-wlm munge failed"
    fi
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged is running already: share it
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.25
    done
    munge -n | unmunge >/dev/null || die "munged does not answer"
    # ours to stop at exit
    cat /run/munge/munged.pid >"$sdir/munged.started" 2>/dev/null || true
}

stop_munge_if_ours() {
    [ -s "$sdir/munged.started" ] || return 0
    local pid
    pid=$(cat "$sdir/munged.started")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = munged ]; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$sdir/munged.started"
}

write_conf() {
    local host node_line cpus mem
    host=$(hostname -s)
    # e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    node_line=$(slurmd -C | head -n 1)
    [[ "$node_line" == NodeName=* ]] || die "slurmd -C said: $node_line"
    node_line=${node_line#NodeName=* }
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
    # a little under what slurmd measures: a node whose memory reads lower than configured is drained
    node_line=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 95 / 100))/" <<<"$node_line")
    cat >"$SLURM_CONF" <<EOF
# Written by tests/cluster/slurm.sh: a one-node test cluster; rewritten on every run.
ClusterName=delinea-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$SLURM_TEST_PORT
SlurmdPort=$((SLURM_TEST_PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$sdir/state
SlurmdSpoolDir=$sdir/spool
SlurmctldPidFile=$sdir/slurmctld.pid
SlurmdPidFile=$sdir/slurmd.pid
SlurmctldLogFile=$sdir/log/slurmctld.log
SlurmdLogFile=$sdir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups (none writable in a container, no systemd): processes tracked by parent pid, no
# task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting: no slurmdbd, so no sacct; finished jobs stay in scontrol for an hour.
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Exit code 75 (EX_TEMPFAIL, delinea's "retry me") requeues a batch job by itself; without this
# line experiment.sbatch requeues its task with scontrol. The requeued job waits Slurm's requeue
# delay (about two minutes) before it can start again.
RequeueExit=75
# A failed afterok dependency cancels the dependent job (the gather step) instead of leaving it
# pending forever.
DependencyParameters=kill_invalid_depend
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 $node_line State=UNKNOWN
# OverSubscribe=FORCE:4: up to four jobs on one core, so a 3-shard array of one-CPU tasks runs
# all at once even on $cpus CPUs (a real cluster would give each its own core).
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_cluster() {
    stop_cluster # one left up by an earlier --keep run, or killed half-way
    rm -rf "$sdir/state" "$sdir/spool"
    mkdir -p "$sdir/state" "$sdir/spool" "$sdir/log"
    : >"$sdir/log/slurmctld.log"
    : >"$sdir/log/slurmd.log"
    write_conf
    slurmctld -f "$SLURM_CONF" || { print_daemon_logs; die "slurmctld did not start"; }
    slurmd -f "$SLURM_CONF" || { print_daemon_logs; die "slurmd did not start"; }
    local state=""
    for _ in $(seq 1 120); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
        [ "$state" = idle ] && return 0
        sleep 0.5
    done
    echo "----- sinfo" >&2
    sinfo -N -l >&2 || true
    sinfo -R >&2 || true
    print_daemon_logs
    die "the node is not idle after 60 s (state: ${state:-none})"
}

# ---------------------------------------------------------------- jobs

# "<task or job id> <state> <exit code> <restarts> <reason>" for every record of job $1
job_records() {
    { scontrol show job -o "$1" 2>/dev/null || true; } | awk '{
        id = ""; task = ""; st = ""; ec = ""; rs = "0"; re = ""
        for (i = 1; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == "JobId") id = kv[2]
            else if (kv[1] == "ArrayTaskId") task = kv[2]
            else if (kv[1] == "JobState") st = kv[2]
            else if (kv[1] == "ExitCode") ec = kv[2]
            else if (kv[1] == "Restarts") rs = kv[2]
            else if (kv[1] == "Reason") re = kv[2]
        }
        print (task != "" ? task : id), st, ec, rs, re
    }' | sort -n
}

terminal() {
    case $1 in
        COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) return 0 ;;
        *) return 1 ;;
    esac
}

# Wait until every record of the jobs given is finished (or $2 seconds pass); print changes.
wait_jobs() {
    local timeout=$1 start=$SECONDS last="" now id all_done rec
    shift
    while :; do
        now=""
        all_done=1
        for id in "$@"; do
            rec=$(job_records "$id")
            [ -n "$rec" ] || { all_done=0; rec="? (no record)"; }
            now+="job $id: $(awk '{ printf "%s%s=%s%s%s", (NR > 1 ? ", " : ""), $1, $2,
                ($4 > 0 ? "(restarts " $4 ")" : ""), ($2 == "PENDING" ? "(" $5 ")" : "") }' <<<"$rec"); "
            while read -r _ st _; do
                terminal "$st" || all_done=0
            done <<<"$rec"
        done
        if [ "$now" != "$last" ]; then
            say "[$((SECONDS - start))s] $now"
            last=$now
        fi
        [ "$all_done" = 1 ] && return 0
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            say "jobs still not finished after $timeout s"
            return 1
        fi
        sleep 1
    done
}

# A dummy array of 3 one-CPU tasks: each leaves a mark and waits (up to 60 s) until it sees all
# three, so it passes only if the three run at the same time, as the shards have to.
smoke_test() {
    local logs=$1 id t
    mkdir -p "$logs/smoke"
    # shellcheck disable=SC2016  # expanded in the job
    id=$(sbatch --parsable --job-name=smoke --array=0-2 --cpus-per-task=1 --mem=64M --time=5 \
        --output="$logs/smoke-%A_%a.log" \
        --wrap 'echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT on $(hostname -s)"
                touch "'"$logs"'/smoke/$SLURM_ARRAY_JOB_ID.$SLURM_ARRAY_TASK_ID"
                for i in $(seq 1 120); do
                    [ "$(ls "'"$logs"'"/smoke/$SLURM_ARRAY_JOB_ID.* | wc -l)" -ge 3 ] && { echo "saw all 3"; exit 0; }
                    sleep 0.5
                done
                echo "the other tasks did not show up within 60 s"; exit 1')
    id=${id%%;*}
    wait_jobs 180 "$id" || { print_daemon_logs; die "the dummy array job did not finish"; }
    while read -r t st ec _; do
        if [ "$st" != COMPLETED ] || [ "$ec" != 0:0 ]; then
            cat "$logs"/smoke-"$id"_*.log >&2 || true
            die "dummy array $id, task $t: $st, exit code $ec (the 3 tasks did not run side by side?)"
        fi
    done < <(job_records "$id")
    say "dummy array $id: 3 tasks ran side by side"
}

# ---------------------------------------------------------------- main

work=""
passed=0
cleanup() {
    local rc=$?
    set +e
    if [ "$keep" = 1 ]; then
        say "--keep: cluster left up (export SLURM_CONF=$SLURM_CONF; sinfo; squeue)," \
            "stop it with: bash $0 --stop"
        [ -n "$work" ] && say "work folder kept: $work"
    else
        stop_cluster
        stop_munge_if_ours
        if [ -n "$work" ]; then
            if [ "$passed" = 1 ]; then rm -rf "$work"; else say "work folder kept for a look: $work"; fi
        fi
    fi
    exit "$rc"
}

mkdir -p "$sdir"
install_packages
trap cleanup EXIT
trap 'exit 130' INT TERM
start_munge
start_cluster
version=$(sinfo -V | awk '{ print $2 }')
t_cluster=$((SECONDS - t0))
say "Slurm $version up in ${t_cluster}s: $(sinfo -h -N -o '%N %T, %c CPUs, %m MB')"

mkdir -p "$SLURM_TEST_WORK"
work=$(mktemp -d "$SLURM_TEST_WORK/delinea-slurm-test.XXXXXX")
chmod 755 "$work"
cd "$work"
smoke_test "$work/logs"
if [ "$mode" = cluster ]; then
    passed=1
    say "PASS: cluster only (Slurm $version), $((SECONDS - t0))s"
    exit 0
fi

[ -x "$DELINEA" ] || die "no delinea binary at $DELINEA (build it, or set DELINEA)"

t=$SECONDS
"$DELINEA" synth --out "$work/cohort" --seed 3 --centres 3 --cases-per-centre 5 \
    --multi-rater-cases 5 --raters 2 --size 32,32,8 --quiet
if [ -n "${SLURM_TEST_CONFIG:-}" ]; then
    cp "$SLURM_TEST_CONFIG" "$work/config.json"
else
    cat >"$work/config.json" <<'EOF'
{"source": {"iterations": 10, "batch": 4, "validate_every": 5, "tumour_fraction": 0.5, "preprocessing": {"slice_size": 32}, "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}}, "adaptation": {"iterations": 3, "batch": 4}, "mc_samples": 2, "references": {"k": 5}, "seed": 1}
EOF
fi
t_synth=$((SECONDS - t))

# The experiment, as environment variables of examples/slurm/experiment.sbatch.
export DELINEA
export MANIFEST=$work/cohort/manifest.json
export SOURCE=C1 TARGETS=C2,R2 QUERIES=random,entropy,stdr ADAPTS=finetune+pseudo BUDGET=20%
export CONFIG=$work/config.json DEVICE=cpu THREADS=1 LOG_EVERY=0 WAIT=600

say "reference: delinea experiment in one process"
t=$SECONDS
ref_rc=0
"$DELINEA" experiment --manifest "$MANIFEST" --source "$SOURCE" --targets "$TARGETS" \
    --queries "$QUERIES" --adapts "$ADAPTS" --budget "$BUDGET" --config "$CONFIG" \
    --device "$DEVICE" --log-every "$LOG_EVERY" --threads "$THREADS" --jobs 1 \
    --out "$work/ref" >"$work/ref.log" 2>&1 || ref_rc=$?
t_ref=$((SECONDS - t))
if [ "$ref_rc" -ne 0 ]; then
    tail -n 40 "$work/ref.log" >&2
    die "the reference experiment exited $ref_rc"
fi
say "reference done in ${t_ref}s"

say "sharded: examples/slurm/submit.sh (array of 3, then gather)"
t=$SECONDS
submitted=$(OUT=$work/sharded SHARDS=3 LOG_DIR=$work/logs \
    bash "$root/examples/slurm/submit.sh" --cpus-per-task=1 --mem=512M --time=30)
echo "$submitted"
array=$(awk -F': ' '/^experiment array job:/ { split($2, a, " "); print a[1] }' <<<"$submitted")
gather=$(awk -F': ' '/^gather job:/ { split($2, a, " "); print a[1] }' <<<"$submitted")
[ -n "$array" ] && [ -n "$gather" ] || die "could not read the job ids from submit.sh"

jobs_ok=1
wait_jobs "$SLURM_TEST_TIMEOUT" "$array" "$gather" || jobs_ok=0
t_sharded=$((SECONDS - t))

for f in "$work"/logs/experiment-"$array"_*.log "$work"/logs/gather-"$gather".log; do
    echo "----- tail of ${f#"$work"/}"
    if [ -f "$f" ]; then tail -n 12 "$f"; else echo "(no log)"; fi
done
[ "$jobs_ok" = 1 ] || die "the jobs did not finish within $SLURM_TEST_TIMEOUT s"
bad=0
while read -r id st ec rs _; do
    if [ "$st" != COMPLETED ] || [ "$ec" != 0:0 ]; then
        echo "slurm: array task $id: $st, exit code $ec" >&2
        bad=1
    fi
    [ "$rs" -gt 0 ] && say "note: array task $id was requeued $rs time(s)"
done < <(job_records "$array")
gst=""; gec=""
read -r _ gst gec _ < <(job_records "$gather") || true
[ "$gst" = COMPLETED ] && [ "$gec" = 0:0 ] || { echo "slurm: gather job: $gst, exit code $gec" >&2; bad=1; }
[ "$bad" = 0 ] || die "some job did not succeed (logs above, all in $work/logs)"

# Same results, sharded or not: each folder's own path replaced by a placeholder.
mkdir -p "$work/compare"
differ=0
for f in cases.csv table.md table.csv summary.md; do
    for side in ref sharded; do
        [ -f "$work/$side/$f" ] || die "$side/$f is missing"
        sed "s#$work/$side#<OUT>#g" "$work/$side/$f" >"$work/compare/$side.$f"
    done
    if ! diff -u --label "ref/$f" --label "sharded/$f" "$work/compare/ref.$f" "$work/compare/sharded.$f"; then
        differ=1
    fi
done
for f in results.json report.html; do
    [ -s "$work/sharded/$f" ] || die "sharded/$f is missing"
done
[ "$differ" = 0 ] || die "the sharded experiment's outputs differ from the single-process run's (diff above)"

# Deeper: every model's weights, query selection, adaptation plan and prediction, and
# results.json, byte for byte (the JSON with the paths replaced). Not compared: timings
# (done.json, training-log.json, model-card.json, report.html carry seconds and dates).
deep() {
    (cd "$work/$1" && find . -type f \( -name model.mpk -o -name selection.json -o -name adapt-plan.json \
        -o -name references.json -o -name pool.json -o -name '*.nii.gz' -o -name results.json \) | sort)
}
deep ref >"$work/compare/ref.files"
deep sharded >"$work/compare/sharded.files"
diff -u --label "ref files" --label "sharded files" "$work/compare/ref.files" "$work/compare/sharded.files" \
    || die "the sharded experiment has other model, selection or prediction files than the reference (diff above)"
mismatched=()
while read -r f; do
    case $f in
        *.json) cmp -s <(sed "s#$work/ref#<OUT>#g" "$work/ref/$f") <(sed "s#$work/sharded#<OUT>#g" "$work/sharded/$f") ;;
        *) cmp -s "$work/ref/$f" "$work/sharded/$f" ;;
    esac || mismatched+=("${f#./}")
done <"$work/compare/ref.files"
if [ "${#mismatched[@]}" -gt 0 ]; then
    printf '  differs: %s\n' "${mismatched[@]}" >&2
    die "${#mismatched[@]} model, selection or prediction files differ between sharded/ and ref/"
fi
n_models=$(grep -c 'model\.mpk$' "$work/compare/ref.files" || true)
n_preds=$(grep -c '\.nii\.gz$' "$work/compare/ref.files" || true)
n_sel=$(grep -c 'selection\.json$' "$work/compare/ref.files" || true)

passed=1
cases=$(($(wc -l <"$work/ref/cases.csv") - 1))
say "PASS: 3 Slurm array shards + gather (Slurm $version) = the single-process experiment" \
    "(cases.csv with $cases rows, table.md, table.csv, summary.md, results.json identical, and" \
    "$n_models models, $n_sel selections, $n_preds predictions byte for byte);" \
    "cluster ${t_cluster}s, cohort ${t_synth}s, reference ${t_ref}s, sharded ${t_sharded}s" \
    "(submit to gather done), total $((SECONDS - t0))s"
