#!/usr/bin/env bash
# scaling.sh — multi-core: the peers.sh benchmark with 1 and 2 (or more) worker threads per proxy,
# saturated and at fixed fractions of the saturation rate, arena-gateway next to bare pingora,
# nginx and haproxy (see loadtest/bench/README.md).
#
#   loadtest/bench/scaling.sh [--only arena,bare,nginx,haproxy] [--threads 1,2] [--duration 10s]
#                             [--warmup 2s] [--rounds 1] [--rates 50,80] [--connections 64]
#                             [--quiet-wait 60] [--no-build]
#
# The three nginx pods and the tuned proxy configurations of peers.sh; only the worker count
# changes: arena `server: { threads: N }`, bare-pingora `--threads N`, nginx `worker_processes N`,
# haproxy `nbthread N`. (1) Saturation, per proxy and thread count N: a WARMUP of wrk, then
# `wrk -tN -c(CONNECTIONS×N) -dDURATION --latency` → rps, p50, p99 and the proxy's utime+stime
# per request and as a share of N cores. (2) Fixed rates: RATE% of arena's median saturated rps at
# N threads (the first proxy's when arena is not in --only) — the same absolute rates for every
# proxy at that N — each an open-loop arena-loadtest run (--threads N, CONNECTIONS×N connections,
# DURATION, latency from the intended send time) → p99, p99.9, max, errors, the proxy's CPU per
# request, and arena-loadtest's validity verdict (INVALID: the generator fell behind). The report
# adds the 1 → N threads ratios and the target line "arena p99 at 80 % of saturation ≤ bare
# pingora's". Every item's order rotates per round; --rounds > 1 gives medians. Exit status 3:
# some request failed (non-2xx, socket errors, timeouts or drops) — the figures are not valid.
set -euo pipefail

BENCH=scaling
ONLY=arena,bare,nginx,haproxy
THREADS=1,2
DURATION=10s
WARMUP=2s
ROUNDS=1
RATES=50,80
CONNECTIONS=64
BUILD=1
QUIET_WAIT=60

# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args --only=ONLY --threads=THREADS --duration=DURATION --warmup=WARMUP --rounds=ROUNDS \
    --rates=RATES --connections=CONNECTIONS --quiet-wait=QUIET_WAIT -- "$@"
need_positive ROUNDS CONNECTIONS
need_match ONLY '^[a-z]+(,[a-z]+)*$' "--only takes a comma-separated list of arena, bare, nginx, haproxy"
need_match THREADS '^[1-9][0-9]?(,[1-9][0-9]?)*$' "--threads takes a comma-separated list of thread counts (1-99), like 1,2"
need_match RATES '^([1-9][0-9]?|100)(,([1-9][0-9]?|100))*$' "--rates takes percentages of the saturation rate (1-100), like 50,80"
need_match DURATION '^[1-9][0-9]*[smh]$' "--duration with a unit, like 10s"
need_match WARMUP '^[1-9][0-9]*[smh]$' "--warmup with a unit, like 2s"
need_match QUIET_WAIT '^[0-9]+$' "--quiet-wait takes whole seconds"
cd "$ROOT"

IFS=, read -ra PROXIES <<<"$ONLY"
IFS=, read -ra NTS <<<"$THREADS"
IFS=, read -ra PCTS <<<"$RATES"
declare -A LABEL=()
peer_labels
declare -A SEEN=()
for p in "${PROXIES[@]}"; do
    # floor-tokio runs one thread whatever it is told: nothing to scale
    [[ -n ${LABEL[$p]:-} && $p != floor ]] || usage_error "unknown proxy '$p' in --only (arena, bare, nginx, haproxy)"
    [[ -z ${SEEN[$p]:-} ]] || usage_error "--only names $p twice"
    SEEN[$p]=1
done
SEEN=()
for n in "${NTS[@]}"; do
    [[ -z ${SEEN[t$n]:-} ]] || usage_error "--threads names $n twice"
    SEEN[t$n]=1
done
for pc in "${PCTS[@]}"; do
    [[ -z ${SEEN[r$pc]:-} ]] || usage_error "--rates names $pc twice"
    SEEN[r$pc]=1
done
# The rates run from low to high on one proxy start; the highest one is the report's "R80".
mapfile -t PCTS < <(printf '%s\n' "${PCTS[@]}" | sort -n)
TOP_PCT=${PCTS[-1]}
RATE_REF=arena
has arena || RATE_REF=${PROXIES[0]}
VERDICT_PCT=80 # the issue's target: "p99 at 80 % of saturation ≤ bare pingora's"

