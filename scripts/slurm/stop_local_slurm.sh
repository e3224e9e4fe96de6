#!/usr/bin/env bash
# Stop the local test cluster that start_local_slurm.sh brought up: only the daemons that script
# started, found by the PIDs it recorded (a PID is trusted only while its process still has the
# recorded name and start time). A munged or SLURM daemon started by anybody else is left alone,
# and so are packages and the base folder (logs stay there to read). The config files the start
# script wrote (/etc/slurm/{slurm,gres}.conf, recognised by its marker line) are removed: with a
# config naming a controller that no longer runs, every SLURM client command (and the Snakemake
# SLURM plugin, which runs `scontrol show config` when it loads) waits ~10 s for it to answer.
#
# Settings (environment): SELFPANOPTIC_SLURM_BASE, as for start_local_slurm.sh
#                         (default ${TMPDIR:-/tmp}/selfpanoptic-slurm)
set -uo pipefail

BASE=${SELFPANOPTIC_SLURM_BASE:-${TMPDIR:-/tmp}/selfpanoptic-slurm}
RECORDS=$BASE/run/daemons

MARKER="# Written by selfpanoptic scripts/slurm/start_local_slurm.sh"

say() { echo "[stop_local_slurm] $*"; }

remove_our_configs() {  # only files whose first line is the start script's marker
    local file
    for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        if [ -f "$file" ] && head -n 1 "$file" | grep -qxF "$MARKER"; then
            rm -f "$file" && say "removed $file"
        fi
    done
}

if [ ! -s "$RECORDS" ]; then
    say "no daemons recorded in $RECORDS: nothing to stop"
    [ "$(id -u)" -eq 0 ] && remove_our_configs
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "[stop_local_slurm] ERROR: must run as root to stop the daemons" >&2; exit 1; }

proc_starttime() {
    [ -r "/proc/$1/stat" ] && sed -E 's/^[0-9]+ \([^)]*\) //' "/proc/$1/stat" | cut -d' ' -f20
}
recorded_pid() {  # the recorded PID of daemon NAME if that very process still runs, else nothing
    local pid start
    read -r pid start < <(awk -v n="$1" '$1 == n {p = $2; s = $3} END {print p, s}' "$RECORDS")
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] \
        && [ "$(proc_starttime "$pid")" = "$start" ]; then
        echo "$pid"
    fi
}

# Jobs still on our cluster would leave their slurmstepd processes behind: cancel them first.
if [ -n "$(recorded_pid slurmctld)" ]; then
    jobs=$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %A 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs still on the cluster: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 30); do
            [ -z "$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

status=0
for name in slurmd slurmctld munged; do  # the reverse of the start order
    pid=$(recorded_pid "$name")
    if [ -z "$pid" ]; then
        grep -q "^$name " "$RECORDS" && say "$name: recorded process is gone already"
        continue
    fi
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 15 s: sending SIGKILL"
        kill -9 "$pid" 2>/dev/null
        sleep 0.5
        kill -0 "$pid" 2>/dev/null && { say "could not stop $name (pid $pid)"; status=1; }
    fi
done
if [ "$status" -eq 0 ]; then
    rm -f "$RECORDS"
    remove_our_configs
    say "stopped; logs stay in $BASE/log"
fi
exit "$status"
