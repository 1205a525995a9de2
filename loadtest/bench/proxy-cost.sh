#!/usr/bin/env bash
# proxy-cost.sh — per-request CPU cost of arena-gateway versus a bare pingora round-robin proxy,
# under identical load in the same run (see loadtest/bench/README.md).
#
#   loadtest/bench/proxy-cost.sh [--baseline PATH/arena-gateway] [--duration 10s] [--connections 64] [--rounds 3]
#                                [--warmup 2s] [--quiet-wait 60] [--no-rr] [--no-traces] [--runtimes] [--no-build]
#
# Three nginx pods (one worker each) on 127.0.0.11-13 serve a small JSON body; each proxy runs
# alone with one worker thread; wrk -t1 loads it. Proxies: bare pingora, arena-gateway with its
# defaults (p2c_ewma), arena-gateway with every request-path feature on (the target's variant) and,
# unless --no-rr, arena-gateway with round_robin; unless --no-traces, arena-gateway with tracing
# at a 1 % and a 100 % ratio, exporting OTLP/HTTP to an nginx that accepts and discards the spans;
# with --runtimes, bare pingora and arena (everything on) under both of pingora's runtimes
# (work-stealing multi-thread, and current-thread "no steal"). The proxy's CPU time (utime+stime
# from /proc/PID/stat) over the measured run divided by the requests wrk counted is its cost.
set -euo pipefail

BENCH=proxy-cost
DURATION=10s
CONNECTIONS=64
ROUNDS=3
WARMUP=2s
WITH_RR=1
WITH_TRACES=1
WITH_RUNTIMES=0
BUILD=1
QUIET_WAIT=60
BASELINE=

# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args --duration=DURATION --connections=CONNECTIONS --rounds=ROUNDS --warmup=WARMUP \
    --quiet-wait=QUIET_WAIT --baseline=BASELINE --no-rr:WITH_RR=0 --no-traces:WITH_TRACES=0 --runtimes:WITH_RUNTIMES=1 -- "$@"
need_positive ROUNDS CONNECTIONS
need_match DURATION '^[0-9]+[smh]?$' "--duration like 10s"
need_match WARMUP '^[0-9]+[smh]?$' "--warmup like 2s"
need_match QUIET_WAIT '^[0-9]+$' "--quiet-wait takes whole seconds"
cd "$ROOT"

apt_need nginx:nginx wrk:wrk
build_release "$BUILD"
need_binary "$GATEWAY"
need_binary "$BARE"
if [[ -n $BASELINE ]]; then
    [[ -x $BASELINE ]] || usage_error "--baseline $BASELINE is not an executable"
    cp -p "$BASELINE" "$WORK/bin/arena-gateway-baseline"
    BASE_GATEWAY=$WORK/bin/arena-gateway-baseline
fi

# ---------------------------------------------------------------- upstream pods (nginx)
start_nginx_pods

# ---------------------------------------------------------------- proxies under test
PROXY_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
URL_PATH=/v1/matches

PROXIES=(bare arena-p2c arena-all arena-rel)
[[ $WITH_RR -eq 1 ]] && PROXIES+=(arena-rr)
[[ $WITH_TRACES -eq 1 ]] && PROXIES+=(arena-trace1 arena-trace100)
[[ $WITH_RUNTIMES -eq 1 ]] && PROXIES+=(bare-steal bare-nosteal arena-all-steal arena-all-nosteal)
[[ -n $BASELINE ]] && PROXIES+=(base-p2c base-all)
declare -A LABEL=(
    [bare]="bare-pingora (round robin)"
    [arena-p2c]="arena-gateway (p2c_ewma)"
    [arena-all]="arena-gateway (p2c_ewma, everything on)"
    [arena-rr]="arena-gateway (round_robin)"
    [arena-rel]="arena-gateway (p2c_ewma, a release on the route)"
    [arena-trace1]="arena-gateway (p2c_ewma, tracing at 1 %)"
    [arena-trace100]="arena-gateway (p2c_ewma, tracing at 100 %)"
    [bare-steal]="bare-pingora (round robin, work-stealing runtime)"
    [bare-nosteal]="bare-pingora (round robin, current-thread runtime)"
    [arena-all-steal]="arena-gateway (everything on, work_stealing: true)"
    [arena-all-nosteal]="arena-gateway (everything on, work_stealing: false)"
    [base-p2c]="baseline arena-gateway (p2c_ewma)"
    [base-all]="baseline arena-gateway (p2c_ewma, everything on)"
)
{ arena_cluster "" p2c_ewma; arena_route 2s; } >"$WORK/arena-p2c.yaml"
{ arena_cluster "" round_robin; arena_route 2s; } >"$WORK/arena-rr.yaml"
arena_all_config >"$WORK/arena-all.yaml"
arena_release_config >"$WORK/arena-rel.yaml"
for p in arena-p2c arena-all arena-rr arena-rel; do check_arena_config "$WORK/$p.yaml"; done
if [[ $WITH_RUNTIMES -eq 1 ]]; then
    for ws in true false; do
        sed "s/^server: { threads: 1,/server: { threads: 1, work_stealing: $ws,/" "$WORK/arena-all.yaml" >"$WORK/arena-all-$([[ $ws == true ]] && echo steal || echo nosteal).yaml"
    done
    for p in arena-all-steal arena-all-nosteal; do
        grep -q 'work_stealing' "$WORK/$p.yaml" || die "could not set work_stealing in $p.yaml"
        check_arena_config "$WORK/$p.yaml"
    done