apt_need nginx:nginx wrk:wrk jq:jq
has haproxy && apt_need haproxy:haproxy
build_release "$BUILD"
need_binary "$LOADTEST"
need_peer_binaries
MAX_N=$(printf '%s\n' "${NTS[@]}" | sort -n | tail -n1)
(( MAX_N <= $(nproc) )) || log "note: --threads $MAX_N is more than this machine's $(nproc) CPU(s)"

# ---------------------------------------------------------------- pods
start_nginx_pods

# ---------------------------------------------------------------- proxy configurations, one set per thread count
PROXY_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
URL_PATH=/v1/matches

write_configs() { # N — arena-Nt.yaml, nginx-Nt/nginx.conf, haproxy-Nt.cfg: peers.sh's, with N workers
    local n=$1 dir="$WORK/nginx-${1}t"
    { arena_cluster "peers.sh's configuration with $n worker thread(s)" p2c_ewma; arena_route 2s; } |
        sed "s/^server: { threads: 1,/server: { threads: $n,/" >"$WORK/arena-${n}t.yaml"
    grep -q "^server: { threads: $n," "$WORK/arena-${n}t.yaml" || die "could not set server.threads to $n in arena-${n}t.yaml"

    mkdir -p "$dir"
    nginx_proxy_conf "$dir" "$n" >"$dir/nginx.conf"
    grep -q "^worker_processes $n;" "$dir/nginx.conf" || die "could not set worker_processes to $n in nginx-${n}t/nginx.conf"

    haproxy_proxy_cfg "$n" >"$WORK/haproxy-${n}t.cfg"

    has arena && check_arena_config "$WORK/arena-${n}t.yaml"
    has nginx && { nginx_cmd "$n"; "${NGINX_CMD[@]}" -t -q >&2 || die "nginx config nginx-${n}t/nginx.conf rejected"; }
    has haproxy && { "$HAPROXY" -c -q -f "$WORK/haproxy-${n}t.cfg" >&2 || die "haproxy config haproxy-${n}t.cfg rejected"; }
    return 0
}

nginx_cmd() { NGINX_CMD=("$NGINX" -p "$WORK/nginx-${1}t" -c "$WORK/nginx-${1}t/nginx.conf" -e "$WORK/nginx-${1}t/error.log"); }

# scenario N PCT RATE — the open-loop scenario of one fixed-rate run, checked by arena-loadtest.
scenario() {
    local n=$1 pct=$2 rate=$3 file="$WORK/load-${1}t-$2.yaml"
    cat >"$file" <<EOF
# generated by loadtest/bench/scaling.sh: open loop at $pct % of $RATE_REF's saturated rps with $n thread(s)
name: scaling-${n}t-$pct
description: constant $rate rps for $DURATION, latency from the intended send time
target: http://127.0.0.1:$PROXY_PORT
mode: open
http: { version: 1, connections: $((CONNECTIONS * n)), timeout: 2s, max_in_flight: 10000 }
stages:
  - { duration: $DURATION, rate: $rate }
requests:
  - { method: GET, path: $URL_PATH }
errors: non_2xx
EOF
    "$LOADTEST" check "$file" >"$WORK/check-${n}t-$pct.txt" 2>&1 ||
        die "arena-loadtest rejects the generated scenario $file: $(cat "$WORK/check-${n}t-$pct.txt")"
}

for n in "${NTS[@]}"; do
    write_configs "$n"
    scenario "$n" "${PCTS[0]}" 1000 # fail now, not after the saturation runs
done

version_of() {
    case "$1" in
        arena) echo "arena-gateway built $(binary_stamp "$GATEWAY")" ;;
        bare) echo "bare-pingora 0.9.1 built $(binary_stamp "$BARE")" ;;
        nginx) nginx_version ;;
        haproxy) "$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print "haproxy " $3 }' ;;
    esac
}

start_proxy() { # name threads
    local name=$1 n=$2 ip
    case "$name" in
        arena) run_proxy "$name-${n}t" 200 "$GATEWAY" run -c "$WORK/arena-${n}t.yaml" ;;
        bare)
            BARE_CMD=("$BARE" --listen "127.0.0.1:$PROXY_PORT" --threads "$n") # bare_cmd, with N threads
            for ip in "${POD_IPS[@]}"; do BARE_CMD+=(--upstream "$ip:$POD_PORT"); done
            run_proxy "$name-${n}t" 200 "${BARE_CMD[@]}"
            ;;
        nginx) nginx_cmd "$n"; run_proxy "$name-${n}t" 200 "${NGINX_CMD[@]}" ;;
        haproxy) run_proxy "$name-${n}t" 200 "$HAPROXY" -db -f "$WORK/haproxy-${n}t.cfg" ;;
        *) die "unknown proxy $name" ;;
    esac
    local code
    for _ in $(seq 50); do
        code=$(http_status 127.0.0.1 "$PROXY_PORT" "$URL_PATH")
        [[ $code == *" 200"* ]] && return 0
        sleep 0.1
    done
    cat "$WORK/$name-${n}t.log" >&2
    die "$name with $n thread(s) answered '$code' instead of 200 on $URL_PATH"
}

