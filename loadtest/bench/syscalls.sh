#!/usr/bin/env bash
# syscalls.sh — where the CPU goes that instruction counts miss: system calls, context switches
# and the user/kernel split per proxied request, for arena-gateway, bare pingora, the tokio floor,
# nginx and haproxy under the same load (see loadtest/bench/README.md).
#
#   loadtest/bench/syscalls.sh [--duration 10s] [--connections 64] [--warmup 2s]
#                              [--only arena,bare,floor,nginx,haproxy] [--no-build] [--quiet-wait 60]
#                              [--config FILE] [--profile DIR]
#
# Per proxy: start it alone (one worker/thread, the peers.sh configurations), warm up with wrk,
# then count with `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_<name>...,
# context-switches` attached to the proxy's processes while `wrk -t1 -cC -dD` runs, and read
# utime and stime apart from /proc. Kernel tracepoints count exactly (no sampling) and cost
# little, so the figures are the proxy's own, per request. --config FILE measures arena with that
# gateway config instead of the default one (its listener must be 127.0.0.1:$PROXY_PORT: use the
# placeholders PROXY_PORT, ADMIN_PORT and PODS, which are substituted). --profile DIR also records
# `perf record -e cpu-clock -g` of each proxy (kernel and user stacks; works without hardware
# counters) into DIR/perf-<proxy>.data plus a folded report DIR/perf-<proxy>.txt.
set -euo pipefail

BENCH=syscalls
DURATION=10s
CONNECTIONS=64
WARMUP=2s
ONLY=arena,bare,floor,nginx,haproxy
BUILD=1
QUIET_WAIT=60
CONFIG=
PROFILE=

# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args --duration=DURATION --connections=CONNECTIONS --warmup=WARMUP --quiet-wait=QUIET_WAIT \
    --only=ONLY --config=CONFIG --profile=PROFILE -- "$@"
need_positive CONNECTIONS
need_match DURATION '^[0-9]+[smh]?$' "--duration like 10s"
need_match WARMUP '^[0-9]+[smh]?$' "--warmup like 2s"
need_match QUIET_WAIT '^[0-9]+$' "--quiet-wait takes whole seconds"
[[ -z $CONFIG || -f $CONFIG ]] || usage_error "--config $CONFIG: no such file"
cd "$ROOT"

IFS=, read -ra PROXIES <<<"$ONLY"
declare -A LABEL=()
peer_labels
[[ -n $CONFIG ]] && LABEL[arena]="arena-gateway ($(basename "$CONFIG"))"
for p in "${PROXIES[@]}"; do [[ -n ${LABEL[$p]:-} ]] || die "unknown proxy '$p' (arena, bare, floor, nginx, haproxy)"; done

apt_need nginx:nginx wrk:wrk perf:linux-perf
has haproxy && apt_need haproxy:haproxy
perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 ||
    die "perf cannot count the raw_syscalls:sys_enter tracepoint here (needs root or kernel.perf_event_paranoid <= -1, and tracefs)"
build_release "$BUILD"
need_peer_binaries

start_nginx_pods

PROXY_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
if [[ -n $CONFIG ]]; then
    sed -e "s/PROXY_PORT/$PROXY_PORT/g" -e "s/ADMIN_PORT/$ADMIN_PORT/g" -e "s/PODS/$(pod_endpoints)/g" "$CONFIG" >"$WORK/arena.yaml"
else
    { arena_cluster "" p2c_ewma; arena_route 2s; } >"$WORK/arena.yaml"
fi
mkdir -p "$WORK/nginx"
nginx_proxy_conf "$WORK/nginx" 1 >"$WORK/nginx/nginx.conf"
haproxy_proxy_cfg 1 >"$WORK/haproxy.cfg"
has arena && check_arena_config "$WORK/arena.yaml"
has nginx && { "${NGINX_PROXY[@]}" -t -q >&2 || die "nginx config rejected"; }
has haproxy && { "$HAPROXY" -c -q -f "$WORK/haproxy.cfg" >&2 || die "haproxy config rejected"; }

URL_PATH=/v1/matches
URL="http://127.0.0.1:$PROXY_PORT$URL_PATH"

start_proxy() { # name
    case "$1" in
        arena) run_proxy "$1" 200 "$GATEWAY" run -c "$WORK/arena.yaml" ;;
        bare) bare_cmd; run_proxy "$1" 200 "${BARE_CMD[@]}" ;;
        floor) floor_cmd; run_proxy "$1" 200 "${FLOOR_CMD[@]}" ;;
        nginx) run_proxy "$1" 200 "${NGINX_PROXY[@]}" ;;
        haproxy) run_proxy "$1" 200 "$HAPROXY" -db -f "$WORK/haproxy.cfg" ;;
    esac
    expect_200 "$1" 127.0.0.1 "$PROXY_PORT"
}

