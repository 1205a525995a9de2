#!/usr/bin/env bash
# proxy-cost.sh — per-request CPU cost of arena-gateway versus a bare pingora round-robin proxy,
# under identical load in the same run (see loadtest/bench/README.md).
#
#   loadtest/bench/proxy-cost.sh [--duration 10s] [--connections 64] [--rounds 3]
#                                [--warmup 2s] [--quiet-wait 60] [--no-rr] [--no-build]
#
# Three nginx pods (one worker each) on 127.0.0.11-13 serve a small JSON body; each proxy runs
# alone with one worker thread; wrk -t1 loads it. The proxy's CPU time (utime+stime from
# /proc/PID/stat) over the measured run divided by the requests wrk counted is its cost.
set -euo pipefail

DURATION=10s
CONNECTIONS=64
ROUNDS=3
WARMUP=2s
WITH_RR=1
BUILD=1
QUIET_WAIT=60

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
        --connections) CONNECTIONS=${2:?--connections needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
        --quiet-wait) QUIET_WAIT=${2:?--quiet-wait needs seconds}; shift 2 ;;
        --no-rr) WITH_RR=0; shift ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "proxy-cost: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "proxy-cost: --rounds must be a positive integer" >&2; exit 2; }
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || { echo "proxy-cost: --connections must be a positive integer" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || { echo "proxy-cost: --duration like 10s" >&2; exit 2; }
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || { echo "proxy-cost: --warmup like 2s" >&2; exit 2; }
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || { echo "proxy-cost: --quiet-wait takes whole seconds" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

log() { printf '[proxy-cost] %s\n' "$*" >&2; }
die() { printf 'proxy-cost: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
install_missing() {
    local need=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    command -v cmake >/dev/null 2>&1 || need+=(cmake) # pingora-core builds zlib-ng
    [[ ${#need[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get to install them"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${need[*]}; run as root or install sudo"
        sudo=(sudo)
    fi
    log "installing ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
}
install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust first)"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- build
if [[ $BUILD -eq 1 ]]; then
    log "building release binaries (may wait on the cargo lock)"
    cargo build --release -p arena-gateway -p arena-loadtest >&2
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GATEWAY=$TARGET_DIR/release/arena-gateway
BARE=$TARGET_DIR/release/bare-pingora
for b in "$GATEWAY" "$BARE"; do [[ -x $b ]] || die "missing binary $b"; done

# ---------------------------------------------------------------- temp dir and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proxy-cost.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------- ports
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

USED_PORTS=" "
# A port below the ephemeral range that nothing listens on at any of the given addresses.
free_port() {
    local port ip busy
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        [[ $USED_PORTS == *" $port "* ]] && continue
        busy=0
        for ip in "$@"; do
            if listening "$ip" "$port"; then busy=1; break; fi
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

wait_listening() { # ip port pid name
    for _ in $(seq 100); do
        listening "$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- upstream pods (nginx)
POD_IPS=(127.0.0.11 127.0.0.12 127.0.0.13)
POD_PORT=$(free_port "${POD_IPS[@]}")
BODY='{"match_id":"m-2026-0042","league":"arena-masters","status":"live","map":3,"teams":[{"id":"t-red","name":"Red Wolves","score":11},{"id":"t-blue","name":"Blue Owls","score":9}],"updated":"2026-11-21T18:04:05Z"}'
chmod 755 "$WORK" # nginx workers drop to `nobody` when started as root
POD_PIDS=()

start_pod() { # index ip
    local n=$1 ip=$2 dir="$WORK/pod$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    server {
        listen $ip:$POD_PORT;
        default_type application/json;
        location / { return 200 '$BODY'; }
    }
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    POD_PIDS+=("$pid")
    wait_listening "$ip" "$POD_PORT" "$pid" || {
        cat "$dir/error.log" "$dir/stdout.log" >&2 2>/dev/null || true
        die "nginx pod $n did not start on $ip:$POD_PORT"
    }
}
for i in "${!POD_IPS[@]}"; do start_pod "$i" "${POD_IPS[$i]}"; done
log "3 nginx pods on ${POD_IPS[*]} port $POD_PORT ($("$NGINX" -v 2>&1 | sed 's/.*version: //'))"

# ---------------------------------------------------------------- proxies under test
PROXY_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)

write_arena_config() { # lb file
    cat >"$2" <<EOF
# generated by loadtest/bench/proxy-cost.sh
listeners:
  - name: bench
    address: 127.0.0.1:$PROXY_PORT
admin:
  address: 127.0.0.1:$ADMIN_PORT
debug_headers: false
server:
  threads: 1
  upstream_keepalive_pool_size: 4096
clusters:
  - name: pods
    endpoints: ["${POD_IPS[0]}:$POD_PORT", "${POD_IPS[1]}:$POD_PORT", "${POD_IPS[2]}:$POD_PORT"]
    lb: $1
    connect_timeout: 250ms
routes:
  - name: all
    match: { path_prefix: / }
    cluster: pods
    timeout: 2s
EOF
    "$GATEWAY" check -c "$2" >&2 || die "generated config $2 does not validate"
}

PROXIES=(bare arena-p2c)
[[ $WITH_RR -eq 1 ]] && PROXIES+=(arena-rr)
declare -A LABEL=(
    [bare]="bare-pingora (round robin)"
    [arena-p2c]="arena-gateway (p2c_ewma)"
    [arena-rr]="arena-gateway (round_robin)"
)
write_arena_config p2c_ewma "$WORK/arena-p2c.yaml"
write_arena_config round_robin "$WORK/arena-rr.yaml"

PROXY_PID=
start_proxy() { # name
    local out="$WORK/$1.log"
    case "$1" in
        bare)
            "$BARE" --listen "127.0.0.1:$PROXY_PORT" --threads 1 \
                --upstream "${POD_IPS[0]}:$POD_PORT" --upstream "${POD_IPS[1]}:$POD_PORT" \
                --upstream "${POD_IPS[2]}:$POD_PORT" >"$out" 2>&1 &
            ;;
        arena-p2c | arena-rr)
            "$GATEWAY" run -c "$WORK/$1.yaml" >"$out" 2>&1 &
            ;;
        *) die "unknown proxy $1" ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_listening 127.0.0.1 "$PROXY_PORT" "$PROXY_PID" || {
        cat "$out" >&2
        die "$1 did not start on 127.0.0.1:$PROXY_PORT"
    }
    if [[ $1 == bare ]]; then grep -q 'bare-pingora listening on' "$out" || die "bare-pingora printed no banner"; fi
}

stop_proxy() {
    local pid=$PROXY_PID
    [[ -n $pid ]] || return 0
    kill -INT "$pid" 2>/dev/null || true # pingora: SIGINT is a fast shutdown
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
    PROXY_PID=
    # Let the listening port leave TIME_WAIT-free state for the next proxy.
    for _ in $(seq 50); do listening 127.0.0.1 "$PROXY_PORT" || break; sleep 0.1; done
}

cpu_ticks() { # pid → utime+stime in clock ticks (fields 14 and 15)
    local stat rest f
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) } # the command name may hold spaces: fields restart at 3 after ')'
    read -ra f <<<"$rest"
    echo $((f[11] + f[12]))
}

