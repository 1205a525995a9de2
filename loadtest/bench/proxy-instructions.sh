#!/usr/bin/env bash
# proxy-instructions.sh — deterministic per-request cost: user-space instructions (callgrind Ir)
# per proxied request of bare pingora, arena-gateway (p2c_ewma) and arena-gateway with every
# request-path feature on (see loadtest/bench/README.md).
#
#   loadtest/bench/proxy-instructions.sh [--requests 20000] [--warmup 2000] [--concurrency 16]
#                                        [--top 15] [--only bare,floor,arena-p2c,arena-all,arena-rel,arena-trace1] [--no-build]
#                                        [--baseline PATH/arena-gateway] [--keep-profiles DIR]
#
# --baseline measures another arena-gateway build too (e.g. the last release, built from a git
# worktree), as `base-p2c` and `base-all` with the same configs, in the same run: a change's
# effect on the per-request cost, counted. --keep-profiles copies the callgrind profiles to DIR
# (for callgrind_annotate / kcachegrind); the report lists who calls glibc's memcpy either way.
#
# Three nginx pods on 127.0.0.11-13; each proxy runs alone under valgrind --tool=callgrind with
# instrumentation off, one worker thread. After an uninstrumented warm-up, instrumentation is
# switched on (callgrind_control -i on), exactly N keep-alive requests are sent with
# `ab -k -n N -c C`, instrumentation is switched off and the profile dumped. Ir / requests (the
# requests counted by the pods' access logs) is the cost per request; it does not depend on how
# busy the machine is.
set -euo pipefail

BENCH=proxy-instructions
REQUESTS=20000
WARMUP=2000
CONCURRENCY=16
TOP=15
ONLY=bare,floor,arena-p2c,arena-all,arena-rel,arena-trace1
BASELINE=
KEEP=
BUILD=1

# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args --requests=REQUESTS --warmup=WARMUP --concurrency=CONCURRENCY --top=TOP --only=ONLY --baseline=BASELINE --keep-profiles=KEEP -- "$@"
need_positive REQUESTS WARMUP CONCURRENCY TOP
cd "$ROOT"

IFS=, read -ra PROXIES <<<"$ONLY"
declare -A LABEL=(
    [bare]="bare-pingora (round robin)"
    [floor]="floor-tokio (tokio + httparse, no features)"
    [arena-p2c]="arena-gateway (p2c_ewma)"
    [arena-all]="arena-gateway (everything on)"
    [arena-rel]="arena-gateway (p2c_ewma, a release on the route)"
    [arena-trace1]="arena-gateway (p2c_ewma, tracing at 1 %)"
    [base-p2c]="baseline arena-gateway (p2c_ewma)"
    [base-all]="baseline arena-gateway (everything on)"
)
if [[ -n $BASELINE ]]; then
    [[ -x $BASELINE ]] || usage_error "--baseline $BASELINE is not an executable"
    for p in arena-p2c arena-all; do has "$p" && ! has "base-${p#arena-}" && PROXIES+=("base-${p#arena-}"); done
fi
for p in "${PROXIES[@]}"; do [[ -n ${LABEL[$p]:-} ]] || die "unknown proxy '$p' (bare, floor, arena-p2c, arena-all, arena-rel, arena-trace1)"; done

apt_need nginx:nginx valgrind:valgrind callgrind_control:valgrind callgrind_annotate:valgrind ab:apache2-utils
build_release "$BUILD"
need_binary "$GATEWAY"
if [[ -n $BASELINE ]]; then
    cp -p "$BASELINE" "$WORK/bin/arena-gateway-baseline"
    BASE_GATEWAY=$WORK/bin/arena-gateway-baseline
fi
need_binary "$BARE"
has floor && need_binary "$FLOOR"

# ---------------------------------------------------------------- pods (access log counts requests)
start_nginx_pods access.log
pod_requests() { cat "$WORK"/pod*/access.log 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- proxies
PROXY_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)