# The system calls a proxy makes per request, by name; raw_syscalls:sys_enter counts them all
# (the rest are the calls no name here covers).
CALLS=(read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl
    futex accept4 connect close shutdown getsockopt setsockopt ioctl sched_yield madvise mmap munmap
    mprotect brk clock_nanosleep nanosleep getrandom statx newfstatat openat)
EVENTS=raw_syscalls:sys_enter,context-switches,cpu-migrations
for c in "${CALLS[@]}"; do
    [[ -d /sys/kernel/tracing/events/syscalls/sys_enter_$c || -d /sys/kernel/debug/tracing/events/syscalls/sys_enter_$c ]] &&
        EVENTS+=",syscalls:sys_enter_$c"
done

ticks_split() { # pid... → "utime stime" in ticks over the processes and their descendants
    local u=0 s=0 p stat rest f
    for p in "$@" $(for q in "$@"; do descendants "$q"; done); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        read -ra f <<<"$rest"
        u=$((u + f[11])) s=$((s + f[12]))
    done
    echo "$u $s"
}

# RUNS: proxy requests rps utime_s stime_s ; COUNTS: proxy event count
: >"$WORK/counts.tsv"
measure() { # proxy
    local name=$1 out="$WORK/wrk-$1.txt" pids
    wait_quiet
    start_proxy "$name"
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$URL" >"$WORK/warmup-$name.txt" 2>&1 || die "warm-up against $name failed"
    pids=$(printf '%s\n' "$PROXY_PID" $(descendants "$PROXY_PID") | paste -sd, -)
    local u0 s0 u1 s1 perf_pid rec_pid=
    perf stat -x $'\t' -e "$EVENTS" -p "$pids" -o "$WORK/perf-$name.tsv" &
    perf_pid=$!
    if [[ -n $PROFILE ]]; then
        mkdir -p "$PROFILE"
        perf record -q -e cpu-clock -F 2999 -g -p "$pids" -o "$PROFILE/perf-$name.data" 2>"$WORK/record-$name.log" &
        rec_pid=$!
    fi
    sleep 0.3 # perf attached
    read -r u0 s0 < <(ticks_split "$PROXY_PID")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$URL" >"$out" 2>&1 || die "wrk against $name failed: $(cat "$out")"
    read -r u1 s1 < <(ticks_split "$PROXY_PID")
    kill -INT "$perf_pid" ${rec_pid:+"$rec_pid"} 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    [[ -n $rec_pid ]] && { wait "$rec_pid" 2>/dev/null || true; }
    stop_proxy
    local requests rps _p50 _p99 errors
    read -r requests rps _p50 _p99 errors < <(wrk_parse "$out")
    [[ $requests -gt 0 ]] || die "could not read wrk's request count: $(cat "$out")"
    [[ $errors -eq 0 ]] || log "$name: $errors errors during the run"
    printf '%s\t%d\t%s\t%s\t%s\t%d\n' "$name" "$requests" "$rps" \
        "$(awk -v t=$((u1 - u0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
        "$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" "$errors" >>"$RUNS"
    # perf stat -x: "count<TAB>unit<TAB>event<TAB>..." (comment lines start with '#')
    awk -F'\t' -v p="$name" '$1 ~ /^[0-9]+$/ { e = $3; sub(/^(raw_)?syscalls:sys_enter_?/, "", e); if (e == "") e = "all"; printf "%s\t%s\t%s\n", p, e, $1 }' \
        "$WORK/perf-$name.tsv" >>"$WORK/counts.tsv"
    if [[ -n $rec_pid && -s $PROFILE/perf-$name.data ]]; then
        perf report -i "$PROFILE/perf-$name.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
            grep -v '^$' | head -n 400 >"$PROFILE/perf-$name.txt" || true
    fi
    log "$(tail -n1 "$RUNS" | awk -F'\t' '{ n = $2; printf "%-8s %9d req  %7.0f rps  user %.2f µs/req  sys %.2f µs/req", $1, n, $3, $4 * 1e6 / n, $5 * 1e6 / n }')  syscalls $(awk -F'\t' -v p="$name" -v n="$requests" '$1 == p && $2 == "all" { printf "%.2f", $3 / n }' "$WORK/counts.tsv")/req"
}

RUNS=$WORK/runs.tsv
: >"$RUNS"
log "proxies on 127.0.0.1:$PROXY_PORT: ${PROXIES[*]}; wrk -t1 -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up, perf stat attached"
for p in "${PROXIES[@]}"; do measure "$p"; done

