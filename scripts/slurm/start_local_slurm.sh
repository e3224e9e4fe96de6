#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on localhost to test the workflow's SLURM profile
# (profiles/slurm). For Debian/Ubuntu machines without systemd, run as root.
#
#   scripts/slurm/start_local_slurm.sh     # start (or check) the cluster
#   scripts/slurm/stop_local_slurm.sh      # stop what this script started
#
# What it does, every step skipped when already done (safe to run again):
#   1. apt-get installs munge, slurmctld, slurmd and slurm-client if they are missing;
#   2. starts munged, unless a working munged already answers;
#   3. writes /etc/slurm/slurm.conf and gres.conf: one node (this machine, as `slurmd -C` sees it),
#      one default partition, fake GPUs (gres "gpu", type "fake") backed by symlinks to /dev/null,
#      DefMemPerCPU so that jobs share the node, MinJobAge so that finished jobs stay visible to
#      squeue/scontrol (no accounting database: sacct does not work on this cluster);
#   4. starts slurmctld and slurmd (restarts the ones it started when the config changed);
#   5. waits until the node is idle.
# The PIDs of the daemons it started go to $BASE/run/daemons (name, pid, start time);
# stop_local_slurm.sh stops exactly those and nothing else.
#
# Settings (environment):
#   SELFPANOPTIC_SLURM_BASE       state, logs, PID records, fake GPU devices
#                                 (default ${TMPDIR:-/tmp}/selfpanoptic-slurm)
#   SELFPANOPTIC_SLURM_PARTITION  name of the partition (default: local)
#   SELFPANOPTIC_SLURM_GPUS       number of fake GPUs on the node (default: 2, 0 = none)
#   SELFPANOPTIC_SLURM_CPUS       CPUs the node offers (default: the machine's own count). More
#                                 than the machine has lets more small jobs share it, which pays
#                                 when jobs are mostly single-threaded start-up (the test suite).
set -euo pipefail

BASE=${SELFPANOPTIC_SLURM_BASE:-${TMPDIR:-/tmp}/selfpanoptic-slurm}
PARTITION=${SELFPANOPTIC_SLURM_PARTITION:-local}
GPUS=${SELFPANOPTIC_SLURM_GPUS:-2}
CPUS=${SELFPANOPTIC_SLURM_CPUS:-}
MIN_JOB_AGE=900
MARKER="# Written by selfpanoptic scripts/slurm/start_local_slurm.sh"
PACKAGES=(munge slurmctld slurmd slurm-client)
RECORDS=$BASE/run/daemons
STARTED_AT=$(date +%s)

say() { echo "[start_local_slurm] $*"; }
die() { echo "[start_local_slurm] ERROR: $*" >&2; exit 1; }

# --- the PID records: one line "name pid starttime" per daemon this script started -------------
proc_starttime() {  # field 22 of /proc/PID/stat; the command name (field 2) holds no spaces here
    [ -r "/proc/$1/stat" ] && sed -E 's/^[0-9]+ \([^)]*\) //' "/proc/$1/stat" | cut -d' ' -f20
}
recorded_pid() {  # the recorded PID of daemon NAME if that very process still runs, else nothing
    local name=$1 pid start
    [ -f "$RECORDS" ] || return 0
    read -r pid start < <(awk -v n="$name" '$1 == n {p = $2; s = $3} END {print p, s}' "$RECORDS")
    [ -n "$pid" ] || return 0
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && [ "$(proc_starttime "$pid")" = "$start" ]; then
        echo "$pid"
    fi
}
record() {  # record NAME PID
    local name=$1 pid=$2
    mkdir -p "$(dirname "$RECORDS")"
    { [ -f "$RECORDS" ] && awk -v n="$name" '$1 != n' "$RECORDS"; echo "$name $pid $(proc_starttime "$pid")"; } \
        > "$RECORDS.new"
    mv "$RECORDS.new" "$RECORDS"
}
wait_until() {  # wait_until SECONDS COMMAND...: poll every 0.5 s
    local tries=$(($1 * 2)); shift
    while [ "$tries" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5; tries=$((tries - 1))
    done
    return 1
}
stop_pid() {  # stop_pid NAME PID: SIGTERM, then SIGKILL after 15 s
    kill "$2" 2>/dev/null || true
    wait_until 15 bash -c "! kill -0 $2" || kill -9 "$2" 2>/dev/null || true
}

# --- 0. preconditions --------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root: it installs packages with apt-get and starts system daemons (try: sudo $0)"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null \
    || die "needs a Debian-like system with apt-get and dpkg-query"
case "$GPUS" in ''|*[!0-9]*) die "SELFPANOPTIC_SLURM_GPUS must be a number, got '$GPUS'" ;; esac
case "$CPUS" in *[!0-9]*|0) die "SELFPANOPTIC_SLURM_CPUS must be a positive number, got '$CPUS'" ;; esac
mkdir -p "$BASE"/{log,run,state/slurmctld,state/slurmd,fake-gpus}
say "base folder: $BASE"

# --- 1. packages -------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} with apt-get (log: $BASE/log/apt.log)"
    # Packages must not start their services: this script starts (and records) the daemons itself.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # removed again however this script ends
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    fi
    status=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    } > "$BASE/log/apt.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 15 "$BASE/log/apt.log" >&2
        die "apt-get could not install ${missing[*]} (exit $status); full log: $BASE/log/apt.log"
    fi
else
    say "packages present: ${PACKAGES[*]}"
fi

# --- 2. munge ----------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
if pid=$(recorded_pid munged) && [ -n "$pid" ]; then
    say "munged already running (pid $pid, started by this script)"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "using the munged that already runs on this machine (not started here, will not be stopped)"