fi

if [[ $WITH_TRACES -eq 1 ]]; then
    start_otlp_sink
    { arena_cluster "" p2c_ewma; arena_route 2s; tracing_block 1%; } >"$WORK/arena-trace1.yaml"
    { arena_cluster "" p2c_ewma; arena_route 2s; tracing_block 100%; } >"$WORK/arena-trace100.yaml"
    for p in arena-trace1 arena-trace100; do check_arena_config "$WORK/$p.yaml"; done
fi

start_proxy() { # name
    case "$1" in
        bare)
            bare_cmd
            run_proxy bare 100 "${BARE_CMD[@]}"
            grep -q 'bare-pingora listening on' "$WORK/bare.log" || die "bare-pingora printed no banner"
            ;;
        bare-steal | bare-nosteal)
            bare_cmd
            [[ $1 == bare-nosteal ]] && BARE_CMD+=(--no-work-stealing)
            run_proxy "$1" 100 "${BARE_CMD[@]}"
            ;;
        arena-all-steal | arena-all-nosteal) run_proxy "$1" 100 "$GATEWAY" run -c "$WORK/$1.yaml" ;;
        arena-p2c | arena-all | arena-rr | arena-rel | arena-trace1 | arena-trace100)
            run_proxy "$1" 100 "$GATEWAY" run -c "$WORK/$1.yaml"
            ;;
        base-p2c | base-all) run_proxy "$1" 100 "$BASE_GATEWAY" run -c "$WORK/arena-${1#base-}.yaml" ;;
        *) die "unknown proxy $1" ;;
    esac
    # Status check before loading: the route must answer 200.
    expect_200 "$1" 127.0.0.1 "$PROXY_PORT"
}

# RUNS: round proxy requests rps p50 p99 cpu_s us_per_req errors elapsed_s other_cores (wrk_measure)
RUN_NAME_WIDTH=10
log "proxy on 127.0.0.1:$PROXY_PORT, ${#PROXIES[@]} proxies × $ROUNDS round(s), wrk -t1 -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up"
each_round wrk_measure "${PROXIES[@]}"

# ---------------------------------------------------------------- report
result_paths proxy-cost
CPU_MODEL=$(cpu_model)
NGINX_VERSION=$(nginx_version)
BARE_US=$(median 8 bare)
TARGET_RATIO=1.10
TOTAL_ERRORS=$(sum_col 9)
MAX_OTHER=$(max_others)
# Per-round ratio PROXY / bare: shows how much of the spread is drift shared by both.
paired_list() { # proxy → its per-round ratios over bare, in round order
    awk -F'\t' -v p="$1" '$2 == "bare" { b[$1] = $8 } $2 == p { a[$1] = $8 }
        END { for (r in b) if (r in a && b[r] > 0) printf "%d %.3f\n", r, a[r] / b[r] }' "$RUNS" | sort -n | awk '{ print $2 }'
}
ratio() { awk -v a="$(median 8 "$1")" -v b="$BARE_US" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; } # proxy → median over bare
verdict() { awk -v r="$1" -v t="$TARGET_RATIO" 'BEGIN { print (r <= t ? "PASS" : "FAIL") }'; }
RATIO=$(ratio arena-p2c)
RATIO_ALL=$(ratio arena-all)
VERDICT=$(verdict "$RATIO_ALL")
PAIRED=$(paired_list arena-p2c | paste -sd ' ' -)
PAIRED_ALL=$(paired_list arena-all | paste -sd ' ' -)
PAIRED_MEDIAN=$(paired_list arena-p2c | median_of)
PAIRED_ALL_MEDIAN=$(paired_list arena-all | median_of)

