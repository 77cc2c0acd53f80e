#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for the sweep tests (tests/test_sweeps.py)
# and for trying `python -m experiment.Sweeps submit ... --executor slurm` without a cluster.
#
# As root: installs Debian's slurm-wlm and munge with apt-get if they are missing, writes a
# slurm.conf with this host as controller and only compute node (all its CPUs, 90 % of its
# memory, one partition "debug") into a temporary folder ($SLURM_HOME, default
# /tmp/slurm-single-node, which also holds state, spool and logs), links /etc/slurm/slurm.conf to
# it unless that file already exists (so that sbatch, squeue and scancel find it without
# SLURM_CONF), then starts munged, slurmctld and slurmd and waits until the node is idle.
#
# Idempotent: with the node already up (sinfo answers) it does nothing. Not for a real cluster.
set -euo pipefail

SLURM_HOME="${SLURM_HOME:-/tmp/slurm-single-node}"

node_up() {
    command -v sinfo >/dev/null 2>&1 && timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

if node_up; then
    echo "Slurm is already up: $(sinfo -h -o '%P %D %T' | head -1)"
    exit 0
fi

if [ "$(id -u)" != "0" ]; then
    echo "tools/start-slurm.sh must run as root (it installs packages and starts daemons)." >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "Installing slurm-wlm and munge with apt-get ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host="$(hostname -s)"
cpus="$(nproc)"
memory_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
mkdir -p "$SLURM_HOME"/{state,spool,log}

cat >"$SLURM_HOME/slurm.conf" <<EOF
ClusterName=single
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=30
SlurmctldPidFile=$SLURM_HOME/slurmctld.pid
SlurmdPidFile=$SLURM_HOME/slurmd.pid
StateSaveLocation=$SLURM_HOME/state
SlurmdSpoolDir=$SLURM_HOME/spool
SlurmctldLogFile=$SLURM_HOME/log/slurmctld.log
SlurmdLogFile=$SLURM_HOME/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p /etc/slurm
if [ ! -e /etc/slurm/slurm.conf ]; then
    ln -s "$SLURM_HOME/slurm.conf" /etc/slurm/slurm.conf
elif [ "$(readlink -f /etc/slurm/slurm.conf)" != "$(readlink -f "$SLURM_HOME/slurm.conf")" ]; then
    echo "Note: /etc/slurm/slurm.conf is not ours; using SLURM_CONF=$SLURM_HOME/slurm.conf" >&2
fi
export SLURM_CONF="$SLURM_HOME/slurm.conf"

# munge: a key, its folders owned by the munge user, then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --force >/dev/null
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -u munge -x munged >/dev/null 2>&1; then
    su -s /bin/sh munge -c munged
fi

# A previous cluster's daemons (e.g. from another SLURM_HOME) would hold the ports.
for pid_file in "$SLURM_HOME/slurmctld.pid" "$SLURM_HOME/slurmd.pid"; do
    if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        kill "$(cat "$pid_file")" && sleep 1
    fi
done
slurmctld -f "$SLURM_HOME/slurm.conf"
slurmd -f "$SLURM_HOME/slurm.conf"

for _ in $(seq 60); do
    if node_up; then
        echo "Slurm is up ($SLURM_HOME/slurm.conf): $(sinfo -h -o '%P %D %c CPUs %T' | head -1)"
        exit 0
    fi
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    sleep 1
done
echo "Slurm did not come up within 60 s; see $SLURM_HOME/log/slurmctld.log and slurmd.log:" >&2
tail -n 20 "$SLURM_HOME/log/slurmctld.log" "$SLURM_HOME/log/slurmd.log" >&2 || true
exit 1
