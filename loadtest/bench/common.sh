# shellcheck shell=bash
# common.sh — helpers shared by the benchmark scripts in loadtest/bench/ (sourced, never run).
#
# The sourcing script sets BENCH (its short name, used in messages) and then calls the helpers
# below. Everything here binds loopback addresses only, tracks every process it starts in PIDS
# and removes them (and their children) plus the temp dir WORK on exit.

: "${BENCH:=bench}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET_DIR/bench/venv
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$BENCH" "$*" >&2; }
die() {
    printf '%s: %s\n' "$BENCH" "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- tools
APT_UPDATED=0
# apt_need CMD:PACKAGE ... — installs the packages whose command is missing.
apt_need() {
    local spec cmd pkg need=()
    for spec in "$@"; do
        cmd=${spec%%:*} pkg=${spec#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd && ! -x /usr/bin/$cmd ]]; then
            [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
        fi
    done
    [[ ${#need[@]} -eq 0 ]] || apt_install "${need[@]}"
}

# apt_install PACKAGE ... — apt-get install (apt-get update once, only when installing).
apt_install() {
    local need=("$@")
    command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get to install them"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${need[*]}; run as root or install sudo"
        sudo=(sudo)
    fi
    log "installing ${need[*]} (apt-get)"
    if [[ $APT_UPDATED -eq 0 ]]; then
        "${sudo[@]}" apt-get update -qq >&2
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >&2
}

# venv_need BIN PIP-SPEC — makes sure $VENV/bin/BIN exists, installing PIP-SPEC into the venv.
venv_need() {
    local bin=$1 spec=$2
    [[ -x $VENV/bin/$bin ]] && return 0
    command -v python3 >/dev/null 2>&1 || apt_need python3:python3
    if [[ ! -x $VENV/bin/pip ]]; then
        log "creating the Python venv $VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! python3 -m venv "$VENV" >&2; then
            apt_install python3-venv
            python3 -m venv "$VENV" >&2 || die "cannot create a venv in $VENV"
        fi
    fi
    log "installing $spec into $VENV (pip)"
    "$VENV/bin/pip" install -q "$spec" >&2 || die "pip install $spec failed"
    [[ -x $VENV/bin/$bin ]] || die "$spec did not install $VENV/bin/$bin"
}

# build_release 0|1 — cargo build of the benchmark binaries (1) or nothing (0).
build_release() {
    if [[ $1 -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust first)"
        apt_need cmake:cmake # pingora-core builds zlib-ng
        log "building release binaries (may wait on the cargo lock)"
        (cd "$ROOT" && cargo build --release -p arena-gateway -p arena-loadtest >&2) ||
            die "cargo build failed; fix it or pass --no-build to use the binaries already in $TARGET_DIR/release"
    fi
    # Run private copies: other people rebuilding target/release mid-run must not swap a
    # binary between two measurements (cp -p keeps the build time shown in the results).
    mkdir -p "$WORK/bin"
    local b
    for b in arena-gateway bare-pingora arena-pod arena-loadtest; do
        [[ -x $TARGET_DIR/release/$b ]] && cp -p "$TARGET_DIR/release/$b" "$WORK/bin/$b"
    done
    GATEWAY=$WORK/bin/arena-gateway
    BARE=$WORK/bin/bare-pingora
    POD=$WORK/bin/arena-pod
    LOADTEST=$WORK/bin/arena-loadtest
    export GATEWAY BARE POD LOADTEST
}

need_binary() { [[ -x $1 ]] || die "missing binary $(basename "$1") in $TARGET_DIR/release (build it, or drop --no-build)"; }

# "name built at <mtime>" for the results: the binaries may be older than the tree.
binary_stamp() { date -u -r "$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown; }

git_rev() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git -C "$ROOT" diff --quiet HEAD -- gateway loadtest 2>/dev/null ||
        [[ -n $(git -C "$ROOT" status --porcelain -- gateway loadtest/src 2>/dev/null) ]]; then
        rev+="+dirty"
    fi
    echo "$rev"
}

machine_line() {
    local model
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    echo "$(nproc) CPU(s), ${model:-unknown CPU}, Linux $(uname -r)"
}

# ---------------------------------------------------------------- processes, temp dir, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH.XXXXXX")
chmod 755 "$WORK" # nginx workers drop to `nobody` when started as root
PIDS=()

descendants() { # pid → its children, grandchildren, ... (one per line)
    local c kids=() t
    for t in /proc/"$1"/task/*/children; do
        [[ -r $t ]] || continue
        read -ra kids <"$t" 2>/dev/null || true
        for c in "${kids[@]}"; do
            echo "$c"
            descendants "$c"
        done
    done
}

# stop_pid PID [SIGNAL] — signal (default INT) a process and its descendants, wait ≤ 5 s, then KILL.
stop_pid() {
    local pid=$1 sig=${2:-INT} all p
    [[ -n $pid ]] || return 0
    mapfile -t all < <(descendants "$pid")
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    forget_pid "$pid"
}

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local pid
    set +e
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ports
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

USED_PORTS=" "
# free_port IP... — a port below the ephemeral range that nothing uses at any of the addresses.
free_port() {
    local port ip busy
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        [[ $USED_PORTS == *" $port "* ]] && continue
        busy=0
        for ip in "$@"; do
            if listening "$ip" "$port"; then
                busy=1
                break
            fi
        done
        if command -v ss >/dev/null 2>&1 && ss -Htan "sport = :$port" 2>/dev/null | grep -q .; then busy=1; fi
        if [[ $busy -eq 0 ]]; then
            USED_PORTS+="$port "
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

wait_listening() { # ip port pid [tries of 0.1 s]
    for _ in $(seq "${4:-100}"); do
        listening "$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

wait_closed() { # ip port
    for _ in $(seq 50); do listening "$1" "$2" || return 0; sleep 0.1; done
}

# http_status IP PORT PATH — the status line of one GET (Connection: close), or empty.
http_status() {
    (exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' "$3" >&3 &&
        timeout 5 head -n1 <&3) 2>/dev/null | tr -d '\r' || true
}

# ---------------------------------------------------------------- nginx upstream pods
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
POD_BODY='{"match_id":"m-2026-0042","league":"arena-masters","status":"live","map":3,"teams":[{"id":"t-red","name":"Red Wolves","score":11},{"id":"t-blue","name":"Blue Owls","score":9}],"updated":"2026-11-21T18:04:05Z"}'
POD_PIDS=()
NGINX_WRAP=() # e.g. (taskset -c 0): a command that nginx is started under

# start_nginx_pod NAME IP PORT [access-log-file] — nginx, one worker, `return 200` of POD_BODY.
start_nginx_pod() {
    local name=$1 ip=$2 port=$3 alog=${4:-off} dir="$WORK/$1"
    mkdir -p "$dir"
    [[ $alog == off ]] || alog="$alog count"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    log_format count '.';
    access_log $alog;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    server {
        listen $ip:$port;
        default_type application/json;
        location / { return 200 '$POD_BODY'; }
    }
}
EOF
    "${NGINX_WRAP[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    POD_PIDS+=("$pid")
    wait_listening "$ip" "$port" "$pid" || {
        cat "$dir/error.log" "$dir/stdout.log" >&2 2>/dev/null || true
        die "nginx pod $name did not start on $ip:$port"
    }
}

nginx_version() { "$NGINX" -v 2>&1 | sed 's/.*version: //'; }

# ---------------------------------------------------------------- CPU accounting
cpu_ticks() { # pid → utime+stime in clock ticks (fields 14 and 15); 0 when gone
    local stat rest f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return 0
    }
    rest=${stat##*) } # the command name may hold spaces: fields restart at 3 after ')'
    read -ra f <<<"$rest"
    echo $((f[11] + f[12]))
}

tree_ticks() { # pid... → CPU ticks of the processes and all their descendants
    local n=0 p
    for p in "$@"; do
        n=$((n + $(cpu_ticks "$p")))
        while read -r c; do
            [[ -n $c ]] && n=$((n + $(cpu_ticks "$c")))
        done < <(descendants "$p")
    done
    echo "$n"
}

busy_ticks() { # CPU ticks spent busy by the whole machine, all CPUs (/proc/stat)
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

QUIET_WAIT=${QUIET_WAIT:-60}
# wait_quiet — waits (up to QUIET_WAIT s) until processes outside this benchmark use under a
# quarter of a core: builds running next to a benchmark skew every figure.
wait_quiet() {
    [[ $QUIET_WAIT -eq 0 ]] && return 0
    local deadline=$((SECONDS + QUIET_WAIT)) b0 b1 p0 p1 other told=0
    while :; do
        b0=$(busy_ticks) p0=$(tree_ticks "${PIDS[@]}")
        sleep 1
        b1=$(busy_ticks) p1=$(tree_ticks "${PIDS[@]}")
        other=$(((b1 - b0) - (p1 - p0)))
        ((other * 4 < CLK_TCK)) && return 0
        if ((SECONDS >= deadline)); then
            log "machine still busy ($(awk -v o="$other" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", o / hz }') cores used by others): measuring anyway"
            return 0
        fi
        if ((told == 0)); then
            log "waiting up to ${QUIET_WAIT}s for other processes to go quiet"
            told=1
        fi
    done
}

# user+sys CPU of this shell's finished children in ticks, from a file holding `times` output.
# `times` itself must run in the main shell: in a $(...) subshell it reports that subshell's.
children_ticks() {
    awk -v hz="$CLK_TCK" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%d", t * hz + 0.5
    }' "$1"
}

# ---------------------------------------------------------------- wrk output
to_ms() { # wrk latency like 812.00us / 1.23ms / 1.01s → ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "%.3f", v }
    }'
}

# wrk_parse FILE → "requests rps p50_ms p99_ms errors" (errors: socket errors + non-2xx/3xx)
wrk_parse() {
    local file=$1 requests rps p50 p99 errors
    requests=$(awk '/requests in/ { print $1; exit }' "$file")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$file")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$file")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$file")")
    errors=$(awk '
        /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { n += $NF }
        END { print n + 0 }' "$file")
    echo "${requests:-0} ${rps:-0} $p50 $p99 $errors"
}

# ---------------------------------------------------------------- small statistics
median_of() { # numbers on stdin → median (0 when none)
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

json_str() { # a JSON string literal
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

result_paths() { # prefix → sets STAMP MD JSON under loadtest/results
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$ROOT/loadtest/results"
    # shellcheck disable=SC2034 # used by the sourcing script
    MD=$ROOT/loadtest/results/$1-$STAMP.md
    # shellcheck disable=SC2034
    JSON=$ROOT/loadtest/results/$1-$STAMP.json
}