to_ms() { # wrk latency like 812.00us / 1.23ms / 1.01s → ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "%.3f", v }
    }'
}

busy_ticks() { # CPU ticks spent busy by the whole machine, all CPUs (/proc/stat)
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

pods_ticks() { # CPU ticks of the nginx masters and their workers
    local m c n=0 kids
    for m in "${POD_PIDS[@]}"; do
        n=$((n + $(cpu_ticks "$m")))
        kids=()
        read -ra kids 2>/dev/null <"/proc/$m/task/$m/children" || true
        for c in "${kids[@]}"; do
            n=$((n + $(cpu_ticks "$c" 2>/dev/null || echo 0)))
        done
    done
    echo "$n"
}

# user+sys CPU of this shell's finished children (wrk) in ticks, from the output of `times`.
# `times` itself must run in the main shell: in a $(...) subshell it reports that subshell's.
children_ticks() {
    awk -v hz="$CLK_TCK" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%d", t * hz + 0.5
    }' "$1"
}

# Waits (up to --quiet-wait seconds) until processes outside this benchmark use under a
# quarter of a core: builds running next to the benchmark skew every figure.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) b0 b1 p0 p1 other told=0
    while :; do
        b0=$(busy_ticks) p0=$(pods_ticks)
        sleep 1
        b1=$(busy_ticks) p1=$(pods_ticks)
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

URL_PATH=/v1/matches
RUNS="$WORK/runs.tsv" # round proxy requests rps p50 p99 cpu_s us_per_req errors elapsed_s other_cores
: >"$RUNS"