warm_up() { # name threads tag — wrk at saturation for WARMUP
    local out="$WORK/warmup-$3-$1-${2}t.txt"
    wrk -t"$2" -c$((CONNECTIONS * $2)) -d"$WARMUP" "http://127.0.0.1:$PROXY_PORT$URL_PATH" >"$out" 2>&1 ||
        die "warm-up against $1 with $2 thread(s) failed: $(cat "$out")"
}

# ---------------------------------------------------------------- (1) saturation
# RUNS (wrk_measure's first 12 columns, so median/sum_col/max_others apply; key = PROXY-Nt):
#   1 round  2 key  3 requests  4 rps  5 p50_ms  6 p99_ms  7 cpu_s  8 us_per_req  9 errors
#   10 elapsed_s  11 others_cores  12 peak_rss_mib  13 threads  14 proxy  15 % of N cores
sat_measure() { # round PROXY@N
    local round=$1 name=${2%@*} n=${2#*@} key out url
    key="$name-${n}t" out="$WORK/wrk-$round-$key.txt" url="http://127.0.0.1:$PROXY_PORT$URL_PATH"
    wait_quiet
    start_proxy "$name" "$n"
    warm_up "$name" "$n" "sat-$round"
    local t0 t1 n0 n1 b0 b1 p0 p1 w0 w1 rss
    times >"$WORK/times0"
    b0=$(busy_ticks)
    p0=$(tree_ticks "${POD_PIDS[@]}")
    t0=$(tree_ticks "$PROXY_PID")
    n0=$(date +%s%N)
    wrk -t"$n" -c$((CONNECTIONS * n)) -d"$DURATION" --latency "$url" >"$out" 2>&1 ||
        die "wrk against $name with $n thread(s) failed: $(cat "$out")"
    n1=$(date +%s%N)
    t1=$(tree_ticks "$PROXY_PID")
    p1=$(tree_ticks "${POD_PIDS[@]}")
    b1=$(busy_ticks)
    times >"$WORK/times1"
    rss=$(tree_peak_rss_kib "$PROXY_PID")
    stop_proxy
    w0=$(children_ticks "$WORK/times0")
    w1=$(children_ticks "$WORK/times1")
    # Machine CPU not spent by the proxy, the pods or wrk during the measured run.
    local other=$(((b1 - b0) - (t1 - t0) - (p1 - p0) - (w1 - w0)))
    local requests rps p50 p99 errors
    read -r requests rps p50 p99 errors < <(wrk_parse "$out")
    [[ $requests -gt 0 ]] || die "could not read wrk's request count against $key: $(cat "$out")"
    awk -v r="$round" -v k="$key" -v n="$requests" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v dt=$((t1 - t0)) \
        -v hz="$CLK_TCK" -v e="$errors" -v ns=$((n1 - n0)) -v o="$other" -v rss="$rss" -v th="$n" -v p="$name" 'BEGIN {
        cpu = dt / hz; secs = ns / 1e9
        printf "%s\t%s\t%d\t%.1f\t%.3f\t%.3f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%.1f\t%d\t%s\t%.1f\n", r, k, n, rps, p50, p99,
            cpu, cpu * 1e6 / n, e, secs, (o > 0 ? o : 0) / hz / secs, rss / 1024, th, p, 100 * cpu / secs / th
    }' >>"$RUNS"
    log "$(tail -n1 "$RUNS" | awk -F'\t' '{
        printf "round %s sat  %-10s %9d req  %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  %6.2f µs/req (%3.0f%% of %d core(s))  errors %d  others %.2f cores",
            $1, $2, $3, $4, $5, $6, $8, $15, $13, $9, $11 }')"
}

SAT_ITEMS=()
for n in "${NTS[@]}"; do for p in "${PROXIES[@]}"; do SAT_ITEMS+=("$p@$n"); done; done
log "pods ${POD_IPS[*]}:$POD_PORT, proxy 127.0.0.1:$PROXY_PORT: ${PROXIES[*]} × threads ${NTS[*]} × $ROUNDS round(s)"
log "(1) saturation: wrk -tN -c$CONNECTIONS×N -d$DURATION after a $WARMUP warm-up"
each_round sat_measure "${SAT_ITEMS[@]}"