else
    say "starting munged"
    install -d -o munge -g munge -m 0755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged </dev/null >"$BASE/log/munged.out" 2>&1 \
        || die "munged did not start: $(cat "$BASE/log/munged.out")"
    wait_until 10 test -s /run/munge/munged.pid || die "munged wrote no PID file; see $BASE/log/munged.out"
    record munged "$(cat /run/munge/munged.pid)"
    wait_until 10 bash -c 'munge -n | unmunge' || die "munge does not answer; see /var/log/munge/munged.log"
    say "munged started (pid $(cat /run/munge/munged.pid))"
fi

# --- 3. configuration --------------------------------------------------------------------------
NODE=$(hostname -s)
HARDWARE=$(slurmd -C | head -n 1)  # NodeName=... CPUs=... ... RealMemory=...
CPU_LAYOUT=$(echo "$HARDWARE" | sed -E 's/^NodeName=[^ ]+ //; s/ *RealMemory=[0-9]+//')
MEMORY=$(echo "$HARDWARE" | sed -E 's/.*RealMemory=([0-9]+).*/\1/')
MEMORY=$((MEMORY * 9 / 10))  # leave some memory to the system and the daemons
OVERRIDES=""
if [ -n "$CPUS" ]; then  # a node larger than the machine: slurmd must not drain it for that
    CPU_LAYOUT="CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1"
    OVERRIDES=$'\n# The node offers more CPUs than the machine has (SELFPANOPTIC_SLURM_CPUS).\nSlurmdParameters=config_overrides'
fi
GRES_NODE=""; GRES_CONF="$MARKER"
if [ "$GPUS" -gt 0 ]; then
    devices=()
    for i in $(seq 0 $((GPUS - 1))); do
        ln -sfn /dev/null "$BASE/fake-gpus/nvidia$i"; devices+=("$BASE/fake-gpus/nvidia$i")
    done
    GRES_NODE=" Gres=gpu:fake:$GPUS"
    GRES_CONF="$GRES_CONF"$'\n'"NodeName=$NODE Name=gpu Type=fake File=$(IFS=,; echo "${devices[*]}")"
fi
SLURM_CONF_TEXT="$MARKER
# A one-node test cluster; base folder $BASE.
ClusterName=selfpanoptic
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$BASE/state/slurmctld
SlurmdSpoolDir=$BASE/state/slurmd
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
# No cgroups needed: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory gets the whole node and jobs run one at a time.
DefMemPerCPU=1000
# Finished jobs stay visible to squeue/scontrol this long (s): the workflow's status checks use squeue.
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
KillWait=5
InactiveLimit=0$OVERRIDES
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $CPU_LAYOUT RealMemory=$MEMORY$GRES_NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"

config_changed=0
write_config() {  # write_config FILE TEXT: (re)write FILE when its text differs
    local file=$1 text=$2
    if [ -s "$file" ] && ! head -n 1 "$file" | grep -qxF "$MARKER"; then
        die "$file exists and was not written by this script; move it away to use the local test cluster"
    fi
    if [ "$(cat "$file" 2>/dev/null)" != "$text" ]; then
        printf '%s\n' "$text" > "$file"; config_changed=1; say "wrote $file"
    fi
}
mkdir -p /etc/slurm
write_config /etc/slurm/slurm.conf "$SLURM_CONF_TEXT"
write_config /etc/slurm/gres.conf "$GRES_CONF"
[ "$config_changed" = 1 ] || say "configuration unchanged"

# --- 4. slurmctld and slurmd -------------------------------------------------------------------
for name in slurmd slurmctld; do  # a config change restarts the daemons this script started
    pid=$(recorded_pid $name)
    if [ -n "$pid" ] && [ "$config_changed" = 1 ]; then
        say "configuration changed: stopping $name (pid $pid) to restart it"; stop_pid $name "$pid"
    fi
done
for name in slurmctld slurmd; do
    pid=$(recorded_pid $name)
    if [ -n "$pid" ]; then say "$name already running (pid $pid, started by this script)"; continue; fi
    if other=$(pgrep -x $name); then
        die "a $name not started by this script is running (pid $(echo $other)); stop it first"
    fi
    say "starting $name"
    rm -f "$BASE/run/$name.pid"
    $name </dev/null >"$BASE/log/$name.out" 2>&1 \
        || die "$name did not start: $(cat "$BASE/log/$name.out"); see $BASE/log/$name.log"
    wait_until 15 test -s "$BASE/run/$name.pid" || die "$name wrote no PID file; see $BASE/log/$name.log"
    record $name "$(cat "$BASE/run/$name.pid")"
    if [ $name = slurmctld ]; then
        wait_until 30 bash -c 'scontrol ping | grep -q "is UP"' \
            || die "slurmctld does not answer; see $BASE/log/slurmctld.log"
    fi
    say "$name started (pid $(cat "$BASE/run/$name.pid"))"
done

# --- 5. wait for the node ----------------------------------------------------------------------
say "waiting for node $NODE to become idle"
state=""
for i in $(seq 1 60); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        *drain*|down*)  # left over from an earlier registration: the node is fine now
            [ "$i" -gt 3 ] && scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) die "node $NODE is '$state', not idle after 60 s; see $BASE/log/slurmctld.log and slurmd.log" ;;
esac
sinfo -o "%P %D %T %c %m %G"
say "cluster up in $(($(date +%s) - STARTED_AT)) s: partition '$PARTITION', node $NODE ($state), $(sinfo -h -N -n "$NODE" -o %c) CPUs, $GPUS fake GPU(s)"
