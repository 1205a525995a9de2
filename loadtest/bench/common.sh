# shellcheck shell=bash
# common.sh — helpers shared by the benchmark scripts in loadtest/bench/ (sourced, never run).
#
# The sourcing script sets BENCH (its short name, used in messages) and its defaults, sources
# this file, reads its command line with parse_args and then calls the helpers below. Everything
# here binds loopback addresses only, tracks every process it starts in PIDS and removes them
# (and their children) plus the temp dir WORK on exit.

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

# ---------------------------------------------------------------- command line
# usage — the script's header comment: its lines from the second to the first non-comment line.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

usage_error() { # message → stderr, exit 2
    echo "$BENCH: $*" >&2
    exit 2
}

# parse_args SPEC... -- ARG... — reads the command line ARG... into the variables the SPECs name:
# `--opt=VAR` takes a value (`--opt VALUE`), `--flag:VAR=VALUE` sets VAR to VALUE. --no-build
# (BUILD=0) and -h/--help are always understood; anything else prints the usage and exits 2.
parse_args() {
    local -A takes=() sets=([--no-build]=BUILD=0)
    local spec
    while [[ $1 != -- ]]; do
        spec=$1
        shift
        if [[ $spec == *:* ]]; then sets[${spec%%:*}]=${spec#*:}; else takes[${spec%%=*}]=${spec#*=}; fi
    done
    shift
    while [[ $# -gt 0 ]]; do
        if [[ -n ${takes[$1]:-} ]]; then
            printf -v "${takes[$1]}" '%s' "${2:?$1 needs a value}"
            shift 2
        elif [[ -n ${sets[$1]:-} ]]; then
            printf -v "${sets[$1]%%=*}" '%s' "${sets[$1]#*=}"
            shift
        elif [[ $1 == -h || $1 == --help ]]; then
            usage
            exit 0
        else
            echo "$BENCH: unknown argument: $1" >&2
            usage >&2
            exit 2
        fi
    done
}

# need_positive VAR... — each VAR (set by --var) holds a positive integer, or exit 2.
need_positive() {
    local v
    for v; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "--${v,,} must be a positive integer"; done
}

# need_match VAR REGEX MESSAGE — VAR's value matches REGEX, or exit 2 with MESSAGE.
need_match() { [[ ${!1} =~ $2 ]] || usage_error "$3"; }

# has NAME — NAME is in the comma-separated list ONLY (the script's --only).
has() { [[ ",$ONLY," == *",$1,"* ]]; }

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
        (cd "$ROOT" && cargo build --release --workspace --bins >&2) ||
            die "cargo build failed; fix it or pass --no-build to use the binaries already in $TARGET_DIR/release"
        # The baseline is stock pingora: its own package and lock file, outside the workspace
        # (which builds pingora with Arena's patches, vendor/README.md).
        (cd "$ROOT" && cargo build --release --manifest-path loadtest/bare-pingora/Cargo.toml --target-dir "$TARGET_DIR" >&2) ||
            die "cargo build of loadtest/bare-pingora failed"
    fi
    # Run private copies: other people rebuilding target/release mid-run must not swap a
    # binary between two measurements (cp -p keeps the build time shown in the results).
    mkdir -p "$WORK/bin"
    local b
    for b in arena-gateway bare-pingora floor-tokio arena-pod arena-loadtest; do
        [[ -x $TARGET_DIR/release/$b ]] && cp -p "$TARGET_DIR/release/$b" "$WORK/bin/$b"
    done
    GATEWAY=$WORK/bin/arena-gateway
    BARE=$WORK/bin/bare-pingora
    FLOOR=$WORK/bin/floor-tokio
    POD=$WORK/bin/arena-pod
    LOADTEST=$WORK/bin/arena-loadtest
    export GATEWAY BARE FLOOR POD LOADTEST
}

need_binary() { [[ -x $1 ]] || die "missing binary $(basename "$1") in $TARGET_DIR/release (build it, or drop --no-build)"; }

# need_peer_binaries — the binaries of ours among the proxies in --only (arena, bare, floor).
need_peer_binaries() {
    if has arena; then need_binary "$GATEWAY"; fi
    if has bare; then need_binary "$BARE"; fi
    if has floor; then need_binary "$FLOOR"; fi
}

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

cpu_model() { awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true; }

machine_line() {
    local model
    model=$(cpu_model)
    echo "$(nproc) CPU(s), ${model:-unknown CPU}, Linux $(uname -r)"
}

# ---------------------------------------------------------------- processes, temp dir, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH.XXXXXX")
chmod 755 "$WORK" # nginx workers drop to `nobody` when started as root
PIDS=()
RUNS=$WORK/runs.tsv # one row per measured run; the script documents its columns
: >"$RUNS"

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

# expect_200 NAME IP PORT — one GET of $URL_PATH must answer 200, or die.
expect_200() {
    local code
    code=$(http_status "$2" "$3" "$URL_PATH")
    [[ $code == *" 200"* ]] || die "$1 answered '$code' instead of 200 on $URL_PATH"
}

# launch NAME IP PORT TRIES COMMAND... — starts COMMAND in the background (output in
# $WORK/NAME.log, pid in LAUNCHED and PIDS) and waits up to TRIES × 0.1 s until it listens.
launch() {
    local name=$1 ip=$2 port=$3 tries=$4 out="$WORK/$1.log"
    shift 4
    "$@" >"$out" 2>&1 &
    LAUNCHED=$!
    PIDS+=("$LAUNCHED")
    wait_listening "$ip" "$port" "$LAUNCHED" "$tries" || {
        cat "$out" >&2
        die "$name did not start on $ip:$port"
    }
}

# ---------------------------------------------------------------- the proxy under test
# One proxy at a time listens on 127.0.0.1:$PROXY_PORT (the script picks the port), its pid in PROXY_PID.
PROXY_PID=

# run_proxy NAME TRIES COMMAND... — starts the proxy NAME (output in $WORK/NAME.log) and waits
# up to TRIES × 0.1 s until it listens.
run_proxy() {
    launch "$1" 127.0.0.1 "$PROXY_PORT" "${@:2}"
    PROXY_PID=$LAUNCHED
}

stop_proxy() {
    [[ -n $PROXY_PID ]] || return 0
    stop_pid "$PROXY_PID" # SIGINT: fast shutdown for pingora, nginx, haproxy and Traefik alike
    PROXY_PID=
    wait_closed 127.0.0.1 "$PROXY_PORT"
}

# bare_cmd — BARE_CMD: bare-pingora as the proxy under test, one thread, round robin over the pods.
bare_cmd() {
    local ip
    BARE_CMD=("$BARE" --listen "127.0.0.1:$PROXY_PORT" --threads 1)
    for ip in "${POD_IPS[@]}"; do BARE_CMD+=(--upstream "$ip:$POD_PORT"); done
}

# floor_cmd — FLOOR_CMD: floor-tokio (the cheapest keep-alive proxy on tokio + httparse, no
# features: loadtest/bare-pingora/src/floor.rs) as the proxy under test, round robin over the pods.
floor_cmd() {
    local ip
    FLOOR_CMD=("$FLOOR" --listen "127.0.0.1:$PROXY_PORT")
    for ip in "${POD_IPS[@]}"; do FLOOR_CMD+=(--upstream "$ip:$POD_PORT"); done
}

pod_endpoints() { # the pods as a YAML flow list's items: "ip:port", "ip:port", ...
    local list
    list=$(printf '"%s:'"$POD_PORT"'", ' "${POD_IPS[@]}")
    echo "${list%, }"
}

# arena_cluster NOTE LB — the start of an arena-gateway config (after a `# generated by` line
# with NOTE): one thread on the proxy port, admin on $ADMIN_PORT, no debug headers, the cluster
# `pods` of every pod balanced by LB. More cluster keys may follow, then arena_route.
arena_cluster() {
    cat <<EOF
# generated by loadtest/bench/$BENCH.sh${1:+: $1}
listeners: [{ name: bench, address: "127.0.0.1:$PROXY_PORT" }]
admin: { address: "127.0.0.1:$ADMIN_PORT" }
debug_headers: false
server: { threads: 1, upstream_keepalive_pool_size: 4096 }
clusters:
  - name: pods
    endpoints: [$(pod_endpoints)]
    lb: $2
    connect_timeout: 250ms
EOF
}

# arena_route TIMEOUT — the config's one route: everything to `pods`. More route keys may follow.
arena_route() {
    cat <<EOF
routes:
  - name: all
    match: { path_prefix: / }
    cluster: pods
    timeout: $1
EOF
}

# arena_all_config — arena-gateway with every request-path feature on (per-try timeout, circuit
# breaker, outlier ejection, retry budget, rate limit), none of them triggering: the proxy-cost
# target's "routing, live-load LB, rate limiting, metrics and circuit breaking all on".
arena_all_config() {
    arena_cluster "every request-path feature on, none triggering" p2c_ewma
    cat <<EOF
    per_try_timeout: 1s
    max_in_flight: 100000
    outlier: { consecutive_failures: 5, base_ejection: 5s, max_ejection: 60s, max_ejected_percent: 50 }
EOF
    arena_route 2s
    cat <<EOF
    retry: { attempts: 2, on: [connect_failure, reset, timeout, 5xx], budget_percent: 20, min_per_second: 10, backoff: 25ms }
    rate_limit: { requests_per_second: 10000000, burst: 10000000, key: client_ip, scope: local, max_keys: 100000 }
EOF
}

# arena_release_config — the defaults (p2c_ewma) plus a grey release on the route: half the
# users to a canary cluster of the same pods, so the split, the per-version windows and the
# release metrics are the only difference from arena-p2c.
arena_release_config() {
    arena_cluster "a release splitting the route 50/50" p2c_ewma
    cat <<EOF
  - name: pods-v2
    endpoints: [$(pod_endpoints)]
    connect_timeout: 250ms
EOF
    arena_route 2s
    cat <<EOF
releases:
  - { name: v2, routes: [all], stable: pods, canary: pods-v2, weight: 50% }
EOF
}

check_arena_config() { "$GATEWAY" check -c "$1" >&2 || die "generated config $1 does not validate"; }

# start_otlp_sink — the trace collector for tracing variants (sets OTLP_ENDPOINT): nginx answering
# every OTLP POST with an empty
# ExportTraceServiceResponse (a protobuf message with no fields is zero bytes), spans discarded.
start_otlp_sink() {
    local dir="$WORK/otlp" ip=127.0.0.15
    OTLP_PORT=$(free_port "$ip")
    mkdir -p "$dir"
    {
        nginx_head "$dir" off
        cat <<EOF
    client_max_body_size 16m;
    server {
        listen $ip:$OTLP_PORT;
        location = /v1/traces { default_type application/x-protobuf; return 200 ''; }
    }
}
EOF
    } >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_listening "$ip" "$OTLP_PORT" "$pid" || die "the OTLP sink did not start on $ip:$OTLP_PORT"
    OTLP_ENDPOINT="http://$ip:$OTLP_PORT"
}
# tracing_block RATIO — the gateway config's tracing section at RATIO, errors and slow kept.
tracing_block() {
    cat <<EOF
tracing:
  otlp_endpoint: $OTLP_ENDPOINT
  sample_ratio: $1
  always: [error, slow]
EOF
}

# peer_labels — LABEL (an associative array the script declares) gets the report names of the
# proxies peers.sh, scaling.sh and syscalls.sh compare, in their tuned configurations.
peer_labels() {
    LABEL[floor]="floor-tokio (tokio + httparse, no features)"
    LABEL[arena]="arena-gateway (p2c_ewma)"
    LABEL[bare]="bare-pingora (round robin)"
    LABEL[nginx]="nginx (least_conn + keepalive)"
    LABEL[haproxy]="haproxy (leastconn, http-reuse always)"
}

# ---------------------------------------------------------------- nginx upstream pods
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
# shellcheck disable=SC2034 # used by the sourcing scripts
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)
POD_BODY='{"match_id":"m-2026-0042","league":"arena-masters","status":"live","map":3,"teams":[{"id":"t-red","name":"Red Wolves","score":11},{"id":"t-blue","name":"Blue Owls","score":9}],"updated":"2026-11-21T18:04:05Z"}'
POD_PIDS=()
NGINX_WRAP=() # e.g. (taskset -c 0): a command that nginx is started under
# nginx as the proxy under test, run from $WORK/nginx (its nginx.conf written by the script).
# shellcheck disable=SC2034 # used by the sourcing scripts
NGINX_PROXY=("$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log")

