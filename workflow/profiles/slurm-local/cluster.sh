#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for running the workflow through the SLURM profile without a real cluster.
#
#   workflow/profiles/slurm-local/cluster.sh start [DIR]   # writes DIR/env (source it), waits until sbatch works
#   workflow/profiles/slurm-local/cluster.sh stop  [DIR]   # stops the daemons it started
#
# Needs root and Debian's `slurm-wlm` + `munge` (apt-get install -y slurm-wlm munge). Everything lives in DIR (default
# /tmp/slurm-local): a fresh munge key and socket, slurm.conf, state, logs and pid files. The one file outside DIR is
# a link /etc/slurm/slurm.conf -> DIR/slurm.conf, made only where no slurm.conf exists and removed by `stop`: the
# SLURM executor plugin starts each job's command with srun and clears SLURM_CONF first, so srun inside a job reads
# the default path. One node (127.0.0.1, every CPU of the machine) in one partition `cpu`; the daemons
# contact 127.0.0.1 only (they listen on every interface, SLURM has no bind setting; munge authenticates every
# message with the fresh key). Process tracking by linuxproc and no task plugin: no cgroups needed, so it also starts in
# containers. Jobs inherit the submitting shell's environment (sbatch's default), so the project's venv is on PATH.
# Finished jobs stay visible to squeue for MinJobAge seconds and are logged one line each to DIR/jobs.log.
set -euo pipefail

action=${1:-}
dir=${2:-${SLURM_LOCAL_DIR:-/tmp/slurm-local}}
ctld_port=${SLURM_LOCAL_CTLD_PORT:-16817}
slurmd_port=${SLURM_LOCAL_SLURMD_PORT:-16818}
system_conf=/etc/slurm/slurm.conf

die() { echo "cluster.sh: $*" >&2; exit 1; }

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        if [[ -f "$dir/$name.pid" ]]; then
            pid=$(cat "$dir/$name.pid")
            if kill -0 "$pid" 2>/dev/null; then
                kill "$pid"
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
                kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            fi
            rm -f "$dir/$name.pid"
        fi
    done
    if [[ -L $system_conf && $(readlink "$system_conf") == "$dir/slurm.conf" ]]; then
        rm -f "$system_conf"
    fi
}

start() {
    [[ $(id -u) == 0 ]] || die "must run as root (slurmd starts jobs as the submitting user)"
    local bin
    for bin in munged mungekey slurmctld slurmd sbatch squeue sinfo; do
        command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] \
            || die "'$bin' not found: install Debian's packages with 'apt-get install -y slurm-wlm munge'"
    done
    export PATH="/usr/sbin:$PATH"
    stop  # a previous cluster in the same folder
    mkdir -p "$dir/state" "$dir/spool"
    chmod 700 "$dir"
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

    rm -f "$dir/munge.key"
    mungekey --create --keyfile "$dir/munge.key" >/dev/null 2>&1 \
        || dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge.key"
    munged --force --socket "$dir/munge.socket" --key-file "$dir/munge.key" --pid-file "$dir/munged.pid" \
        --log-file "$dir/munged.log" --seed-file "$dir/munged.seed"

    cat > "$dir/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobs.log
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
NodeName=local1 NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=local1 Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -e $system_conf || -L $system_conf ]]; then
        [[ -L $system_conf && $(readlink "$system_conf") == "$dir/slurm.conf" ]] \
            || die "$system_conf exists (another SLURM set-up); this script does not replace it"
    else
        mkdir -p "$(dirname "$system_conf")"
        ln -s "$dir/slurm.conf" "$system_conf"
    fi
    export SLURM_CONF="$dir/slurm.conf"
    printf 'export SLURM_CONF=%q\nexport PATH=/usr/sbin:"$PATH"\n' "$dir/slurm.conf" > "$dir/env"
    slurmctld -f "$dir/slurm.conf" -i
    slurmd -f "$dir/slurm.conf" -N local1

    # ready when the node is idle and a job runs to the end
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null || true)
        [[ $state == idle* ]] && break
        sleep 1
    done
    [[ $state == idle* ]] || die "node not idle after 60 s (state '$state'); see $dir/slurmctld.log, $dir/slurmd.log"
    local job
    job=$(sbatch --parsable -p cpu -n 1 -t 1 -o /dev/null --wrap true) || die "sbatch failed; see $dir/slurmctld.log"
    for _ in $(seq 60); do
        grep -q "JobId=$job .*JobState=COMPLETED" "$dir/jobs.log" 2>/dev/null && break
        sleep 1
    done
    grep -q "JobId=$job .*JobState=COMPLETED" "$dir/jobs.log" 2>/dev/null \
        || die "test job $job did not complete in 60 s; see $dir/slurmd.log"
    echo "SLURM cluster up in $dir (source $dir/env)"
}

case $action in
    start) start ;;
    stop) stop; echo "SLURM cluster in $dir stopped" ;;
    *) die "usage: $0 start|stop [DIR]" ;;
esac