{
    echo "# Proxy cost — $STAMP"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (after a $WARMUP warm-up), GET $URL_PATH, ${#POD_BODY}-byte JSON body;"
    echo "3 × $NGINX_VERSION pods (1 worker each) on ${POD_IPS[*]}; each proxy alone, 1 worker thread."
    echo "Machine: $(machine_line); commit $GIT_REV; $ROUNDS round(s), order rotated per round."
    echo
    echo "Medians over rounds. CPU µs/req = (utime+stime of the whole proxy process during the measured run) / requests."
    echo
    echo "| proxy | rps | p50 ms | p99 ms | CPU µs/req | × bare | peak RSS MiB | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PROXIES[@]}"; do
        us=$(median 8 "$p")
        awk -v l="${LABEL[$p]}" -v rps="$(median 4 "$p")" -v p50="$(median 5 "$p")" -v p99="$(median 6 "$p")" \
            -v us="$us" -v b="$BARE_US" -v e="$(sum_col 9 "$p")" -v rss="$(median 12 "$p")" 'BEGIN {
            printf "| %s | %.0f | %.2f | %.2f | %.2f | %.3f | %.1f | %d |\n", l, rps, p50, p99, us, (b > 0 ? us / b : 0), rss, e
        }'
    done
    echo
    echo "**arena-gateway with everything on / bare pingora CPU per request: $RATIO_ALL** (target ≤ $TARGET_RATIO: $VERDICT);"
    echo "with its defaults (p2c_ewma): $RATIO ($(verdict "$RATIO"))."
    echo
    echo "Same ratios paired within each round (arena run / bare run of that round): everything on $PAIRED_ALL (median $PAIRED_ALL_MEDIAN); defaults $PAIRED (median $PAIRED_MEDIAN)."
    echo
    awk -v a="$(median 8 arena-rel)" -v b="$(median 8 arena-p2c)" 'BEGIN {
        if (b > 0) printf "**A release on the route (50/50 split, both versions judged) / without, CPU µs per request: %.2f / %.2f = %.3f** (target < 1.03)\n\n", a, b, a / b }'
    if [[ $WITH_TRACES -eq 1 ]]; then
        awk -v a="$(median 8 arena-trace1)" -v h="$(median 8 arena-trace100)" -v b="$(median 8 arena-p2c)" 'BEGIN {
            if (b > 0) printf "**Tracing / off, CPU µs per request: at 1 %% %.2f / %.2f = %.3f (target ≤ 1.05: %s); at 100 %% %.2f / %.2f = %.3f**\n\n", a, b, a / b, (a / b <= 1.05 ? "PASS" : "FAIL"), h, b, h / b }'
        echo "Tracing variants export OTLP/HTTP to an nginx sink on 127.0.0.15 (spans accepted and discarded); its CPU is not the proxy's."
        echo
    fi
    if [[ $WITH_RUNTIMES -eq 1 ]]; then
        awk -v bs="$(median 8 bare-steal)" -v bn="$(median 8 bare-nosteal)" -v as="$(median 8 arena-all-steal)" -v an="$(median 8 arena-all-nosteal)" 'BEGIN {
            if (bs > 0 && as > 0) printf "**Runtimes, CPU µs per request (current-thread / work-stealing): bare pingora %.2f / %.2f = %.3f; arena everything on %.2f / %.2f = %.3f; arena current-thread / bare work-stealing = %.3f**\n\n", bn, bs, bn / bs, an, as, an / as, an / bs }'
    fi
    if [[ -n $BASELINE ]]; then
        for v in p2c all; do
            awk -v a="$(median 8 "arena-$v")" -v b="$(median 8 "base-$v")" -v l="${LABEL[arena-$v]}" 'BEGIN {
                if (b > 0) printf "**%s / its baseline build, CPU µs per request: %.2f / %.2f = %.3f**\n\n", l, a, b, a / b }'
        done
    fi
    run_warnings "$TOTAL_ERRORS" "$MAX_OTHER"
    wrk_runs_details
} >"$MD"

{
    printf '{\n  "timestamp": "%s",\n  "commit": "%s",\n' "$STAMP" "$GIT_REV"
    printf '  "machine": {"cpus": %d, "cpu_model": "%s", "kernel": "%s", "clk_tck": %d},\n' \
        "$(nproc)" "${CPU_MODEL//\"/}" "$(uname -r)" "$CLK_TCK"
    printf '  "load": {"tool": "wrk", "threads": 1, "connections": %d, "duration": "%s", "warmup": "%s", "path": "%s", "body_bytes": %d},\n' \
        "$CONNECTIONS" "$DURATION" "$WARMUP" "$URL_PATH" "${#POD_BODY}"
    printf '  "upstreams": {"server": "%s", "workers": 1, "addresses": ["%s:%d", "%s:%d", "%s:%d"]},\n' \
        "$NGINX_VERSION" "${POD_IPS[0]}" "$POD_PORT" "${POD_IPS[1]}" "$POD_PORT" "${POD_IPS[2]}" "$POD_PORT"
    printf '  "rounds": %d,\n  "target_ratio": %s,\n  "ratio_arena_all_over_bare": %s,\n  "ratio_arena_p2c_over_bare": %s,\n  "verdict": "%s",\n  "total_errors": %d,\n' \
        "$ROUNDS" "$TARGET_RATIO" "$RATIO_ALL" "$RATIO" "$VERDICT" "$TOTAL_ERRORS"
    printf '  "paired_ratios_arena_all_over_bare": [%s],\n  "paired_ratio_all_median": %s,\n' "${PAIRED_ALL// /, }" "$PAIRED_ALL_MEDIAN"
    printf '  "paired_ratios_arena_p2c_over_bare": [%s],\n  "paired_ratio_median": %s,\n' "${PAIRED// /, }" "$PAIRED_MEDIAN"
    wrk_json_tail "${PROXIES[@]}"
} >"$JSON"

show_results
[[ $TOTAL_ERRORS -eq 0 ]] || exit 3