# nginx_head DIR ACCESS-LOG — the start of an nginx.conf run from DIR (pid, logs and temp files
# there), one worker in the foreground, up to the first lines inside `http {`. ACCESS-LOG is off
# or a file that gets one '.' per request.
nginx_head() {
    local dir=$1
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
EOF
    if [[ $2 == off ]]; then
        echo "    access_log off;"
    else
        echo "    log_format count '.';"
        echo "    access_log $2 count;"
    fi
    cat <<EOF
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 100000;
EOF
}

# nginx_proxy_conf DIR WORKERS — nginx as a tuned reverse proxy of the pods on PROXY_PORT
# (least_conn, upstream keep-alive), the configuration peers.sh and scaling.sh compare.
nginx_proxy_conf() {
    local dir=$1 n=$2
    echo "# generated by loadtest/bench/$BENCH.sh: nginx as a tuned reverse proxy, $n worker(s)"
    nginx_head "$dir" off | sed "s/^worker_processes 1;/worker_processes $n;/"
    cat <<EOF
    keepalive_timeout 75s;
    upstream pods {
        least_conn;
        server ${POD_IPS[0]}:$POD_PORT;
        server ${POD_IPS[1]}:$POD_PORT;
        server ${POD_IPS[2]}:$POD_PORT;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 250ms;
            proxy_read_timeout 2s;
        }
    }
}
EOF
}

