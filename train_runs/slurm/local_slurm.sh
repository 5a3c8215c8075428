#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for dynsim's tests and for users trying dynsim.
#
#   bash train_runs/slurm/local_slurm.sh install   # apt-get the Debian packages (idempotent, root)
#   bash train_runs/slurm/local_slurm.sh up        # start munged, mariadbd, slurmdbd, slurmctld, slurmd
#   bash train_runs/slurm/local_slurm.sh status    # what runs; exit 0 when the node is usable, 3 otherwise
#   bash train_runs/slurm/local_slurm.sh down      # stop each daemon by its PID file
#
# No systemd is assumed: every daemon is started by hand with a PID file and stopped by that PID.
# All state (configs, PID files, logs, spool, the MariaDB datadir) lives in $DYNSIM_SLURM_DIR
# (default <repo>/.cache/slurm). The only things written outside it: the munge key
# (/etc/munge/munge.key, created if absent), munged's socket dir /run/munge, and a symlink
# /etc/slurm/slurm.conf -> $DYNSIM_SLURM_DIR/etc/slurm.conf so that plain `sinfo`/`sbatch`
# (and submitit) find the cluster without SLURM_CONF (only made when /etc/slurm/slurm.conf
# is absent or already such a symlink). See README.md beside this file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DIR="${DYNSIM_SLURM_DIR:-$REPO/.cache/slurm}"
CLUSTER="${DYNSIM_SLURM_CLUSTER:-dynsim}"
PARTITION="debug"
NODE="localhost"
CTLD_PORT="${DYNSIM_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${DYNSIM_SLURM_SLURMD_PORT:-6818}"
DBD_PORT="${DYNSIM_SLURM_DBD_PORT:-6819}"
DB_PORT="${DYNSIM_SLURM_DB_PORT:-3306}"
DB_USER="slurm"
DB_PASS="dynsim-local-slurm"        # local-only test cluster, bound to 127.0.0.1
DB_NAME="slurm_acct_db"
MUNGE_KEY="/etc/munge/munge.key"
MUNGE_SOCKDIR="/run/munge"
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

ETC="$DIR/etc"; RUN="$DIR/run"; LOG="$DIR/log"; SPOOL="$DIR/spool"
MUNGE_DIR="$DIR/munge"; DB_DIR="$DIR/mariadb"
DB_SOCK="$RUN/mariadbd.sock"
SLURM_CONF_FILE="$ETC/slurm.conf"
export SLURM_CONF="$SLURM_CONF_FILE"

log() { printf '[local_slurm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ helpers
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, munge user, daemons)"; }

# pid_alive PIDFILE COMM -> prints the pid and returns 0 when the pid in PIDFILE is a live
# process whose name is COMM (guards against a recycled pid after an unclean stop).
pid_alive() {
    local f="$1" comm="$2" pid
    [[ -s "$f" ]] || return 1
    pid="$(tr -dc '0-9' < "$f")"
    [[ -n "$pid" ]] || return 1
    [[ -r "/proc/$pid/comm" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]] || return 1
    # A zombie (dead, not yet reaped by its parent) is not running.
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    echo "$pid"
}

