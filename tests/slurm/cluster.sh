#!/usr/bin/env bash
# A real single-node SLURM for the tests: Debian's slurm-wlm and munge, slurmdbd with a local MariaDB
# (the executor plugin reads job states from sacct, which needs accounting), and two fake GPUs.
#
#   tests/slurm/cluster.sh start    install what is missing (apt-get), start what is not running
#   tests/slurm/cluster.sh status   exit 0 when jobs can be submitted
#   tests/slurm/cluster.sh stop     cancel the cluster's jobs, stop the daemons this script started
#   tests/slurm/cluster.sh env      print the `export SLURM_CONF=...` a shell needs to use the cluster
#
# All state lives in $TARGETCODEC_SLURM_DIR (default /tmp/targetcodec-slurm), but for the link
# /run/slurm/conf (see STEP_CONF). Clients find the cluster through SLURM_CONF and the daemons listen on
# their own ports, so a SLURM configured in /etc/slurm is never touched (the script refuses to run there).
# Exit status 77: this machine cannot run the cluster (not root, no apt-get, packages not installable,
# another SLURM configured).
set -Eeuo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=${TARGETCODEC_SLURM_DIR:-/tmp/targetcodec-slurm}
ETC=$STATE/etc       # slurm.conf, slurmdbd.conf, gres.conf
RUN=$STATE/run       # pid files the daemons write
STARTED=$STATE/started  # NAME.pid for each daemon this script started (and so may stop)
LOG=$STATE/log
export SLURM_CONF=$ETC/slurm.conf
# The executor plugin's job steps drop every SLURM_* variable, SLURM_CONF included, before they call srun,
# which then looks in /etc/slurm and in slurmd's config cache /run/slurm/conf. This cluster uses the latter,
# a link to $ETC, so that nothing is written where a real installation keeps its configuration.
STEP_CONF=/run/slurm/conf
CLUSTER=targetcodec
ACCOUNT=testproj     # an account the tests submit with (SBATCH_ACCOUNT)
PARTITIONS="debug batch"   # debug is the default; the tests ask for batch to see that their choice is used
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819
DB_SOCKET=/run/mysqld/mysqld.sock
PACKAGES="slurm-wlm munge slurmdbd mariadb-server"
PROGRAMS="munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct sacctmgr"

say() { echo "cluster.sh: $*" >&2; }
cannot() { say "cannot run a SLURM cluster here: $*"; exit 77; }
fail() { say "$*"; exit 1; }
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR

# listed WORD COMMAND...: whether COMMAND prints WORD (no pipe into grep -q: pipefail would see SIGPIPE)
listed() {
    local word=$1 out; shift
    out=$("$@") && grep -qw -- "$word" <<<"$out"
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

install_packages() {
    local program missing=""
    for program in $PROGRAMS; do command -v "$program" >/dev/null || missing="$missing $program"; done
    [ -z "$missing" ] && return
    command -v apt-get >/dev/null || cannot "missing$missing and no apt-get to install $PACKAGES"
    say "installing $PACKAGES (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update only when the first try fails.
    apt-get install -y -q --no-install-recommends $PACKAGES >"$LOG/apt.log" 2>&1 \
        || { apt-get update -q >>"$LOG/apt.log" 2>&1 \
             && apt-get install -y -q --no-install-recommends $PACKAGES >>"$LOG/apt.log" 2>&1; } \
        || cannot "apt-get could not install $PACKAGES (see $LOG/apt.log)"
}

# record NAME PIDFILE: remember a daemon this script started, by the PID it wrote (NAME: its /proc/PID/comm)
record() {
    wait_for 30 test -s "$2" || fail "$1 did not start (no $2); see $LOG/"
    cp "$2" "$STARTED/$1.pid"
}

write_config() {
    local host cpus memory
    host=$(hostname -s)
    # Advertise more than the machine has (config_overrides) so that the profile's requests fit and
    # several jobs share the node; SLURM enforces neither here.
    cpus=$(( $(nproc) > 8 ? $(nproc) : 8 ))
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    memory=$(( memory > 64000 ? memory : 64000 ))
    mkdir -p "$STATE/gpus"
    ln -sf /dev/null "$STATE/gpus/gpu0"   # slurmd drops GPUs without device files
    ln -sf /dev/null "$STATE/gpus/gpu1"
    cat >"$ETC/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=600
DefMemPerCPU=2000
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$memory Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=batch Nodes=ALL MaxTime=INFINITE State=UP
CONF
    cat >"$ETC/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu File=$STATE/gpus/gpu[0-1]
CONF
    cat >"$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm-test-only
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a readable one
    if [ "$(readlink "$STEP_CONF" 2>/dev/null)" != "$ETC" ]; then
        mkdir -p "$(dirname "$STEP_CONF")"
        ln -s "$ETC" "$STEP_CONF"
    fi
}

check_machine() {
    [ "$(id -u)" = 0 ] || cannot "needs root (to install packages and run munged, MariaDB and SLURM as their users)"
    [ ! -e /etc/slurm/slurm.conf ] \
        || cannot "/etc/slurm/slurm.conf exists: job steps would use that cluster instead of this one"
    [ ! -e "$STEP_CONF" ] || [ "$(readlink "$STEP_CONF")" = "$ETC" ] \
        || cannot "$STEP_CONF exists: job steps would use that configuration instead of this one"
}

munge_ok() { munge -n | unmunge; }
start_munge() {
    munge_ok >/dev/null 2>&1 && return
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    record munged /run/munge/munged.pid
    wait_for 20 munge_ok || fail "munged does not answer"
}

db_ok() { mariadb-admin --socket="$DB_SOCKET" -u root ping; }
start_mariadb() {
    if ! db_ok >/dev/null 2>&1; then
        [ -d "$STATE/mysql/mysql" ] || mariadb-install-db --user=mysql --datadir="$STATE/mysql" --skip-test-db \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 \
            || fail "mariadb-install-db failed; see $LOG/mariadb-install.log"
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        rm -f /run/mysqld/targetcodec.pid
        # Unix socket only; setsid so that the server outlives this script's session.
        setsid mariadbd --user=mysql --datadir="$STATE/mysql" --socket="$DB_SOCKET" --skip-networking \
            --pid-file=/run/mysqld/targetcodec.pid --log-error="$LOG/mariadb.log" </dev/null >/dev/null 2>&1 &
        record mariadbd /run/mysqld/targetcodec.pid
        wait_for 60 db_ok || fail "MariaDB does not answer; see $LOG/mariadb.log"
    fi
    mariadb --socket="$DB_SOCKET" -u root -e "
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-test-only';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

dbd_ok() { sacctmgr -n list cluster format=cluster%40; }
start_slurmdbd() {
    dbd_ok >/dev/null 2>&1 && return
    rm -f "$RUN/slurmdbd.pid"
    slurmdbd
    record slurmdbd "$RUN/slurmdbd.pid"
    wait_for 60 dbd_ok || fail "slurmdbd does not answer; see $LOG/slurmdbd.log"
}

ctld_ok() { listed UP scontrol ping; }
start_slurmctld() {
    ctld_ok >/dev/null 2>&1 && return
    rm -f "$RUN/slurmctld.pid"
    slurmctld
    record slurmctld "$RUN/slurmctld.pid"
    wait_for 60 ctld_ok || fail "slurmctld does not answer; see $LOG/slurmctld.log"
}

node_state() { sinfo -h -N -o %t | head -n 1; }
node_ok() { case "$(node_state)" in idle*|mix*|alloc*) return 0 ;; *) return 1 ;; esac; }
start_slurmd() {
    if [ -s "$RUN/slurmd.pid" ] && kill -0 "$(cat "$RUN/slurmd.pid")" 2>/dev/null; then
        wait_for 30 node_ok && return
        fail "slurmd runs but the node is $(node_state): $(sinfo -h -N -o %E); see $LOG/slurmd.log"
    fi
    rm -f "$RUN/slurmd.pid"
    slurmd
    record slurmd "$RUN/slurmd.pid"
    wait_for 60 node_ok || fail "node is $(node_state) ($(sinfo -h -N -o %E)); see $LOG/slurmd.log"
}

add_accounts() {
    listed "$CLUSTER" sacctmgr -n list cluster format=cluster%40 || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    listed "$ACCOUNT" sacctmgr -n list account format=account%40 \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
    listed "$ACCOUNT" sacctmgr -n -s list user root format=account%40 \
        || sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
}

start() {
    check_machine
    mkdir -p "$ETC" "$RUN" "$STARTED" "$LOG" "$STATE/slurmctld" "$STATE/slurmd"
    install_packages
    write_config
    start_munge
    start_mariadb
    start_slurmdbd
    add_accounts          # before slurmctld, so that it finds its cluster registered
    start_slurmctld
    start_slurmd
    say "up: SLURM_CONF=$SLURM_CONF, partitions $PARTITIONS, account $ACCOUNT, 2 GPUs"
}

status() {
    [ -f "$SLURM_CONF" ] && command -v sinfo >/dev/null && munge_ok >/dev/null 2>&1 && dbd_ok >/dev/null 2>&1 \
        && ctld_ok && node_ok || { say "not running"; exit 1; }
}

gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*zombie' "/proc/$1/status"; }

# stop_daemons NAME...: TERM the daemons this script started (if their PIDs still run them), KILL after 30 s
stop_daemons() {
    local name pid pids=()
    for name in "$@"; do
        [ -f "$STARTED/$name.pid" ] || continue
        pid=$(cat "$STARTED/$name.pid")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            kill -TERM "$pid" && pids+=("$pid")
        fi
        rm -f "$STARTED/$name.pid"
    done
    for pid in "${pids[@]}"; do
        wait_for 30 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    done
}

stop() {
    if [ -f "$SLURM_CONF" ] && ctld_ok >/dev/null 2>&1; then
        scancel --quiet --partition="${PARTITIONS// /,}" || true   # every job of this cluster (SLURM_CONF), whoever submitted it
        wait_for 20 bash -c '[ -z "$(squeue -h)" ]' || say "jobs still listed after scancel"
    fi
    stop_daemons slurmd slurmctld slurmdbd
    stop_daemons mariadbd munged
    rm -f "$RUN"/*.pid   # SLURM leaves its pid files behind
    if [ "$(readlink "$STEP_CONF" 2>/dev/null)" = "$ETC" ]; then
        rm -f "$STEP_CONF"
        rmdir "$(dirname "$STEP_CONF")" 2>/dev/null || true   # made by start, unless something else uses it
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