# haproxy_proxy_cfg THREADS — haproxy as a tuned reverse proxy of the pods on PROXY_PORT
# (leastconn, http-reuse always), the configuration peers.sh and scaling.sh compare.
haproxy_proxy_cfg() {
    cat <<EOF
# generated by loadtest/bench/$BENCH.sh: haproxy as a tuned reverse proxy, $1 thread(s)
global
    nbthread $1
    maxconn 5000
    tune.bufsize 16384
defaults
    mode http
    option http-keep-alive
    timeout connect 250ms
    timeout client 30s
    timeout server 2s
    timeout http-keep-alive 75s
frontend bench
    bind 127.0.0.1:$PROXY_PORT
    default_backend pods
backend pods
    balance leastconn
    http-reuse always
    server pod0 ${POD_IPS[0]}:$POD_PORT
    server pod1 ${POD_IPS[1]}:$POD_PORT
    server pod2 ${POD_IPS[2]}:$POD_PORT
EOF
}

# start_nginx_pod NAME IP PORT [access-log-file] — nginx, one worker, `return 200` of POD_BODY.
start_nginx_pod() {
    local name=$1 ip=$2 port=$3 dir="$WORK/$1"
    mkdir -p "$dir"
    {
        nginx_head "$dir" "${4:-off}"
        cat <<EOF
    keepalive_timeout 75s;
    server {
        listen $ip:$port;
        default_type application/json;
        location / { return 200 '$POD_BODY'; }
    }
}
EOF
    } >"$dir/nginx.conf"
    "${NGINX_WRAP[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    POD_PIDS+=("$pid")
    wait_listening "$ip" "$port" "$pid" || {
        cat "$dir/error.log" "$dir/stdout.log" >&2 2>/dev/null || true
        die "nginx pod $name did not start on $ip:$port"
    }
}