{ arena_cluster "arena with its defaults, p2c_ewma" p2c_ewma; arena_route 2s; } >"$WORK/arena-p2c.yaml"
arena_all_config >"$WORK/arena-all.yaml"
arena_release_config >"$WORK/arena-rel.yaml"
for p in arena-p2c arena-all arena-rel; do check_arena_config "$WORK/$p.yaml"; done
if has arena-trace1; then
    # spans of the kept requests (1 %, plus errors and slow ones) go to an nginx sink
    start_otlp_sink
    { arena_cluster "tracing at 1 %" p2c_ewma; arena_route 2s; tracing_block 1%; } >"$WORK/arena-trace1.yaml"
    check_arena_config "$WORK/arena-trace1.yaml"
fi

URL_PATH=/v1/matches
URL="http://127.0.0.1:$PROXY_PORT$URL_PATH"
# RUNS: proxy ir requests_pods requests_ab failed ir_per_req seconds

ab_run() { # n out → runs ab, checks it finished cleanly
    ab -k -q -n "$1" -c "$CONCURRENCY" -s 60 "$URL" >"$2" 2>&1 || die "ab failed: $(tail -n 5 "$2")"
}
ab_field() { awk -F: -v k="$1" '$1 == k { gsub(/[^0-9]/, "", $2); print $2 + 0; exit }' "$2"; }

measure() { # name
    local name=$1 cg="$WORK/callgrind-$1.out" cmd=()
    case "$name" in
        bare) bare_cmd; cmd=("${BARE_CMD[@]}") ;;
        floor) floor_cmd; cmd=("${FLOOR_CMD[@]}") ;;
        arena-*) cmd=("$GATEWAY" run -c "$WORK/$name.yaml") ;;
        base-*) cmd=("$BASE_GATEWAY" run -c "$WORK/arena-${name#base-}.yaml") ;;
    esac
    # --instr-atstart=no: start-up and warm-up run uninstrumented (fast, nothing counted);
    # `callgrind_control -i on` switches counting on for the measured requests only.
    run_proxy "$name" 600 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" "${cmd[@]}"
    local pid=$PROXY_PID
    expect_200 "$name" 127.0.0.1 "$PROXY_PORT"

    ab_run "$WARMUP" "$WORK/warmup-$name.txt"
    sleep 0.5
    local n0 n1
    n0=$(pod_requests)
    callgrind_control -i on "$pid" >"$WORK/ctl-$name.txt" 2>&1 || die "callgrind_control -i on $pid failed: $(cat "$WORK/ctl-$name.txt")"
    local t0=$SECONDS
    ab_run "$REQUESTS" "$WORK/ab-$name.txt"
    local secs=$((SECONDS - t0))
    callgrind_control -i off "$pid" >>"$WORK/ctl-$name.txt" 2>&1 || die "callgrind_control -i off failed"
    n1=$(pod_requests)
    callgrind_control -d "$pid" >>"$WORK/ctl-$name.txt" 2>&1 || die "callgrind_control -d failed"
    stop_proxy

    local completed failed non2xx
    completed=$(ab_field "Complete requests" "$WORK/ab-$name.txt")
    failed=$(ab_field "Failed requests" "$WORK/ab-$name.txt")
    non2xx=$(ab_field "Non-2xx responses" "$WORK/ab-$name.txt")
    failed=$((failed + ${non2xx:-0}))
    local proxied=$((n1 - n0))
    # Every dump part (the -d dump and the one written at exit) counts: sum their totals.
    local ir
    ir=$(awk '/^(summary|totals):/ { s += $2 } END { printf "%.0f", s }' "$cg"*)
    [[ $ir -gt 0 ]] || die "no instructions counted for $name (dumps: $(ls "$cg"* 2>/dev/null))"
    [[ $proxied -gt 0 ]] || die "pods saw no requests during the $name run"
    # The dump with the requests in it is the largest part: annotate that one.
    local main
    main=$(awk '/^(summary|totals):/ { print $2, FILENAME }' "$cg"* | sort -gr | awk 'NR == 1 { print $2 }')
    cp "$main" "$WORK/profile-$name.out"
    printf '%s\t%s\t%d\t%d\t%d\t%s\t%d\n' "$name" "$ir" "$proxied" "$completed" "$failed" \
        "$(awk -v i="$ir" -v n="$proxied" 'BEGIN { printf "%.0f", i / n }')" "$secs" >>"$RUNS"
    log "$(tail -n1 "$RUNS" | awk -F'\t' '{ printf "%-10s %14s Ir  %6d requests at the pods (ab: %d, failed %d)  %8d Ir/request  (%d s under callgrind)", $1, $2, $3, $4, $5, $6, $7 }')"
}