# ---------------------------------------------------------------- (2) fixed rates
declare -A RATE_OF=() SAT_REF=()
for n in "${NTS[@]}"; do
    SAT_REF[$n]=$(median 4 "$RATE_REF-${n}t")
    for pc in "${PCTS[@]}"; do
        RATE_OF[$n:$pc]=$(awk -v r="${SAT_REF[$n]}" -v p="$pc" 'BEGIN { printf "%d", r * p / 100 + 0.5 }')
        [[ ${RATE_OF[$n:$pc]} -gt 0 ]] || die "$RATE_REF's saturated rate with $n thread(s) is ${SAT_REF[$n]} rps: no rate to run at"
        scenario "$n" "$pc" "${RATE_OF[$n:$pc]}"
    done
    log "rates with $n thread(s): $(for pc in "${PCTS[@]}"; do printf '%s %% = %s rps; ' "$pc" "${RATE_OF[$n:$pc]}"; done)of $RATE_REF's ${SAT_REF[$n]} rps"
done

# RATE_RUNS, one row per round × proxy × N × rate:
#   1 round  2 key  3 pct  4 rate  5 requests  6 achieved_rps  7 p50_ms  8 p99_ms  9 p999_ms
#   10 max_ms  11 errors (+dropped)  12 validity  13 cpu_s  14 us_per_req  15 others_cores
#   16 lag_p99_ms  17 threads  18 proxy
RATE_RUNS=$WORK/rate-runs.tsv
: >"$RATE_RUNS"
rate_measure() { # round PROXY@N — one proxy start, a warm-up, then every rate from low to high
    local round=$1 name=${2%@*} n=${2#*@} key pc
    key="$name-${n}t"
    wait_quiet
    start_proxy "$name" "$n"
    warm_up "$name" "$n" "rate-$round"
    for pc in "${PCTS[@]}"; do
        local lt="$WORK/lt-$round-$key-$pc" rc=0 report row t0 t1 b0 b1 p0 p1 w0 w1 n0 n1
        mkdir -p "$lt"
        times >"$WORK/times0"
        b0=$(busy_ticks)
        p0=$(tree_ticks "${POD_PIDS[@]}")
        t0=$(tree_ticks "$PROXY_PID")
        n0=$(date +%s%N)
        "$LOADTEST" run "$WORK/load-${n}t-$pc.yaml" --threads "$n" --quiet --out "$lt" >"$lt.txt" 2>&1 || rc=$?
        n1=$(date +%s%N)
        t1=$(tree_ticks "$PROXY_PID")
        p1=$(tree_ticks "${POD_PIDS[@]}")
        b1=$(busy_ticks)
        times >"$WORK/times1"
        kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/$key.log" >&2; die "$key exited during the $pc % run"; }
        w0=$(children_ticks "$WORK/times0")
        w1=$(children_ticks "$WORK/times1")
        report=$(find "$lt" -name '*.json' -print -quit)
        [[ -n $report ]] || die "arena-loadtest wrote no report against $key at $pc % (exit $rc): $(tail -n 20 "$lt.txt")"
        cp "$report" "$WORK/report-$round-$key-$pc.json"
        row=$(jq -r '[.totals.requests, .achieved_rps, .latency_us.p50 / 1000, .latency_us.p99 / 1000,
            .latency_us.p999 / 1000, .latency_us.max / 1000, .totals.errors + .totals.dropped,
            (if .validity.valid then "valid" else "INVALID: " + (.validity.reasons | join("; ")) end),
            .schedule_lag_us.p99 / 1000] | @tsv' "$report") || die "cannot read the arena-loadtest report $report"
        local requests achieved p50 p99 p999 mx errors validity lag
        IFS=$'\t' read -r requests achieved p50 p99 p999 mx errors validity lag <<<"$row"
        # Machine CPU not spent by the proxy, the pods or the generator during the run.
        awk -v r="$round" -v k="$key" -v pc="$pc" -v rate="${RATE_OF[$n:$pc]}" -v n="$requests" -v a="$achieved" \
            -v p50="$p50" -v p99="$p99" -v p999="$p999" -v mx="$mx" -v e="$errors" -v v="$validity" -v dt=$((t1 - t0)) \
            -v o=$(((b1 - b0) - (t1 - t0) - (p1 - p0) - (w1 - w0))) -v hz="$CLK_TCK" -v ns=$((n1 - n0)) -v lag="$lag" \
            -v th="$n" -v p="$name" 'BEGIN {
            cpu = dt / hz; secs = ns / 1e9
            printf "%s\t%s\t%s\t%d\t%d\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.3f\t%d\t%s\n", r, k, pc, rate, n, a,
                p50, p99, p999, mx, e, v, cpu, (n > 0 ? cpu * 1e6 / n : 0), (o > 0 ? o : 0) / hz / secs, lag, th, p
        }' >>"$RATE_RUNS"
        log "$(tail -n1 "$RATE_RUNS" | awk -F'\t' '{
            printf "round %s %3s%% %-10s %6d rps: achieved %8.1f  p99 %7.2f ms  p99.9 %7.2f ms  max %7.2f ms  errors %d  %6.2f µs/req  others %.2f  %s",
                $1, $3, $2, $4, $6, $8, $9, $10, $11, $14, $15, $12 }')"
    done
    stop_proxy
}

