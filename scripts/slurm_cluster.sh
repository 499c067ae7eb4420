#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, to run and test the SLURM profile for real.
#
#   scripts/slurm_cluster.sh start  [STATE_DIR]   install slurm-wlm + munge if missing (apt-get, needs root),
#                                                 write the config, start munged, slurmctld, slurmd; wait for idle
#   scripts/slurm_cluster.sh stop   [STATE_DIR]   cancel its jobs, then stop exactly the daemons it started (by PID)
#   scripts/slurm_cluster.sh status [STATE_DIR]   daemons, PIDs and sinfo; exit 0 only if all run and the node is up
#   scripts/slurm_cluster.sh env    [STATE_DIR]   print `export SLURM_CONF=...` for the client commands
#
# STATE_DIR (default $UNPOISON_SLURM_DIR, else /tmp/unpoison-slurm) holds everything it writes: slurm.conf,
# gres.conf, the GPU placeholders (dev/), the munge key and socket, spool directories, logs, pid files and
# jobcomp.txt (one line per finished job with its partition, account, CPUs, memory and time limit; there is
# no slurmdbd, so `sacct` does not work).
# One thing lives outside it: the symlink /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf (made by `start`,
# removed by `stop`; `start` refuses to replace a slurm.conf that is not its own). It is needed because
# snakemake's SLURM job step drops SLURM_CONF from the environment of the `srun` it runs inside every job,
# so that srun only finds the default path. Client commands also take SLURM_CONF (see `env`).
#
# The node is this host (short hostname, address 127.0.0.1) with the CPUs and memory `slurmd -C` measures,
# in three partitions: `debug` (the Default), `batch` and `gpu` (to check that a chosen partition is used). No
# cgroups (proctrack/linuxproc, task/none); select/cons_tres with CR_CPU_Memory, so --cpus-per-task and --mem
# are allocated and recorded. The node also has $UNPOISON_SLURM_GPUS (default 2) GPUs of type `fake` that are
# only counts (--gpus=N and --gpus=fake:N both match them, as on a site with typed GPUs): a `gpu` GRES whose
# gres.conf File= names placeholder devices STATE_DIR/dev/gpu0, gpu1, ... (nodes like
# /dev/null: SLURM 22.05's slurmd drops a gpu GRES without File=, "Removing file-less GPU", and the node goes
# INVAL). Without cgroups nothing binds them: --gpus/--gres requests are scheduled and allocated, `scontrol
# show job -d` shows them (TresPerJob/TresPerNode, JOB_GRES; finished jobs stay there for MinJobAge, an hour),
# SLURM sets CUDA_VISIBLE_DEVICES in the job, and the job runs on the CPU since no CUDA device exists.
# Daemons run as root in the foreground of their own session (setsid); their PIDs go to STATE_DIR/pids/.
# `start` when already running checks that its configuration is the one `start` writes (else: stop, start)
# and waits for the node to be idle; `status` fails for such a stale cluster too.
# Ports: $UNPOISON_SLURM_PORT (slurmctld, default 6817) and the next one (slurmd).
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
ACTION=$1
DIR=$(realpath -m "${2:-${UNPOISON_SLURM_DIR:-/tmp/unpoison-slurm}}")
CONF=$DIR/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
PIDS=$DIR/pids
LOGS=$DIR/log
MUNGE_SOCKET=$DIR/munge/munge.socket
CTLD_PORT=${UNPOISON_SLURM_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1))
GPUS=${UNPOISON_SLURM_GPUS:-2}
DAEMONS=(munged slurmctld slurmd)  # start order; stopped in reverse
export SLURM_CONF=$CONF
export PATH=$PATH:/usr/sbin:/sbin  # munged, slurmctld, slurmd