# start_nginx_pods [ACCESS-LOG-NAME] — the three pods pod0-2 on POD_IPS 127.0.0.11-13, one port
# POD_PORT; with ACCESS-LOG-NAME each logs its requests to $WORK/podN/ACCESS-LOG-NAME.
# shellcheck disable=SC2120 # the argument is optional
start_nginx_pods() {
    local i
    POD_IPS=(127.0.0.11 127.0.0.12 127.0.0.13)
    POD_PORT=$(free_port "${POD_IPS[@]}")
    for i in "${!POD_IPS[@]}"; do
        start_nginx_pod "pod$i" "${POD_IPS[$i]}" "$POD_PORT" ${1:+"$WORK/pod$i/$1"}
    done
    log "3 nginx pods on ${POD_IPS[*]} port $POD_PORT ($(nginx_version))"
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

tree_peak_rss_kib() { # pid → sum of the peak resident memory (VmHWM) of it and its descendants
    local n=0 p v
    for p in "$1" $(descendants "$1"); do
        v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        n=$((n + ${v:-0}))
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

# ---------------------------------------------------------------- rounds
# each_round COMMAND ITEM... — `COMMAND ROUND ITEM` for every ITEM in every round 1..ROUNDS, the
# order rotated each round (A B C, B C A, ...) so that drift and position effects cancel.
each_round() {
    local cmd=$1 round k
    shift
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < $#; k++)); do
            "$cmd" "$round" "${@:$(((k + round - 1) % $# + 1)):1}"
        done
    done
}

# ---------------------------------------------------------------- wrk through the proxy under test
# proxy-cost.sh and peers.sh: the script defines start_proxy NAME (run_proxy, then the route must
# answer 200 on $URL_PATH) and sets CONNECTIONS, WARMUP and DURATION. wrk_measure adds to RUNS:
#   round proxy requests rps p50_ms p99_ms cpu_s us_per_req errors elapsed_s other_cores peak_rss_mib
RUN_NAME_WIDTH=8 # room for the proxy's name in the progress lines

wrk_measure() { # round proxy
    local round=$1 name=$2 out="$WORK/wrk-$1-$2.txt" url="http://127.0.0.1:$PROXY_PORT$URL_PATH"
    wait_quiet
    start_proxy "$name"
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >"$WORK/warmup-$round-$name.txt" 2>&1 ||
        die "warm-up against $name failed: $(cat "$WORK/warmup-$round-$name.txt")"
    local t0 t1 n0 n1 b0 b1 p0 p1 w0 w1 rss
    times >"$WORK/times0"
    b0=$(busy_ticks)
    p0=$(tree_ticks "${POD_PIDS[@]}")
    t0=$(tree_ticks "$PROXY_PID")
    n0=$(date +%s%N)
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$out" 2>&1 || die "wrk against $name failed: $(cat "$out")"
    n1=$(date +%s%N)
    t1=$(tree_ticks "$PROXY_PID")
    p1=$(tree_ticks "${POD_PIDS[@]}")
    b1=$(busy_ticks)
    times >"$WORK/times1"
    rss=$(tree_peak_rss_kib "$PROXY_PID") # peak over the proxy's life: warm-up and run
    stop_proxy
    w0=$(children_ticks "$WORK/times0")
    w1=$(children_ticks "$WORK/times1")
    # Machine CPU not spent by the proxy, the pods or wrk during the measured run.
    local other=$(((b1 - b0) - (t1 - t0) - (p1 - p0) - (w1 - w0)))
    local requests rps p50 p99 errors
    read -r requests rps p50 p99 errors < <(wrk_parse "$out")
    [[ $requests -gt 0 ]] || die "could not read wrk's request count: $(cat "$out")"
    awk -v r="$round" -v p="$name" -v n="$requests" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
        -v dt=$((t1 - t0)) -v hz="$CLK_TCK" -v e="$errors" -v ns=$((n1 - n0)) -v o="$other" -v rss="$rss" 'BEGIN {
        cpu = dt / hz; secs = ns / 1e9
        printf "%s\t%s\t%d\t%.1f\t%.3f\t%.3f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%.1f\n", r, p, n, rps, p50, p99, cpu, cpu * 1e6 / n, e, secs, (o > 0 ? o : 0) / hz / secs, rss / 1024
    }' >>"$RUNS"
    log "$(tail -n1 "$RUNS" | awk -F'\t' -v w="$RUN_NAME_WIDTH" '{
        fmt = "round %s %-" w "s %9d req  %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  cpu %6.2f s (%3.0f%% of a core)  %6.2f µs/req  errors %d  others %.2f cores  peak RSS %.1f MiB"
        printf fmt, $1, $2, $3, $4, $5, $6, $7, 100 * $7 / $10, $8, $9, $11, $12 }')"
}