log "(2) fixed rates: arena-loadtest open loop, --threads N, $CONNECTIONS×N connections, $DURATION per rate"
each_round rate_measure "${SAT_ITEMS[@]}"

# ---------------------------------------------------------------- report
result_paths scaling
# rmed COLUMN KEY PCT → median over rounds of a fixed-rate column
rmed() { awk -F'\t' -v c="$1" -v k="$2" -v pc="$3" '$2 == k && $3 == pc { print $c }' "$RATE_RUNS" | median_of; }
rinvalid() { awk -F'\t' -v k="$1" -v pc="$2" '$2 == k && $3 == pc && $12 != "valid"' "$RATE_RUNS" | wc -l; } # KEY PCT → INVALID runs
rerrors() { awk -F'\t' -v k="${1:-}" 'k == "" || $2 == k { s += $11 } END { print s + 0 }' "$RATE_RUNS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "—" }'; }
REF=bare
has bare || REF=${PROXIES[0]}
T0=${NTS[0]}
SAT_ERRORS=$(sum_col 9)
RATE_ERRORS=$(rerrors)
TOTAL_ERRORS=$((SAT_ERRORS + RATE_ERRORS))
INVALID=$(awk -F'\t' '$12 != "valid"' "$RATE_RUNS" | wc -l)
MAX_OTHER=$(awk -F'\t' '{ o = (FILENAME == ARGV[1] ? $11 : $15) } o > m { m = o } END { printf "%.2f", m + 0 }' "$RUNS" "$RATE_RUNS")

# The target: arena's p99 at 80 % of its saturated rate ≤ bare pingora's at the same rate.
VERDICTS=$WORK/verdicts.tsv # threads rate arena_p99 bare_p99 verdict note
: >"$VERDICTS"
verdict_text() {
    if ! has arena || ! has bare; then
        printf '%s\n\n' "Target \"arena p99 at $VERDICT_PCT % of saturation ≤ bare pingora's\": not evaluated (needs arena and bare in --only)."
        return 0
    fi
    if [[ " ${PCTS[*]} " != *" $VERDICT_PCT "* ]]; then
        printf '%s\n\n' "Target \"arena p99 at $VERDICT_PCT % of saturation ≤ bare pingora's\": not evaluated (needs $VERDICT_PCT in --rates)."
        return 0
    fi
    local n a b v note
    for n in "${NTS[@]}"; do
        a=$(rmed 8 "arena-${n}t" "$VERDICT_PCT")
        b=$(rmed 8 "bare-${n}t" "$VERDICT_PCT")
        v=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a <= b ? "PASS" : "FAIL") }')
        note=
        if (($(rinvalid "arena-${n}t" "$VERDICT_PCT") + $(rinvalid "bare-${n}t" "$VERDICT_PCT") > 0)); then
            note="a run was flagged INVALID by arena-loadtest (generator lag): not conclusive"
        fi
        if (($(rerrors "arena-${n}t") + $(rerrors "bare-${n}t") > 0)); then
            note="${note:+$note; }requests failed: not valid"
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${RATE_OF[$n:$VERDICT_PCT]}" "$a" "$b" "$v" "$note" >>"$VERDICTS"
        awk -F'\t' -v pc="$VERDICT_PCT" '{
            printf "**%d thread(s): arena p99 at %d %% of saturation (%d req/s) %.2f ms vs bare pingora %.2f ms → %s**%s\n\n",
                $1, pc, $2, $3, $4, $5, ($6 == "" ? "" : " (" $6 ")") }' < <(tail -n1 "$VERDICTS")
    done
}