log "proxy on 127.0.0.1:$PROXY_PORT; per proxy: warm-up ab -k -n $WARMUP, measured ab -k -n $REQUESTS -c $CONCURRENCY under callgrind"
for p in "${PROXIES[@]}"; do measure "$p"; done

# ---------------------------------------------------------------- report
col() { awk -F'\t' -v p="$1" -v c="$2" '$1 == p { print $c }' "$RUNS"; }
BARE_IPR=$(col bare 6)
TARGET_RATIO=1.10
result_paths proxy-instructions

# annotate PROFILE yes|no → TSV "ir<TAB>function<TAB>object" (inclusive or self cost), file paths
# shortened (crate-relative, std/, repo-relative). Written to a file first: a reader that stops
# early must not SIGPIPE callgrind_annotate under pipefail.
annotate() {
    local raw="$WORK/annotate.$$.txt"
    callgrind_annotate --auto=no --inclusive="$2" --threshold=100 "$1" >"$raw" 2>/dev/null ||
        die "callgrind_annotate failed on $1"
    awk -v root="$ROOT/" '
        /^-+$/ { dash++; next }
        dash >= 4 && NF >= 3 && $1 ~ /^[0-9,]+$/ {
            ir = $1; gsub(/,/, "", ir)
            fn = $0; obj = ""
            sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", fn)
            if (match(fn, / \[[^]]*\]$/)) { obj = substr(fn, RSTART + 2, RLENGTH - 3); fn = substr(fn, 1, RSTART - 1) }
            sub(/.*\//, "", obj)
            sub(/^\/root\/\.cargo\/registry\/src\/[^\/]*\//, "", fn)
            sub(/^\/rustc\/[0-9a-f]*\/library\//, "std/", fn)
            if (index(fn, root) == 1) fn = substr(fn, length(root) + 1)
            sub(/^\.\/string\/\.\.\/sysdeps\/x86_64\/multiarch\//, "glibc/", fn)
            printf "%s\t%s\t%s\n", ir, fn, obj
        }' "$raw"
    rm -f "$raw"
}

# rows TOPN REQUESTS TOTAL_IR < TSV → markdown rows "| # | % | Ir/req | function | object |"
rows() {
    awk -F'\t' -v top="$1" -v n="$2" -v tot="$3" '
        $2 == "PROGRAM TOTALS" || k >= top { next }
        {
            fn = $2; gsub(/\|/, "\\|", fn)
            if (length(fn) > 170) fn = substr(fn, 1, 167) "..."
            printf "| %d | %.2f%% | %.0f | `%s` | %s |\n", ++k, 100 * $1 / tot, $1 / n, fn, $3
        }'
}

# mem_callers PROFILE → TSV "ir<TAB>caller" of the direct callers of glibc's memcpy/memmove
# (Ir spent in the copy on behalf of each caller), from callgrind_annotate's caller tree.
mem_callers() {
    local raw="$WORK/callers.$$.txt"
    callgrind_annotate --auto=no --tree=caller --inclusive=yes --threshold=100 "$1" >"$raw" 2>/dev/null ||
        die "callgrind_annotate --tree=caller failed on $1"
    awk -v root="$ROOT/" '
        / < / { n++; line[n] = $0; next }
        / \* / {
            if ($0 ~ /__mem(cpy|move)_avx_unaligned_erms/) for (i = 1; i <= n; i++) {
                l = line[i]; ir = l; sub(/^ */, "", ir); sub(/ .*/, "", ir); gsub(/,/, "", ir)
                fn = l; sub(/.* < /, "", fn); sub(/ \[[^]]*\]$/, "", fn); sub(/ \([0-9]+x\)$/, "", fn)
                sub(/^\/root\/\.cargo\/registry\/src\/[^\/]*\//, "", fn)
                sub(/^\/rustc\/[0-9a-f]*\/library\//, "std/", fn)
                if (index(fn, root) == 1) fn = substr(fn, length(root) + 1)
                printf "%s\t%s\n", ir, fn
            }
            n = 0; next
        }
        { n = 0 }' "$raw" | sort -t$'\t' -k1,1gr
    rm -f "$raw"
}

# self cost per function name (inlined copies merged: the part after "file:"), per request.
per_function() { # TSV file, requests → "name<TAB>ir_per_request"
    awk -F'\t' -v n="$2" '$2 != "PROGRAM TOTALS" { i = index($2, ":"); f = substr($2, i + 1); s[f] += $1 } END { for (f in s) printf "%s\t%.1f\n", f, s[f] / n }' "$1"
}

for p in "${PROXIES[@]}"; do
    [[ -f $WORK/profile-$p.out ]] || continue
    annotate "$WORK/profile-$p.out" yes >"$WORK/incl-$p.tsv"
    annotate "$WORK/profile-$p.out" no >"$WORK/self-$p.tsv"
    per_function "$WORK/self-$p.tsv" "$(col "$p" 3)" >"$WORK/fn-$p.tsv"
    # Ir per request outside glibc's mem* routines: valgrind counts every iteration of a
    # `rep movsb` as one instruction, so big copies weigh more in Ir than in CPU time.
    awk -F'\t' '$1 ~ /(^|[^a-z])__mem(cpy|move|set)/ { s += $2 } END { printf "%.0f", s }' "$WORK/fn-$p.tsv" >"$WORK/mem-$p.txt"
    mem_callers "$WORK/profile-$p.out" >"$WORK/memcallers-$p.tsv"
    if [[ -n $KEEP ]]; then
        mkdir -p "$KEEP"
        cp "$WORK/profile-$p.out" "$KEEP/callgrind-$p.out"
    fi
done
mem_of() { cat "$WORK/mem-$1.txt" 2>/dev/null || echo 0; }
BARE_NOMEM=$(awk -v a="${BARE_IPR:-0}" -v m="$(mem_of bare)" 'BEGIN { printf "%.0f", a - m }')

{
    echo "# Proxy instructions per request — $STAMP"
    echo
    echo "valgrind --tool=callgrind --instr-atstart=no, one proxy thread; warm-up \`ab -k -n $WARMUP -c $CONCURRENCY\` uninstrumented,"
    echo "then \`callgrind_control -i on\`, \`ab -k -n $REQUESTS -c $CONCURRENCY $URL_PATH\`, \`callgrind_control -i off\`, \`-d\`."
    echo "Upstreams: 3 × $(nginx_version) pods (1 worker, ${#POD_BODY}-byte JSON body) on ${POD_IPS[*]}."
    echo "Machine: $(machine_line); commit $GIT_REV; arena-gateway built $(binary_stamp "$GATEWAY"), bare-pingora built $(binary_stamp "$BARE")."
    echo
    echo "Ir = user-space instructions executed by the whole proxy process (all threads) while the measured"
    echo "requests ran; requests = requests the pods logged in that window. Deterministic up to a few"
    echo "hundred instructions per request (timers, hash seeds): machine load does not change it."
    echo
    echo "| proxy | Ir total | requests | Ir / request | × bare | Ir / request without mem* | × bare | failed |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PROXIES[@]}"; do
        awk -v l="${LABEL[$p]}" -v ir="$(col "$p" 2)" -v n="$(col "$p" 3)" -v ipr="$(col "$p" 6)" -v b="${BARE_IPR:-0}" \
            -v m="$(mem_of "$p")" -v bm="$BARE_NOMEM" -v f="$(col "$p" 5)" 'BEGIN {
            printf "| %s | %.0f | %d | %.0f | %s | %.0f | %s | %d |\n", l, ir, n, ipr, (b > 0 ? sprintf("%.3f", ipr / b) : "–"),
                ipr - m, (bm > 0 ? sprintf("%.3f", (ipr - m) / bm) : "–"), f
        }'
    done
    echo
    echo "\`without mem*\`: minus glibc's memcpy/memmove/memset, whose \`rep movsb\` valgrind counts once per byte"
    echo "(pingora boxes and moves request futures of several KB per request): a check that the ratio is not an artefact of copies."
    echo
    if [[ -n $BARE_IPR && -n $(col arena-p2c 6) ]]; then
        RATIO=$(awk -v a="$(col arena-p2c 6)" -v b="$BARE_IPR" 'BEGIN { printf "%.3f", a / b }')
        VERDICT=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r <= t ? "PASS" : "FAIL") }')
        echo "**arena-gateway (p2c_ewma) / bare pingora instructions per request: $RATIO** (target ≤ $TARGET_RATIO: $VERDICT)"
        echo
    fi
    if [[ -n $(col arena-trace1 6) && -n $(col arena-p2c 6) ]]; then
        awk -v a="$(col arena-trace1 6)" -v b="$(col arena-p2c 6)" 'BEGIN {
            printf "**Tracing at 1 %% (errors and slow kept) / without, instructions per request: %.0f / %.0f = %.3f**\n\n", a, b, a / b }'
    fi
    if [[ -n $(col arena-rel 6) && -n $(col arena-p2c 6) ]]; then
        awk -v a="$(col arena-rel 6)" -v b="$(col arena-p2c 6)" 'BEGIN {
            printf "**A release on the route (50/50 split, both versions judged) / without, instructions per request: %.0f / %.0f = %.3f**\n\n", a, b, a / b }'
    fi
    for p in p2c all; do
        [[ -n $(col "base-$p" 6) && -n $(col "arena-$p" 6) ]] || continue
        awk -v a="$(col "arena-$p" 6)" -v b="$(col "base-$p" 6)" -v l="${LABEL[arena-$p]}" 'BEGIN {
            printf "**%s / its baseline build, instructions per request: %.0f / %.0f = %.3f**\n\n", l, a, b, a / b }'
    done
    for p in arena-p2c arena-all; do
        [[ -f $WORK/incl-$p.tsv ]] || continue
        n=$(col "$p" 3)
        tot=$(col "$p" 2)
        echo "## ${LABEL[$p]}: top $TOP functions by inclusive Ir"
        echo
        echo "Ir/req = Ir of the function and its callees / $n requests; % of the run's total. Names are"
        echo "\`source file:function\`; only entries of a function proper (callgrind also lists inlined code under"
        echo "the inlined file's name: those rows are left out here but kept in the self-cost tables)."
        echo
        echo "| # | % | Ir/req | function | object |"
        echo "|---:|---:|---:|---|---|"
        awk -F'\t' '$3 != ""' "$WORK/incl-$p.tsv" | rows "$TOP" "$n" "$tot"
        echo
        echo "<details><summary>arena's own code (gateway/ and core/, inclusive), top $TOP</summary>"
        echo
        echo "| # | % | Ir/req | function | object |"
        echo "|---:|---:|---:|---|---|"
        awk -F'\t' '$3 != "" && $2 ~ /^(gateway|core)\//' "$WORK/incl-$p.tsv" | rows "$TOP" "$n" "$tot"
        echo
        echo "</details>"
        echo
        echo "<details><summary>Top $TOP by self (exclusive) Ir</summary>"
        echo
        echo "| # | % | Ir/req | function | object |"
        echo "|---:|---:|---:|---|---|"
        rows "$TOP" "$n" "$tot" <"$WORK/self-$p.tsv"
        echo
        echo "</details>"
        echo
        echo "<details><summary>Who copies: direct callers of glibc's memcpy/memmove, top $TOP</summary>"
        echo
        echo "Ir/req = the copy's instructions on behalf of that caller (≈ bytes copied per request: valgrind counts"
        echo "a \`rep movsb\` byte as one instruction). Large ones are futures moved into boxes or wrappers."
        echo
        echo "| # | % | Ir/req | function | object |"
        echo "|---:|---:|---:|---|---|"
        awk -F'\t' '{ printf "%s\t%s\tlibc\n", $1, $2 }' "$WORK/memcallers-$p.tsv" | rows "$TOP" "$n" "$tot"
        echo
        echo "</details>"
        echo
        if [[ -f $WORK/fn-bare.tsv ]]; then
            echo "<details><summary>Where the extra instructions go: self Ir/req by function, ${LABEL[$p]} minus bare pingora (top $TOP)</summary>"
            echo
            echo "Inlining differs between the two binaries, so a function can move cost into its caller;"
            echo "read pairs of rows with opposite signs as one."
            echo
            echo "| function | $p Ir/req | bare Ir/req | difference |"
            echo "|---|---:|---:|---:|"
            awk -F'\t' 'FNR == NR { b[$1] = $2; next } { a[$1] = $2 }
                END {
                    for (f in a) d[f] = a[f] - b[f]
                    for (f in b) if (!(f in a)) d[f] = -b[f]
                    for (f in d) printf "%.1f\t%.1f\t%.1f\t%s\n", (d[f] < 0 ? -d[f] : d[f]), a[f] + 0, b[f] + 0, f
                }' "$WORK/fn-bare.tsv" "$WORK/fn-$p.tsv" | sort -t$'\t' -k1,1gr >"$WORK/diff-$p.tsv"
            head -n "$TOP" "$WORK/diff-$p.tsv" |
                awk -F'\t' '{ fn = $4; gsub(/\|/, "\\|", fn); if (length(fn) > 150) fn = substr(fn, 1, 147) "..."
                    printf "| `%s` | %.0f | %.0f | %+.0f |\n", fn, $2, $3, $2 - $3 }'
            echo
            echo "</details>"
            echo
        fi
    done
} >"$MD"