wrk_runs_table() { # the rows of wrk_measure as a markdown table
    echo "| round | proxy | requests | rps | p50 ms | p99 ms | proxy CPU s | % of a core | CPU µs/req | errors | others (cores) | peak RSS MiB |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %d | %.2f | %.1f |\n", $1, $2, $3, $4, $5, $6, $7, 100 * $7 / $10, $8, $9, $11, $12 }' "$RUNS"
}

wrk_runs_details() { # the per-run table, folded away
    echo "<details><summary>Every run</summary>"
    echo
    wrk_runs_table
    echo
    echo "</details>"
}

wrk_runs_json() { # the rows of wrk_measure as the items of a JSON list, one a line
    awk -F'\t' 'NR > 1 { printf ",\n" } {
        printf "    {\"round\": %d, \"proxy\": \"%s\", \"requests\": %d, \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"cpu_seconds\": %s, \"cpu_us_per_request\": %s, \"errors\": %d, \"elapsed_seconds\": %s, \"other_processes_cores\": %s, \"peak_rss_mib\": %s}", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
    } END { printf "\n" }' "$RUNS"
}

# wrk_json_tail PROXY... — the end of a results JSON: `"median"` per proxy (its LABEL, its
# version when the script defines version_of, the medians over rounds), then every run.
wrk_json_tail() {
    local p first=1 version
    printf '  "median": {\n'
    for p; do
        [[ $first -eq 1 ]] || printf ',\n'
        first=0
        version=
        if declare -F version_of >/dev/null; then version=", \"version\": $(json_str "$(version_of "$p")")"; fi
        printf '    "%s": {"label": %s%s, "rps": %s, "p50_ms": %s, "p99_ms": %s, "cpu_us_per_request": %s, "peak_rss_mib": %s, "errors": %s}' \
            "$p" "$(json_str "${LABEL[$p]}")" "$version" "$(median 4 "$p")" "$(median 5 "$p")" "$(median 6 "$p")" \
            "$(median 8 "$p")" "$(median 12 "$p")" "$(sum_col 9 "$p")"
    done
    printf '\n  },\n  "runs": [\n'
    wrk_runs_json
    printf '  ]\n}\n'
}