{
    echo "# Scaling: 1 → N worker threads — $STAMP"
    echo
    echo "Saturation: \`wrk -tN -c$CONNECTIONS×N -d$DURATION --latency\` after a $WARMUP warm-up (N connection sets of $CONNECTIONS), GET $URL_PATH, ${#POD_BODY}-byte JSON body."
    echo "Fixed rates: arena-loadtest open loop (\`--threads N\`, $CONNECTIONS×N connections, $DURATION per rate, latency from each request's intended send time),"
    echo "at $(printf '%s %%, ' "${PCTS[@]}" | sed 's/, $//') of $RATE_REF's median saturated rps with the same N — the same absolute rates for every proxy."
    echo "3 × $(nginx_version) pods (1 worker each) on ${POD_IPS[*]}; each proxy alone with peers.sh's tuned configuration and N workers/threads."
    echo "Machine: $(machine_line); commit $GIT_REV; $ROUNDS round(s), order rotated per round (medians)."
    echo
    echo "**Caveat:** this machine has $(nproc) CPU(s). With N threads the proxy shares them with wrk / arena-loadtest (N threads each)"
    echo "and the three nginx pods, so the $MAX_N-thread figures measure contention for the cores as much as the proxy's own scaling:"
    echo "\`% of N cores\` shows how much of its N cores the proxy got, \`others\` the CPU used by processes outside the benchmark."
    echo
    echo "CPU µs/req = utime+stime of the proxy's processes (nginx / haproxy: all of them) during the run / requests completed."
    echo
    for n in "${NTS[@]}"; do
        echo "## $n thread(s), saturated"
        echo
        echo "| proxy | rps | p50 ms | p99 ms | CPU µs/req | × $REF | % of $n core(s) | others (cores) | peak RSS MiB | errors |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for p in "${PROXIES[@]}"; do
            k="$p-${n}t"
            awk -v l="${LABEL[$p]}" -v rps="$(median 4 "$k")" -v p50="$(median 5 "$k")" -v p99="$(median 6 "$k")" \
                -v us="$(median 8 "$k")" -v b="$(median 8 "$REF-${n}t")" -v pc="$(median 15 "$k")" -v o="$(median 11 "$k")" \
                -v rss="$(median 12 "$k")" -v e="$(sum_col 9 "$k")" 'BEGIN {
                printf "| %s | %.0f | %.2f | %.2f | %.2f | %.3f | %.0f %% | %.2f | %.1f | %d |\n", l, rps, p50, p99, us, (b > 0 ? us / b : 0), pc, o, rss, e
            }'
        done
        echo
    done

    if [[ ${#NTS[@]} -gt 1 ]]; then
        for n in "${NTS[@]:1}"; do
            echo "## $T0 → $n threads"
            echo
            echo "Ideal scaling: rps × $(awk -v a="$n" -v b="$T0" 'BEGIN { printf "%g", a / b }'), CPU µs/req × 1.00. p99 @ R$TOP_PCT = p99 at $TOP_PCT % of $RATE_REF's saturated rate with that many threads."
            echo
            echo "| proxy | rps ${T0}t | rps ${n}t | rps × | µs/req ${T0}t | µs/req ${n}t | µs/req × | p99 ${T0}t ms | p99 ${n}t ms | p99 change | p99 @ R$TOP_PCT ${T0}t ms | p99 @ R$TOP_PCT ${n}t ms | change |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            for p in "${PROXIES[@]}"; do
                a="$p-${T0}t" b="$p-${n}t"
                awk -v l="${LABEL[$p]}" -v r0="$(median 4 "$a")" -v r1="$(median 4 "$b")" -v u0="$(median 8 "$a")" -v u1="$(median 8 "$b")" \
                    -v s0="$(median 6 "$a")" -v s1="$(median 6 "$b")" -v f0="$(rmed 8 "$a" "$TOP_PCT")" -v f1="$(rmed 8 "$b" "$TOP_PCT")" '
                    function x(a, b) { return (b > 0 ? sprintf("%.2f", a / b) : "—") }
                    function d(a, b) { return sprintf("%+.2f ms (×%s)", b - a, x(b, a)) }
                    BEGIN {
                    printf "| %s | %.0f | %.0f | %s | %.2f | %.2f | %s | %.2f | %.2f | %s | %.2f | %.2f | %s |\n",
                        l, r0, r1, x(r1, r0), u0, u1, x(u1, u0), s0, s1, d(s0, s1), f0, f1, d(f0, f1)
                }'
            done
            echo
        done
    fi

    echo "## p99 at fixed rates"
    echo
    for n in "${NTS[@]}"; do
        echo "- $n thread(s): $(for pc in "${PCTS[@]}"; do printf 'R%s = %s req/s, ' "$pc" "${RATE_OF[$n:$pc]}"; done)of $RATE_REF's $(printf '%.0f' "${SAT_REF[$n]}") rps saturated"
    done
    echo
    echo "| threads | rate | proxy | achieved rps | p50 ms | p99 ms | p99.9 ms | max ms | errors | CPU µs/req | others (cores) | generator |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for n in "${NTS[@]}"; do
        for pc in "${PCTS[@]}"; do
            for p in "${PROXIES[@]}"; do
                k="$p-${n}t"
                inv=$(rinvalid "$k" "$pc")
                gen=valid
                [[ $inv -eq 0 ]] || gen="**INVALID** ($inv of $ROUNDS: fell behind)"
                awk -v n="$n" -v pc="$pc" -v rate="${RATE_OF[$n:$pc]}" -v l="${LABEL[$p]}" -v a="$(rmed 6 "$k" "$pc")" \
                    -v p50="$(rmed 7 "$k" "$pc")" -v p99="$(rmed 8 "$k" "$pc")" -v p999="$(rmed 9 "$k" "$pc")" \
                    -v mx="$(rmed 10 "$k" "$pc")" -v e="$(awk -F'\t' -v k="$k" -v pc="$pc" '$2 == k && $3 == pc { s += $11 } END { print s + 0 }' "$RATE_RUNS")" \
                    -v us="$(rmed 14 "$k" "$pc")" -v o="$(rmed 15 "$k" "$pc")" -v g="$gen" 'BEGIN {
                    printf "| %d | R%d = %d req/s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %s |\n", n, pc, rate, l, a, p50, p99, p999, mx, e, us, o, g
                }'
            done
        done
    done
    echo
    verdict_text
    [[ $INVALID -eq 0 ]] || printf '%s\n\n' "**WARNING: $INVALID fixed-rate run(s) flagged INVALID by arena-loadtest: the generator fell behind its schedule (lag p99 > 10 ms) or dropped requests, so their latency is the generator's as much as the proxy's.**"
    run_warnings "$TOTAL_ERRORS" "$MAX_OTHER"
    echo "<details><summary>Every run</summary>"
    echo
    echo "Saturation:"
    echo
    echo "| round | proxy | threads | requests | rps | p50 ms | p99 ms | proxy CPU s | % of N cores | CPU µs/req | errors | others (cores) | peak RSS MiB |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %d | %.2f | %.1f |\n", $1, $14, $13, $3, $4, $5, $6, $7, $15, $8, $9, $11, $12 }' "$RUNS"
    echo
    echo "Fixed rates:"
    echo
    echo "| round | proxy | threads | rate | requests | achieved rps | p50 ms | p99 ms | p99.9 ms | max ms | errors | proxy CPU s | CPU µs/req | others (cores) | generator lag p99 ms | run |"
    echo "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' '{ printf "| %s | %s | %d | R%s = %d | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.2f | %.3f | %s |\n",
        $1, $18, $17, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $14, $15, $16, $12 }' "$RATE_RUNS"
    echo
    echo "</details>"
    echo
    echo "<details><summary>Proxy configurations</summary>"
    echo
    for n in "${NTS[@]}"; do
        files=()
        has arena && files+=("arena-${n}t.yaml")
        has nginx && files+=("nginx-${n}t/nginx.conf")
        has haproxy && files+=("haproxy-${n}t.cfg")
        files+=("load-${n}t-$TOP_PCT.yaml")
        show_configs "${files[@]}"
        if has bare; then
            echo "bare-pingora: \`--threads $n --upstream POD...\`"
            echo
        fi
    done
    echo "</details>"
} >"$MD"