{
    json_head
    printf '  "method": {"tool": "valgrind --tool=callgrind --instr-atstart=no", "client": "ab -k", "warmup_requests": %d, "requests": %d, "concurrency": %d, "path": "%s", "proxy_threads": 1},\n' \
        "$WARMUP" "$REQUESTS" "$CONCURRENCY" "$URL_PATH"
    printf '  "binaries": {"arena-gateway": "%s", "bare-pingora": "%s", "baseline": "%s"},\n' "$(binary_stamp "$GATEWAY")" "$(binary_stamp "$BARE")" "${BASELINE:+$(binary_stamp "$BASE_GATEWAY")}"
    printf '  "target_ratio": %s,\n  "ratio_arena_p2c_over_bare": %s,\n' "$TARGET_RATIO" "${RATIO:-null}"
    printf '  "proxies": {\n'
    awk -F'\t' -v b="${BARE_IPR:-0}" 'NR > 1 { printf ",\n" } {
        printf "    \"%s\": {\"ir_total\": %s, \"requests\": %d, \"ab_completed\": %d, \"failed\": %d, \"ir_per_request\": %s, \"ratio_to_bare\": %s, \"mem_ir_per_request\": %s, \"seconds_under_callgrind\": %d}", $1, $2, $3, $4, $5, $6, (b > 0 ? sprintf("%.4f", $6 / b) : "null"), $8, $7
    } END { printf "\n" }' <(while IFS=$'\t' read -r -a row; do printf '%s\t%s\n' "$(IFS=$'\t'; echo "${row[*]}")" "$(mem_of "${row[0]}")"; done <"$RUNS")
    printf '  }\n}\n'
} >"$JSON"

show_results
FAILED=$(awk -F'\t' '{ s += $5 } END { print s + 0 }' "$RUNS")
[[ $FAILED -eq 0 ]] || { log "$FAILED failed requests: figures not valid"; exit 3; }