# wait_for SECONDS DESCRIPTION CMD... : retry CMD every 0.2 s until it succeeds
wait_for() {
    local secs="$1" what="$2"; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

# stop_pid PIDFILE COMM : SIGTERM, wait up to 30 s, then SIGKILL; removes the PID file.
stop_pid() {
    local f="$1" comm="$2" pid i
    if pid="$(pid_alive "$f" "$comm")"; then
        log "stopping $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            [[ -d "/proc/$pid" ]] || break
            # a zombie child counts as gone
            [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && break
            sleep 0.2
        done
        if [[ -d "/proc/$pid" ]] && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; then
            log "$comm (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -f "$f"
}

have_bins() {
    local b
    for b in munged mungekey sinfo sbatch sacct sacctmgr slurmctld slurmd slurmdbd mariadbd mariadb-install-db mariadb; do
        command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || return 1
    done
}

# ------------------------------------------------------------------ install
cmd_install() {
    need_root
    export PATH="$PATH:/usr/sbin:/sbin"
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)) && have_bins; then
        log "already installed: ${PACKAGES[*]}"
        return 0
    fi
    log "installing: ${missing[*]:-${PACKAGES[*]}}"
    export DEBIAN_FRONTEND=noninteractive
    # No systemd here: keep the packages' postinst scripts from trying to start services.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
    fi
    # `apt-get update` only when needed: the lists cannot provide a candidate, or the
    # download fails (stale lists naming versions the mirror no longer has).
    local updated=0 rc=0
    if ! apt-get install -y -q --no-install-recommends --simulate "${PACKAGES[@]}" >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -q && updated=1
    fi
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" || rc=$?
    if ((rc != 0 && updated == 0)); then
        log "install failed (rc=$rc); apt-get update and retry"
        apt-get update -q && rc=0
        ((rc == 0)) && { apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" || rc=$?; }
    fi
    ((made_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get install failed (rc=$rc)"
    have_bins || die "packages installed but binaries missing"
    log "installed: $(dpkg-query -W -f='${Package} ${Version}\n' slurm-wlm munge slurmdbd mariadb-server | tr '\n' ' ')"
}

# ------------------------------------------------------------------ config
write_configs() {
    mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL/slurmctld" "$SPOOL/slurmd"
    chmod 755 "$DIR" "$ETC" "$RUN" "$LOG" "$SPOOL"
    # What the hardware offers, as slurmd sees it; RealMemory must not exceed it.
    local detected cpus mem host
    detected="$(slurmd -C 2>/dev/null | head -1)" || true
    cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$detected")"
    mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")"
    [[ -n "$cpus" ]] || cpus="$(nproc)"
    [[ -n "$mem" ]] || mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
    mem=$(( mem * 95 / 100 ))     # a little under what is detected: never "low RealMemory"
    host="$(hostname -s)"

    cat > "$SLURM_CONF_FILE.tmp" <<EOF
# Generated by train_runs/slurm/local_slurm.sh up -- edits are overwritten at the next 'up'.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Accounting through slurmdbd: sacct then reports jobs that die before writing a result
# (FAILED), which submitit needs to stop waiting.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MailProg=/bin/true
# Fast turnaround on one small node. batch_sched_delay=0: start a batch job at once instead of
# up to 3 s later (the default), which took the median submit->start from ~1.5 s to ~0.9 s here.
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,batch_sched_delay=0
DefMemPerCPU=1024
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$SLURM_CONF_FILE.tmp" "$SLURM_CONF_FILE"
    chmod 644 "$SLURM_CONF_FILE"

    umask 077
    cat > "$ETC/slurmdbd.conf" <<EOF
# Generated by train_runs/slurm/local_slurm.sh up
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    umask 022
    chmod 600 "$ETC/slurmdbd.conf"

    # Let plain `sinfo`/`sbatch` (and submitit, and jobs) find this cluster without SLURM_CONF.
    mkdir -p /etc/slurm
    if [[ -L /etc/slurm/slurm.conf || ! -e /etc/slurm/slurm.conf ]]; then
        ln -sfn "$SLURM_CONF_FILE" /etc/slurm/slurm.conf
    elif [[ "$(readlink -f /etc/slurm/slurm.conf)" != "$SLURM_CONF_FILE" ]]; then
        log "WARNING: /etc/slurm/slurm.conf is a real file; export SLURM_CONF=$SLURM_CONF_FILE to use this cluster"
    fi
}

# ------------------------------------------------------------------ daemons
start_munged() {
    if pid_alive "$MUNGE_DIR/munged.pid" munged >/dev/null; then return 0; fi
    id munge >/dev/null 2>&1 || die "no 'munge' user: run '$0 install' first"
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating munge key $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY"
        elif command -v create-munge-key >/dev/null 2>&1; then
            create-munge-key -f
        else
            dd if=/dev/urandom bs=1 count=1024 of="$MUNGE_KEY" status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY" "$(dirname "$MUNGE_KEY")"
    chmod 700 "$(dirname "$MUNGE_KEY")"; chmod 400 "$MUNGE_KEY"
    install -d -o munge -g munge -m 755 "$MUNGE_SOCKDIR"
    runuser -u munge -- test -x "$DIR" \
        || die "the munge user cannot reach $DIR (a parent directory is not world-executable, e.g. /root): pick another DYNSIM_SLURM_DIR"
    install -d -o munge -g munge -m 700 "$MUNGE_DIR"
    rm -f "$MUNGE_DIR/munged.pid"
    log "starting munged"
    runuser -u munge -- munged \
        --key-file="$MUNGE_KEY" \
        --socket="$MUNGE_SOCKDIR/munge.socket.2" \
        --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged failed to start; see $MUNGE_DIR/munged.log"
    wait_for 15 "munge round trip" bash -c 'munge -n | unmunge' \
        || die "munge does not work; see $MUNGE_DIR/munged.log"
}

db_client() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot "$@"; }

start_mariadbd() {
    if pid_alive "$RUN/mariadbd.pid" mariadbd >/dev/null; then return 0; fi
    mkdir -p "$DB_DIR"
    local fresh=0
    if [[ ! -d "$DB_DIR/data/mysql" ]]; then
        log "initialising MariaDB datadir $DB_DIR/data"
        rm -rf "$DB_DIR/data"
        mariadb-install-db --no-defaults --datadir="$DB_DIR/data" --user=root \
            --auth-root-authentication-method=socket --skip-test-db \
            > "$LOG/mariadb-install-db.log" 2>&1 \
            || die "mariadb-install-db failed; see $LOG/mariadb-install-db.log"
        fresh=1
    fi
    log "starting mariadbd on 127.0.0.1:$DB_PORT"
    rm -f "$RUN/mariadbd.pid"
    # --no-defaults: ignore /etc/mysql; root here, so --user=root (the datadir is ours).
    # InnoDB values are the ones slurmdbd checks at start (1024M: no "not recommended" error;
    # the pool is reserved address space, touched only as the tiny accounting DB needs).
    setsid mariadbd --no-defaults --user=root \
        --datadir="$DB_DIR/data" --socket="$DB_SOCK" --pid-file="$RUN/mariadbd.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$LOG/mariadbd.log" \
        --innodb-buffer-pool-size=1024M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
        --max-allowed-packet=16M \
        < /dev/null >> "$LOG/mariadbd.log" 2>&1 &
    wait_for 60 "mariadbd ping" mariadb-admin --no-defaults --socket="$DB_SOCK" -uroot ping \
        || die "mariadbd did not come up; see $LOG/mariadbd.log"
    wait_for 10 "mariadbd pid file" test -s "$RUN/mariadbd.pid" || true
    if ((fresh)) || ! db_client -N -e "SELECT 1 FROM mysql.user WHERE user='$DB_USER'" 2>/dev/null | grep -q 1; then
        log "creating accounting database $DB_NAME and user $DB_USER"
        db_client <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
    fi
}

start_slurmdbd() {
    if pid_alive "$RUN/slurmdbd.pid" slurmdbd >/dev/null; then return 0; fi
    # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF.
    log "starting slurmdbd"
    rm -f "$RUN/slurmdbd.pid"
    setsid slurmdbd < /dev/null >> "$LOG/slurmdbd.log" 2>&1 \
        || die "slurmdbd failed to start; see $LOG/slurmdbd.log"
    # sacctmgr talks to slurmdbd directly: ready once it answers.
    wait_for 60 "slurmdbd answering sacctmgr" sacctmgr -n list cluster \
        || die "slurmdbd does not answer; see $LOG/slurmdbd.log"
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        log "registering cluster $CLUSTER in slurmdbd"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

start_slurmctld() {
    if pid_alive "$RUN/slurmctld.pid" slurmctld >/dev/null; then return 0; fi
    log "starting slurmctld"
    rm -f "$RUN/slurmctld.pid"
    setsid slurmctld < /dev/null >> "$LOG/slurmctld.log" 2>&1 \
        || die "slurmctld failed to start; see $LOG/slurmctld.log"
    wait_for 30 "scontrol ping" bash -c 'scontrol ping | grep -q UP' \
        || die "slurmctld does not answer; see $LOG/slurmctld.log"
}

start_slurmd() {
    if pid_alive "$RUN/slurmd.pid" slurmd >/dev/null; then return 0; fi
    log "starting slurmd -N $NODE"
    rm -f "$RUN/slurmd.pid"
    setsid slurmd -N "$NODE" < /dev/null >> "$LOG/slurmd.log" 2>&1 \
        || die "slurmd failed to start; see $LOG/slurmd.log"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Before starting anything: the fixed ports must be free, unless our own daemon holds them.
# The usual culprit is a cluster brought up from another DYNSIM_SLURM_DIR (another checkout).
check_ports() {
    local spec port comm pidfile busy=()
    for spec in "$DB_PORT:mariadbd:$RUN/mariadbd.pid" "$DBD_PORT:slurmdbd:$RUN/slurmdbd.pid" \
                "$CTLD_PORT:slurmctld:$RUN/slurmctld.pid" "$SLURMD_PORT:slurmd:$RUN/slurmd.pid"; do
        IFS=: read -r port comm pidfile <<<"$spec"
        pid_alive "$pidfile" "$comm" >/dev/null && continue
        port_in_use "$port" && busy+=("$port (for $comm)")
    done
    ((${#busy[@]} == 0)) && return 0
    local other=""
    if [[ -L /etc/slurm/slurm.conf ]]; then
        other="$(dirname "$(dirname "$(readlink /etc/slurm/slurm.conf)")")"
        [[ "$other" != "$DIR" ]] && other=" Probably a cluster from another state dir: stop it with
    DYNSIM_SLURM_DIR=$other bash $0 down" || other=""
    fi
    die "port(s) in use on 127.0.0.1: ${busy[*]}.$other
    (or pick other ports: DYNSIM_SLURM_{DB,DBD,CTLD,SLURMD}_PORT)"
}

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -1; }
node_usable() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }
node_idle() { [[ "$(node_state)" == idle ]]; }

all_daemons_alive() {
    pid_alive "$MUNGE_DIR/munged.pid" munged >/dev/null &&
        pid_alive "$RUN/mariadbd.pid" mariadbd >/dev/null &&
        pid_alive "$RUN/slurmdbd.pid" slurmdbd >/dev/null &&
        pid_alive "$RUN/slurmctld.pid" slurmctld >/dev/null &&
        pid_alive "$RUN/slurmd.pid" slurmd >/dev/null
}

cmd_up() {
    need_root
    export PATH="$PATH:/usr/sbin:/sbin"
    have_bins || die "Slurm/munge/MariaDB not installed: run '$0 install' first"
    if all_daemons_alive && node_usable; then
        log "already up ($DIR): node $NODE is $(node_state)"
        return 0
    fi
    local t0=$SECONDS
    check_ports
    write_configs
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    # After an unclean stop the saved state may keep the node DOWN/DRAIN: resume it.
    local deadline=$((SECONDS + 60)) st
    while :; do
        st="$(node_state)"
        case "$st" in
            idle) break ;;
            down*|drain*|fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        if (( SECONDS >= deadline )); then
            die "node $NODE not idle after 60 s (state: '${st:-?}'); see $LOG/slurmd.log and $LOG/slurmctld.log"
        fi
        sleep 0.2
    done
    log "up in $((SECONDS - t0)) s: cluster $CLUSTER, partition $PARTITION, node $NODE idle; state in $DIR"
    sinfo
}

cmd_down() {
    export PATH="$PATH:/usr/sbin:/sbin"
    # Cancel jobs first: slurmstepd processes of running jobs would outlive slurmd.
    if pid_alive "$RUN/slurmctld.pid" slurmctld >/dev/null; then
        local jobs
        jobs="$(squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')" || true
        if [[ -n "${jobs// /}" ]]; then
            log "cancelling jobs: $jobs"
            scancel --full $jobs 2>/dev/null || true
            wait_for 30 "jobs to finish" bash -c '[[ -z "$(squeue -h -t running,completing,configuring -o %i)" ]]' || true
        fi
    fi
    stop_pid "$RUN/slurmd.pid" slurmd
    stop_pid "$RUN/slurmctld.pid" slurmctld
    stop_pid "$RUN/slurmdbd.pid" slurmdbd
    stop_pid "$RUN/mariadbd.pid" mariadbd
    stop_pid "$MUNGE_DIR/munged.pid" munged
    local left
    left="$(pgrep -x slurmstepd 2>/dev/null | tr '\n' ' ')" || true
    [[ -z "$left" ]] || log "WARNING: slurmstepd processes still running (pids: $left)"
    log "down ($DIR)"
}

cmd_status() {
    export PATH="$PATH:/usr/sbin:/sbin"
    local ok=1 pid f comm
    echo "state dir: $DIR"
    for f in "$MUNGE_DIR/munged.pid:munged" "$RUN/mariadbd.pid:mariadbd" "$RUN/slurmdbd.pid:slurmdbd" \
             "$RUN/slurmctld.pid:slurmctld" "$RUN/slurmd.pid:slurmd"; do
        comm="${f##*:}"
        if pid="$(pid_alive "${f%:*}" "$comm")"; then
            printf '  %-10s running (pid %s)\n' "$comm" "$pid"
        else
            printf '  %-10s stopped\n' "$comm"; ok=0
        fi
    done
    if ((ok)) && command -v sinfo >/dev/null && node_usable; then
        sinfo
        echo "up: export SLURM_CONF=$SLURM_CONF_FILE (or rely on /etc/slurm/slurm.conf -> it)"
        return 0
    fi
    echo "not up"
    return 3
}

case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 {install|up|down|status}   (state in \$DYNSIM_SLURM_DIR, default <repo>/.cache/slurm)" >&2; exit 2 ;;
esac