{
    json_head
    printf '  "load": {"tool": "wrk", "threads": "N", "connections": "%d×N", "duration": "%s", "warmup": "%s", "path": "%s", "body_bytes": %d,\n' \
        "$CONNECTIONS" "$DURATION" "$WARMUP" "$URL_PATH" "${#POD_BODY}"
    printf '           "fixed_rate": {"tool": "arena-loadtest", "mode": "open", "generator_threads": "N", "connections": "%d×N", "duration": "%s", "rates_percent": [%s], "rate_reference": "%s"}},\n' \
        "$CONNECTIONS" "$DURATION" "$(IFS=,; echo "${PCTS[*]}")" "$RATE_REF"
    printf '  "threads": [%s],\n  "rounds": %d,\n  "reference": "%s",\n  "total_errors": %d,\n  "invalid_fixed_rate_runs": %d,\n' \
        "$THREADS" "$ROUNDS" "$REF" "$TOTAL_ERRORS" "$INVALID"
    printf '  "rates": {'
    first=1
    for n in "${NTS[@]}"; do
        [[ $first -eq 1 ]] || printf ', '
        first=0
        printf '"%s": {"saturated_rps": %s' "$n" "${SAT_REF[$n]}"
        for pc in "${PCTS[@]}"; do printf ', "%s": %s' "$pc" "${RATE_OF[$n:$pc]}"; done
        printf '}'
    done
    printf '},\n  "target": "arena p99 at %d %% of saturation <= bare pingora p99 at the same rate",\n  "verdicts": [' "$VERDICT_PCT"
    awk -F'\t' 'NR > 1 { printf ", " } {
        printf "{\"threads\": %d, \"rate\": %d, \"arena_p99_ms\": %s, \"bare_p99_ms\": %s, \"verdict\": \"%s\", \"note\": \"%s\"}", $1, $2, $3, $4, $5, $6 }' "$VERDICTS"
    printf '],\n  "median": {\n'
    first=1
    for n in "${NTS[@]}"; do
        for p in "${PROXIES[@]}"; do
            k="$p-${n}t"
            [[ $first -eq 1 ]] || printf ',\n'
            first=0
            printf '    "%s": {"label": %s, "version": %s, "threads": %d, "rps": %s, "p50_ms": %s, "p99_ms": %s, "cpu_us_per_request": %s, "cpu_percent_of_threads": %s, "peak_rss_mib": %s, "errors": %s, "fixed_rate": {' \
                "$k" "$(json_str "${LABEL[$p]}")" "$(json_str "$(version_of "$p")")" "$n" "$(median 4 "$k")" "$(median 5 "$k")" \
                "$(median 6 "$k")" "$(median 8 "$k")" "$(median 15 "$k")" "$(median 12 "$k")" "$(sum_col 9 "$k")"
            f=1
            for pc in "${PCTS[@]}"; do
                [[ $f -eq 1 ]] || printf ', '
                f=0
                printf '"%s": {"rate": %s, "achieved_rps": %s, "p50_ms": %s, "p99_ms": %s, "p999_ms": %s, "max_ms": %s, "cpu_us_per_request": %s, "invalid_runs": %d}' \
                    "$pc" "${RATE_OF[$n:$pc]}" "$(rmed 6 "$k" "$pc")" "$(rmed 7 "$k" "$pc")" "$(rmed 8 "$k" "$pc")" \
                    "$(rmed 9 "$k" "$pc")" "$(rmed 10 "$k" "$pc")" "$(rmed 14 "$k" "$pc")" "$(rinvalid "$k" "$pc")"
            done
            printf '}}'
        done
    done
    printf '\n  },\n  "runs": [\n'
    awk -F'\t' 'NR > 1 { printf ",\n" } {
        printf "    {\"round\": %d, \"proxy\": \"%s\", \"base\": \"%s\", \"threads\": %d, \"requests\": %d, \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"cpu_seconds\": %s, \"cpu_us_per_request\": %s, \"cpu_percent_of_threads\": %s, \"errors\": %d, \"elapsed_seconds\": %s, \"other_processes_cores\": %s, \"peak_rss_mib\": %s}",
            $1, $2, $14, $13, $3, $4, $5, $6, $7, $8, $15, $9, $10, $11, $12
    } END { printf "\n" }' "$RUNS"
    printf '  ],\n  "fixed_rate_runs": [\n'
    awk -F'\t' 'NR > 1 { printf ",\n" } {
        gsub(/\\/, "\\\\", $12); gsub(/"/, "\\\"", $12)
        printf "    {\"round\": %d, \"proxy\": \"%s\", \"base\": \"%s\", \"threads\": %d, \"percent\": %d, \"rate\": %d, \"requests\": %d, \"achieved_rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"p999_ms\": %s, \"max_ms\": %s, \"errors\": %d, \"validity\": \"%s\", \"cpu_seconds\": %s, \"cpu_us_per_request\": %s, \"other_processes_cores\": %s, \"schedule_lag_p99_ms\": %s}",
            $1, $2, $18, $17, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
    } END { printf "\n" }' "$RATE_RUNS"
    printf '  ]\n}\n'
} >"$JSON"
jq empty "$JSON" 2>/dev/null || log "warning: $JSON is not valid JSON"

show_results
[[ $TOTAL_ERRORS -eq 0 ]] || exit 3