# ---------------------------------------------------------------- report
result_paths syscalls
per_req() { # proxy event → count per request (0 when not counted)
    awk -F'\t' -v p="$1" -v e="$2" -v n="$(awk -F'\t' -v p="$1" '$1 == p { print $2 }' "$RUNS")" \
        '$1 == p && $2 == e { c = $3 } END { printf "%.3f", (n > 0 ? c / n : 0) }' "$WORK/counts.tsv"
}
# the calls that some proxy makes at least once per 100 requests, most frequent first (over all proxies)
SHOWN=$(awk -F'\t' 'FNR == NR { n[$1] = $2; next } $2 != "all" && $2 != "context-switches" && $2 != "cpu-migrations" && n[$1] > 0 { r = $3 / n[$1]; if (r > m[$2]) m[$2] = r }
    END { for (e in m) if (m[e] >= 0.01) printf "%.3f\t%s\n", m[e], e }' "$RUNS" "$WORK/counts.tsv" | sort -gr | cut -f2)

{
    echo "# System calls and kernel time per request — $STAMP"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION (after a $WARMUP warm-up), GET $URL_PATH, ${#POD_BODY}-byte JSON body; 3 × $(nginx_version) pods on ${POD_IPS[*]};"
    echo "each proxy alone with one worker/thread; \`perf stat\` (kernel tracepoints, exact counts) attached to the proxy's processes during the run."
    echo "Machine: $(machine_line); commit $GIT_REV."
    echo
    echo "One run per proxy: the counts per request are stable, the µs figures move ±10 % between runs (compare them with peers.sh rounds)."
    echo
    echo "| proxy | rps | user µs/req | sys µs/req | sys share | syscalls/req | context switches/req | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PROXIES[@]}"; do
        awk -F'\t' -v p="$p" -v l="${LABEL[$p]}" -v sc="$(per_req "$p" all)" -v cs="$(per_req "$p" context-switches)" '$1 == p {
            n = $2; u = $4 * 1e6 / n; s = $5 * 1e6 / n
            printf "| %s | %.0f | %.2f | %.2f | %.0f %% | %.2f | %.3f | %d |\n", l, $3, u, s, (u + s > 0 ? 100 * s / (u + s) : 0), sc, cs, $6 }' "$RUNS"
    done
    echo
    echo "## Per request, by call"
    echo
    printf '| call |'
    for p in "${PROXIES[@]}"; do printf ' %s |' "$p"; done
    printf '\n|---|'
    for _ in "${PROXIES[@]}"; do printf -- '---:|'; done
    printf '\n'
    for e in $SHOWN; do
        printf '| `%s` |' "$e"
        for p in "${PROXIES[@]}"; do printf ' %s |' "$(per_req "$p" "$e")"; done
        printf '\n'
    done
    printf '| other |'
    for p in "${PROXIES[@]}"; do
        awk -v all="$(per_req "$p" all)" -v named="$(for e in "${CALLS[@]}"; do per_req "$p" "$e"; echo; done | awk '{ s += $1 } END { print s }')" \
            'BEGIN { printf " %.3f |", all - named }'
    done
    printf '\n\n'
    echo "<details><summary>Configurations</summary>"
    echo
    show_configs arena.yaml nginx/nginx.conf haproxy.cfg
    echo "bare-pingora: \`--threads 1 --upstream POD...\`"
    echo
    echo "</details>"
} >"$MD"

{
    json_head
    printf '  "load": {"tool": "wrk", "threads": 1, "connections": %d, "duration": "%s", "warmup": "%s", "path": "%s"},\n' \
        "$CONNECTIONS" "$DURATION" "$WARMUP" "$URL_PATH"
    printf '  "proxies": {\n'
    first=1
    for p in "${PROXIES[@]}"; do
        [[ $first -eq 1 ]] || printf ',\n'
        first=0
        awk -F'\t' -v p="$p" -v l="${LABEL[$p]}" '$1 == p { printf "    \"%s\": {\"label\": \"%s\", \"requests\": %d, \"rps\": %s, \"user_seconds\": %s, \"system_seconds\": %s, \"errors\": %d, \"per_request\": {", p, l, $2, $3, $4, $5, $6 }' "$RUNS"
        awk -F'\t' -v p="$p" -v n="$(awk -F'\t' -v p="$p" '$1 == p { print $2 }' "$RUNS")" \
            '$1 == p { printf "%s\"%s\": %.4f", (k++ ? ", " : ""), $2, $3 / n }' "$WORK/counts.tsv"
        printf '}}'
    done
    printf '\n  }\n}\n'
} >"$JSON"

show_results