say() { echo "slurm_cluster: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# PID recorded for daemon $1 if that process is alive and still runs that program (guards against PID reuse).
live_pid() {
    local f=$PIDS/$1 pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

all_running() {
    local d
    for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null || return 1; done
}

install_if_missing() {
    local missing=()
    for bin in munged slurmctld slurmd sbatch sinfo; do command -v "$bin" >/dev/null || missing+=("$bin"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "${missing[*]} not installed and not root: install them with 'apt-get install slurm-wlm munge'"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be absent on a fresh machine: update once if the first attempt fails.
    apt-get install -y -q --no-install-recommends slurm-wlm munge >"$LOGS/apt.log" 2>&1 ||
        { apt-get update -q >>"$LOGS/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$LOGS/apt.log" 2>&1; } ||
        { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install slurm-wlm munge failed (log: $LOGS/apt.log)"; }
}

# slurm.conf and gres.conf for this host into directory $1 (STATE_DIR, or a scratch one to compare with).
write_config() {
    local out=$1 host hw
    host=$(hostname -s)
    # e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    hw=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
    [[ $hw == *CPUs=*RealMemory=* ]] || die "unexpected 'slurmd -C' output: $hw"
    [[ $GPUS =~ ^[1-9][0-9]*$ ]] || die "UNPOISON_SLURM_GPUS=$GPUS: give a whole number of GPUs >= 1 (default 2)"
    # slurmd reads gres.conf from slurm.conf's directory
    cat >"$out/gres.conf" <<EOF
# Written by scripts/slurm_cluster.sh: $GPUS GPUs that are only counts. File= is required for a gpu GRES
# (without it slurmd drops the GPUs), so it names placeholder devices (/dev/null's); no cgroups bind them.
NodeName=$host Name=gpu Type=fake Count=$GPUS File=$DIR/dev/gpu[0-$((GPUS - 1))]
EOF
    cat >"$out/slurm.conf" <<EOF
# Written by scripts/slurm_cluster.sh: a single-node test cluster, all state under $DIR.
ClusterName=unpoison
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/spool/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# CPUs and memory are consumable: --cpus-per-task and --mem are allocated and recorded
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# GPUs that are only counts (gres.conf). Not AccountingStorageTRES=gres/gpu: slurmctld then requires slurmdbd
GresTypes=gpu
# no slurmdbd; finished jobs (CPUs, memory, time limit) are written here instead
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
# finished jobs stay visible to squeue (the plugin polls it) and to scontrol show job (the job's GPU request
# and allocation: TresPerJob/TresPerNode, JOB_GRES) for an hour
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 $hw Gres=gpu:fake:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=batch Nodes=$host MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
}

# STATE_DIR/dev/gpu<i>: character devices like /dev/null (1,3), or empty files where mknod is not allowed
# (slurmd then logs "is not a valid character or block device" but keeps the GPUs; jobs get them, only
# without CUDA_VISIBLE_DEVICES).
make_gpu_placeholders() {
    local i f
    mkdir -p "$DIR/dev"
    for ((i = 0; i < GPUS; i++)); do
        f=$DIR/dev/gpu$i
        [ -c "$f" ] && continue
        rm -f "$f"
        mknod -m 666 "$f" c 1 3 2>/dev/null || { say "mknod $f failed: using an empty file"; : >"$f"; }
    done
}

# A running cluster must have the configuration `start` writes today (e.g. the GPUs): else restart it.
config_is_current() {
    local fresh same=0
    fresh=$(mktemp -d)
    write_config "$fresh"
    cmp -s "$fresh/slurm.conf" "$CONF" && cmp -s "$fresh/gres.conf" "$DIR/gres.conf" || same=1
    rm -rf "$fresh"
    [ $same -eq 0 ] || die "the running cluster ($DIR) has another configuration than 'start' writes now" \
        "(e.g. of an older version of this script): run '$0 stop $DIR', then 'start'"
}

# /etc/slurm/slurm.conf -> $CONF (see the header); never replaces another configuration.
link_conf() {
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then return 0; fi
    if [ -L "$ETC_CONF" ] && [ ! -e "$ETC_CONF" ]; then
        rm -f "$ETC_CONF"  # dangling link, e.g. of an earlier cluster whose STATE_DIR was deleted
    elif [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
        die "$ETC_CONF exists and is not this cluster's ($(readlink -f "$ETC_CONF")): stop that cluster or move it"
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$CONF" "$ETC_CONF"
}

unlink_conf() {
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then rm -f "$ETC_CONF"; fi
}

# Run daemon $1 with arguments $2... in the foreground of a new session; record its PID.
launch() {
    local name=$1
    shift
    setsid "$name" "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
    echo $! >"$PIDS/$name"
    sleep 0.5
    live_pid "$name" >/dev/null || { tail -n 20 "$LOGS/$name.out" "$LOGS/$name.log" 2>/dev/null >&2 || true; die "$name exited at start"; }
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -1; }

wait_for_node() {
    local state="" i
    for i in $(seq 1 120); do
        state=$(node_state)
        case $state in idle | mixed | allocated | completing) say "node $state ($DIR)"; return 0 ;; esac
        sleep 0.5
    done
    tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
    die "node not idle after 60 s (sinfo state: '${state:-none}')"
}

start() {
    mkdir -p "$PIDS" "$LOGS" "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/munge"
    chmod 700 "$DIR/munge"
    install_if_missing
    if all_running; then
        say "already running"
        config_is_current
        link_conf
        wait_for_node
        return 0
    fi
    stop_daemons  # leftovers of a partial start
    [ "$(id -u)" -eq 0 ] || die "the daemons run as root here: run 'sudo $0 start'"
    write_config "$DIR"
    link_conf
    make_gpu_placeholders
    if [ ! -s "$DIR/munge/munge.key" ]; then
        head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
        chmod 400 "$DIR/munge/munge.key"
    fi
    rm -f "$MUNGE_SOCKET"
    launch munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$LOGS/munged.log" --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 1 40); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.25; done
    munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munge does not work (log: $LOGS/munged.log)"
    # -i: ignore state files of an earlier run in STATE_DIR that do not match this configuration. The node's
    # saved state goes: it may hold a DRAIN of an earlier configuration (slurm.conf describes the node anyway)
    rm -f "$DIR/spool/ctld/node_state" "$DIR/spool/ctld/node_state.old"
    launch slurmctld -D -i -f "$CONF"
    launch slurmd -D -f "$CONF"
    wait_for_node
    say "started: $(for d in "${DAEMONS[@]}"; do printf '%s=%s ' "$d" "$(cat "$PIDS/$d")"; done)"
    say "config: $CONF (linked from $ETC_CONF)"
}

# Stop the recorded daemons (reverse start order): TERM, then KILL after 15 s. Only recorded, live PIDs.
stop_daemons() {
    local i d pid
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        d=${DAEMONS[i]}
        if pid=$(live_pid "$d"); then
            kill -TERM "$pid" || die "cannot signal $d ($pid): run as root"
            for _ in $(seq 1 30); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
            if [ -d "/proc/$pid" ]; then say "$d ($pid) ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
            say "stopped $d ($pid)"
        fi
        rm -f "$PIDS/$d"
    done
}

stop() {
    if live_pid slurmctld >/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        [ -z "$jobs" ] || { say "cancelling jobs: $(echo $jobs)"; scancel $jobs 2>/dev/null || true; sleep 1; }
    fi
    stop_daemons
    unlink_conf
}

status() {
    local ok=0 d pid
    for d in "${DAEMONS[@]}"; do
        if pid=$(live_pid "$d"); then echo "$d running (pid $pid)"; else echo "$d not running"; ok=1; fi
    done
    if [ $ok -eq 0 ]; then
        sinfo -N -o '%N %P %T %c %m %G' || ok=1
        case $(node_state) in idle | mixed | allocated | completing) ;; *) ok=1 ;; esac
        (config_is_current) || ok=1
    fi
    echo "state: $DIR (export SLURM_CONF=$CONF)"
    return $ok
}

case $ACTION in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) usage ;;
esac