# ---------------------------------------------------------------- small statistics
median_of() { # numbers on stdin → median (0 when none)
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# RUNS rows keyed by their second column (proxy, generator):
median() { awk -F'\t' -v c="$1" -v p="$2" '$2 == p { print $c }' "$RUNS" | median_of; } # COLUMN NAME → median over rounds
sum_col() { awk -F'\t' -v c="$1" -v p="${2:-}" 'p == "" || $2 == p { s += $c } END { print s + 0 }' "$RUNS"; } # COLUMN [NAME] → sum
max_others() { awk -F'\t' '$11 > m { m = $11 } END { printf "%.2f", m + 0 }' "$RUNS"; } # the most cores others used in a run (column 11)

json_str() { # a JSON string literal
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# ---------------------------------------------------------------- results
result_paths() { # prefix → sets STAMP, GIT_REV and the result files MD and JSON under loadtest/results
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    GIT_REV=$(git_rev)
    mkdir -p "$ROOT/loadtest/results"
    MD=$ROOT/loadtest/results/$1-$STAMP.md
    JSON=$ROOT/loadtest/results/$1-$STAMP.json
}

json_head() { # the results JSON's opening: timestamp, commit, machine
    printf '{\n  "timestamp": "%s",\n  "commit": "%s",\n  "machine": %s,\n' "$STAMP" "$GIT_REV" "$(json_str "$(machine_line)")"
}

# show_configs FILE... — the files under $WORK that exist, each as a markdown code block.
show_configs() {
    local f
    for f; do
        [[ -f $WORK/$f ]] || continue
        echo "\`$f\`:"
        echo
        echo '```'
        sed "s#$WORK#\$WORK#g" "$WORK/$f"
        echo '```'
        echo
    done
}

# run_warnings ERRORS MAX_OTHER — markdown warnings (each followed by a blank line) when any run
# had errors or other processes used more than 0.2 cores during a run.
run_warnings() {
    [[ $1 -eq 0 ]] || printf '%s\n\n' "**WARNING: $1 non-2xx responses or socket errors — figures are not valid.**"
    if awk -v m="$2" 'BEGIN { exit !(m > 0.2) }'; then
        printf '%s\n\n' "**Caution:** other processes used up to $2 cores during some runs (column \"others\"): those runs are skewed."
    fi
}

show_results() { # prints the markdown, says where both files are
    cat "$MD"
    log "wrote $MD and $JSON"
}