measure() { # round proxy
    local round=$1 name=$2 out="$WORK/wrk-$1-$2.txt" url
    url="http://127.0.0.1:$PROXY_PORT$URL_PATH"
    [[ $QUIET_WAIT -eq 0 ]] || wait_quiet
    start_proxy "$name"
    # Status check before loading: the route must answer 200.
    local code
    code=$( (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT" && printf 'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' "$URL_PATH" >&3 && head -n1 <&3) 2>/dev/null | tr -d '\r' || true)
    [[ $code == *" 200"* ]] || die "$name answered '$code' instead of 200 on $URL_PATH"
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >"$WORK/warmup-$round-$name.txt" 2>&1 ||
        die "warm-up against $name failed: $(cat "$WORK/warmup-$round-$name.txt")"
    local t0 t1 n0 n1 b0 b1 p0 p1 w0 w1
    times >"$WORK/times0"
    b0=$(busy_ticks)
    p0=$(pods_ticks)
    t0=$(cpu_ticks "$PROXY_PID")
    n0=$(date +%s%N)
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$out" 2>&1 || die "wrk against $name failed: $(cat "$out")"
    n1=$(date +%s%N)
    t1=$(cpu_ticks "$PROXY_PID")
    p1=$(pods_ticks)
    b1=$(busy_ticks)
    times >"$WORK/times1"
    stop_proxy
    w0=$(children_ticks "$WORK/times0")
    w1=$(children_ticks "$WORK/times1")
    # Machine CPU not spent by the proxy, the pods or wrk during the measured run.
    local other=$(((b1 - b0) - (t1 - t0) - (p1 - p0) - (w1 - w0)))

    local requests rps p50 p99 errors
    requests=$(awk '/requests in/ { print $1; exit }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$out")")
    errors=$(awk '
        /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { n += $NF }
        END { print n + 0 }' "$out")
    [[ -n $requests && $requests -gt 0 ]] || die "could not read wrk's request count: $(cat "$out")"
    awk -v r="$round" -v p="$name" -v n="$requests" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
        -v dt=$((t1 - t0)) -v hz="$CLK_TCK" -v e="$errors" -v ns=$((n1 - n0)) -v o="$other" 'BEGIN {
        cpu = dt / hz
        secs = ns / 1e9
        printf "%s\t%s\t%d\t%.1f\t%.3f\t%.3f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\n", r, p, n, rps, p50, p99, cpu, cpu * 1e6 / n, e, secs, (o > 0 ? o : 0) / hz / secs
    }' >>"$RUNS"
    log "$(tail -n1 "$RUNS" | awk -F'\t' '{ printf "round %s %-10s %9d req  %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  cpu %6.2f s (%3.0f%% of a core)  %6.2f µs/req  errors %d  others %.2f cores", $1, $2, $3, $4, $5, $6, $7, 100 * $7 / $10, $8, $9, $11 }')"
}

log "proxy on 127.0.0.1:$PROXY_PORT, ${#PROXIES[@]} proxies × $ROUNDS round(s), wrk -t1 -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up"
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order each round (A B C, B C A, ...) so drift and position effects cancel.
    for ((k = 0; k < ${#PROXIES[@]}; k++)); do
        measure "$round" "${PROXIES[$(((k + round - 1) % ${#PROXIES[@]}))]}"
    done
done

# ---------------------------------------------------------------- report
median() { # column, proxy
    awk -F'\t' -v c="$1" -v p="$2" '$2 == p { print $c }' "$RUNS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
sum_col() { awk -F'\t' -v c="$1" -v p="$2" '$2 == p { s += $c } END { print s + 0 }' "$RUNS"; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p loadtest/results
MD=loadtest/results/proxy-cost-$STAMP.md
JSON=loadtest/results/proxy-cost-$STAMP.json
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
KERNEL=$(uname -r)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*version: //')
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- gateway loadtest 2>/dev/null; then GIT_REV+="+dirty"; fi
BARE_US=$(median 8 bare)
TARGET_RATIO=1.10
TOTAL_ERRORS=$(awk -F'\t' '{ s += $9 } END { print s + 0 }' "$RUNS")
MAX_OTHER=$(awk -F'\t' '$11 > m { m = $11 } END { printf "%.2f", m + 0 }' "$RUNS")
# Per-round ratio arena-p2c / bare: shows how much of the spread is drift shared by both.
PAIRED_LIST=$(awk -F'\t' '$2 == "bare" { b[$1] = $8 } $2 == "arena-p2c" { a[$1] = $8 }
    END { for (r in b) if (r in a && b[r] > 0) printf "%d %.3f\n", r, a[r] / b[r] }' "$RUNS" | sort -n | awk '{ print $2 }')
PAIRED=$(echo "$PAIRED_LIST" | paste -sd ' ' -)
PAIRED_MEDIAN=$(echo "$PAIRED_LIST" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')

{
    echo "# Proxy cost — $STAMP"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (after a $WARMUP warm-up), GET $URL_PATH, ${#BODY}-byte JSON body;"
    echo "3 × $NGINX_VERSION pods (1 worker each) on ${POD_IPS[*]}; each proxy alone, 1 worker thread."
    echo "Machine: $(nproc) CPU(s), ${CPU_MODEL:-unknown CPU}, Linux $KERNEL; commit $GIT_REV; $ROUNDS round(s), order rotated per round."
    echo
    echo "Medians over rounds. CPU µs/req = (utime+stime of the whole proxy process during the measured run) / requests."
    echo
    echo "| proxy | rps | p50 ms | p99 ms | CPU µs/req | × bare | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for p in "${PROXIES[@]}"; do
        us=$(median 8 "$p")
        awk -v l="${LABEL[$p]}" -v rps="$(median 4 "$p")" -v p50="$(median 5 "$p")" -v p99="$(median 6 "$p")" \
            -v us="$us" -v b="$BARE_US" -v e="$(sum_col 9 "$p")" 'BEGIN {
            printf "| %s | %.0f | %.2f | %.2f | %.2f | %.3f | %d |\n", l, rps, p50, p99, us, (b > 0 ? us / b : 0), e
        }'
    done
    echo
    RATIO=$(awk -v a="$(median 8 arena-p2c)" -v b="$BARE_US" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    VERDICT=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r <= t ? "PASS" : "FAIL") }')
    echo "**arena-gateway (p2c_ewma) / bare pingora CPU per request: $RATIO** (target ≤ $TARGET_RATIO: $VERDICT)"
    echo
    echo "Same ratio paired within each round (arena-p2c run / bare run of that round): $PAIRED (median $PAIRED_MEDIAN)."
    [[ $TOTAL_ERRORS -eq 0 ]] || echo "**WARNING: $TOTAL_ERRORS non-2xx responses or socket errors — figures are not valid.**"
    if awk -v m="$MAX_OTHER" 'BEGIN { exit !(m > 0.2) }'; then
        echo
        echo "**Caution:** other processes used up to $MAX_OTHER cores during some runs (column \"others\"): those runs are skewed."
    fi
    echo
    echo "<details><summary>Every run</summary>"
    echo
    echo "| round | proxy | requests | rps | p50 ms | p99 ms | proxy CPU s | % of a core | CPU µs/req | errors | others (cores) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %d | %.2f |\n", $1, $2, $3, $4, $5, $6, $7, 100 * $7 / $10, $8, $9, $11 }' "$RUNS"
    echo
    echo "</details>"
} >"$MD"

{
    printf '{\n  "timestamp": "%s",\n  "commit": "%s",\n' "$STAMP" "$GIT_REV"
    printf '  "machine": {"cpus": %d, "cpu_model": "%s", "kernel": "%s", "clk_tck": %d},\n' \
        "$(nproc)" "${CPU_MODEL//\"/}" "$KERNEL" "$CLK_TCK"
    printf '  "load": {"tool": "wrk", "threads": 1, "connections": %d, "duration": "%s", "warmup": "%s", "path": "%s", "body_bytes": %d},\n' \
        "$CONNECTIONS" "$DURATION" "$WARMUP" "$URL_PATH" "${#BODY}"
    printf '  "upstreams": {"server": "%s", "workers": 1, "addresses": ["%s:%d", "%s:%d", "%s:%d"]},\n' \
        "$NGINX_VERSION" "${POD_IPS[0]}" "$POD_PORT" "${POD_IPS[1]}" "$POD_PORT" "${POD_IPS[2]}" "$POD_PORT"
    printf '  "rounds": %d,\n  "target_ratio": %s,\n  "ratio_arena_p2c_over_bare": %s,\n  "verdict": "%s",\n  "total_errors": %d,\n' \
        "$ROUNDS" "$TARGET_RATIO" "$RATIO" "$VERDICT" "$TOTAL_ERRORS"
    printf '  "paired_ratios_arena_p2c_over_bare": [%s],\n  "paired_ratio_median": %s,\n' "${PAIRED// /, }" "$PAIRED_MEDIAN"
    printf '  "median": {\n'
    first=1
    for p in "${PROXIES[@]}"; do
        [[ $first -eq 1 ]] || printf ',\n'
        first=0
        printf '    "%s": {"label": "%s", "rps": %s, "p50_ms": %s, "p99_ms": %s, "cpu_us_per_request": %s, "errors": %s}' \
            "$p" "${LABEL[$p]}" "$(median 4 "$p")" "$(median 5 "$p")" "$(median 6 "$p")" "$(median 8 "$p")" "$(sum_col 9 "$p")"
    done
    printf '\n  },\n  "runs": [\n'
    awk -F'\t' 'NR > 1 { printf ",\n" } {
        printf "    {\"round\": %d, \"proxy\": \"%s\", \"requests\": %d, \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"cpu_seconds\": %s, \"cpu_us_per_request\": %s, \"errors\": %d, \"elapsed_seconds\": %s, \"other_processes_cores\": %s}", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
    } END { printf "\n" }' "$RUNS"
    printf '  ]\n}\n'
} >"$JSON"

cat "$MD"
log "wrote $MD and $JSON"
[[ $TOTAL_ERRORS -eq 0 ]] || exit 3
