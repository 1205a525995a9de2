#!/usr/bin/env bash
# sizing.sh — gateway cores and replicas needed for 100 k / 1 M / 10 M requests per second, from
# the CPU cost per request a peers.sh run measured for each proxy (see loadtest/bench/README.md).
#
#   loadtest/bench/sizing.sh [--peers FILE] [--cost FILE|latest] [--raw-cost] [--headroom 0.6]
#                            [--cores-per-replica 4] [--qps 100000,1000000,10000000]
#
# Runs no load and builds nothing: it reads a results JSON (default: the newest
# loadtest/results/peers-*.json) and does arithmetic. Per proxy: cores = ceil(QPS × µs/req / 10⁶ /
# HEADROOM), HEADROOM being the share of each core the plan lets it use; replicas = ceil(cores /
# CORES-PER-REPLICA), at least 2, plus 1 spare (N+1); × nginx = cores / nginx's cores. --cost
# adds arena-gateway "everything on" (arena-all) from a proxy-cost.sh result when the peers run
# lacks it ("latest": the newest loadtest/results/proxy-cost-*.json), its µs/req scaled to the
# peers run by the ratio arena-all / bare pingora of its own run (--raw-cost: as measured).
# --qps takes plain numbers or k/M suffixes (100k,1M). Figures are one worker thread on one core;
# a multi-thread figure in the input (an entry NAME-Nt, or with "threads": N > 1) is used for NAME
# instead, and the report says so. Missing or unreadable input: exit 2.
set -euo pipefail

BENCH=sizing
PEERS=
COST=
RAW_COST=0
HEADROOM=0.6
CORES_PER_REPLICA=4
QPS=100000,1000000,10000000

# common.sh for parse_args, usage_error, result_paths and show_results; sourcing it only creates
# (and removes on exit) an empty temp dir — nothing here starts a process or builds.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args --peers=PEERS --cost=COST --raw-cost:RAW_COST=1 --headroom=HEADROOM \
    --cores-per-replica=CORES_PER_REPLICA --qps=QPS -- "$@"
need_match HEADROOM '^(0?\.[0-9]+|1|1\.0*)$' "--headroom is the planned CPU utilisation per core, 0 < H ≤ 1 (like 0.6)"
awk -v h="$HEADROOM" 'BEGIN { exit !(h > 0 && h <= 1) }' || usage_error "--headroom must be above 0 and at most 1"
need_match CORES_PER_REPLICA '^[1-9][0-9]*$' "--cores-per-replica must be a positive integer"
need_match QPS '^[1-9][0-9]*(\.[0-9]+)?[kM]?(,[1-9][0-9]*(\.[0-9]+)?[kM]?)*$' "--qps like 100000,1000000 or 100k,1M,10M"
command -v python3 >/dev/null 2>&1 || die "needs python3 to read the results JSON"

RESULTS=$ROOT/loadtest/results
newest() { # PREFIX → the newest loadtest/results/PREFIX-<stamp>.json (the stamps sort by name), or nothing
    local files=()
    shopt -s nullglob
    files=("$RESULTS/$1"-*.json)
    shopt -u nullglob
    [[ ${#files[@]} -gt 0 ]] && printf '%s\n' "${files[@]}" | LC_ALL=C sort | tail -n1
    return 0
}

if [[ -z $PEERS ]]; then
    PEERS=$(newest peers)
    [[ -n $PEERS ]] || usage_error "no loadtest/results/peers-*.json: run loadtest/bench/peers.sh first, or pass --peers FILE"
fi
[[ -f $PEERS && -r $PEERS ]] || usage_error "--peers $PEERS: no such readable file"
if [[ $COST == latest ]]; then
    COST=$(newest proxy-cost)
    [[ -n $COST ]] || usage_error "--cost latest: no loadtest/results/proxy-cost-*.json (run loadtest/bench/proxy-cost.sh)"
fi
[[ -z $COST || (-f $COST && -r $COST) ]] || usage_error "--cost $COST: no such readable file"

result_paths sizing

# Reads the inputs, writes $MD and $JSON; on bad input prints why and exits 2 before writing.
ROOT=$ROOT STAMP=$STAMP GIT_REV=$GIT_REV MD=$MD JSON=$JSON PEERS=$PEERS COST=$COST RAW_COST=$RAW_COST \
    HEADROOM=$HEADROOM CORES_PER_REPLICA=$CORES_PER_REPLICA QPS=$QPS python3 - <<'PY'
import json, math, os, re, sys

env = os.environ
ROOT = env["ROOT"]
HEADROOM = float(env["HEADROOM"])
CPR = int(env["CORES_PER_REPLICA"])
MIN_REPLICAS, SPARE = 2, 1
REFERENCE = "nginx"
DISTURBED = 0.2  # cores used by other processes during a run above which the source flags it
# Always listed (as "not measured" when the input lacks them), in this order; others follow.
CORE_SET = ["nginx", "haproxy", "bare", "arena"]
DEFAULT_LABEL = {"nginx": "nginx", "haproxy": "haproxy", "bare": "bare-pingora",
                 "arena": "arena-gateway (defaults)", "arena-all": "arena-gateway (everything on)"}


def fail(msg):
    print(f"sizing: {msg}", file=sys.stderr)
    sys.exit(2)


def rel(path):
    p = os.path.abspath(path)
    r = os.path.relpath(p, ROOT)
    return p if r.startswith("..") else r


def parse_qps(text):
    out = []
    for item in text.split(","):
        mult = {"k": 1e3, "M": 1e6}.get(item[-1], 1)
        value = float(item.rstrip("kM")) * mult
        if value < 1 or value != int(value):
            fail(f"--qps {item}: not a whole number of requests per second")
        out.append(int(value))
    return out


def load(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{what} {path}: cannot read it ({e})")
    except json.JSONDecodeError as e:
        fail(f"{what} {path}: not valid JSON ({e}); is the run that writes it still going?")
    if not isinstance(data, dict) or not isinstance(data.get("median"), dict):
        fail(f"{what} {path}: no \"median\" object — not a peers.sh / proxy-cost.sh result")
    return data


def machine_of(data):
    m = data.get("machine")
    if isinstance(m, dict):  # proxy-cost.sh writes an object
        return f"{m.get('cpus', '?')} CPU(s), {m.get('cpu_model', 'unknown CPU')}, Linux {m.get('kernel', '?')}"
    return str(m) if m else "unknown machine"


def source_meta(path, data, kind):
    load_ = data.get("load") if isinstance(data.get("load"), dict) else {}
    return {
        "kind": kind,
        "file": rel(path),
        "timestamp": data.get("timestamp", "unknown"),
        "commit": data.get("commit", "unknown"),
        "machine": machine_of(data),
        "rounds": data.get("rounds"),
        "load": load_,
        "total_errors": data.get("total_errors"),
    }


def number(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def base_and_threads(key, entry):
    """An entry NAME-Nt, or one with "threads"/"workers"/"cores": N, is an N-thread figure of NAME."""
    base, threads = key, 1
    m = re.match(r"^(.+)-(\d+)t$", key)
    if m:
        base, threads = m.group(1), int(m.group(2))
    for field in ("threads", "workers", "cores"):
        v = entry.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            threads = v
            break
    return base, max(threads, 1)


def runs_of(data, key, scale=1.0):
    runs = [r for r in data.get("runs", []) if isinstance(r, dict) and r.get("proxy") == key]
    us = [number(r.get("cpu_us_per_request")) for r in runs]
    us = [u * scale for u in us if u is not None]
    others = [r.get("other_processes_cores") or 0 for r in runs]
    return {
        "runs": len(runs),
        "us_min": round(min(us), 2) if us else None,
        "us_max": round(max(us), 2) if us else None,
        "disturbed_runs": sum(1 for o in others if isinstance(o, (int, float)) and o > DISTURBED),
        "max_other_cores": max([o for o in others if isinstance(o, (int, float))], default=0),
        "errors": sum(int(r.get("errors") or 0) for r in runs),
    }


qps_targets = parse_qps(env["QPS"])
peers = load(env["PEERS"], "--peers")
peers_src = source_meta(env["PEERS"], peers, "peers")
sources = [peers_src]

# ------------------------------------------------------------- the figures, one group per proxy
groups = {}  # base name → {threads: figure}
order = []
for key, entry in peers["median"].items():
    if not isinstance(entry, dict):
        continue
    base, threads = base_and_threads(key, entry)
    if base not in groups:
        groups[base] = {}
        order.append(base)
    us = number(entry.get("cpu_us_per_request"))
    groups[base][threads] = {
        "key": key,
        "label": entry.get("label") or DEFAULT_LABEL.get(base, base),
        "version": entry.get("version"),
        "us": us,
        "us_measured": us,
        "rps": number(entry.get("rps")),
        "p99_ms": number(entry.get("p99_ms")),
        "errors": int(entry.get("errors") or 0),
        "threads": threads,
        "source": peers_src,
        "runs": runs_of(peers, key),
        "derived": None,
    }

cost_note = None
if env["COST"]:
    cost = load(env["COST"], "--cost")
    cost_src = source_meta(env["COST"], cost, "proxy-cost")
    if "arena-all" in groups:
        cost_note = f"`{cost_src['file']}` not used: the peers run already has arena-all."
    else:
        sources.append(cost_src)
        entry = cost["median"].get("arena-all")
        if not isinstance(entry, dict):
            entry = {}
            cost_note = f"`{cost_src['file']}` has no arena-all figure."
        measured = number(entry.get("cpu_us_per_request"))
        cost_bare = number((cost["median"].get("bare") or {}).get("cpu_us_per_request"))
        peers_bare = (groups.get("bare") or {}).get(1, {}).get("us")
        us, derived, scale = measured, None, 1.0
        if measured and cost_bare and peers_bare and env["RAW_COST"] != "1":
            scale = peers_bare / cost_bare
            us = measured * scale
            derived = (f"{measured:.2f} µs/req measured = {measured / cost_bare:.3f} × its run's bare pingora "
                       f"({cost_bare:.2f}), × this peers run's bare pingora ({peers_bare:.2f})")
        elif measured:
            derived = f"{measured:.2f} µs/req as measured in its own run (not scaled to the peers run)"
        groups["arena-all"] = {1: {
            "key": "arena-all",
            "label": entry.get("label") or DEFAULT_LABEL["arena-all"],
            "version": entry.get("version"),
            "us": us,
            "us_measured": measured,
            "rps": number(entry.get("rps")),
            "p99_ms": number(entry.get("p99_ms")),
            "errors": int(entry.get("errors") or 0),
            "threads": 1,
            "source": cost_src,
            "runs": runs_of(cost, "arena-all", scale),
            "derived": derived,
        }}
        order.append("arena-all")

for base in CORE_SET:
    if base not in groups:
        groups[base] = {}
rank = {b: i for i, b in enumerate(CORE_SET + ["arena-all"])}
names = sorted(set(order) | set(CORE_SET), key=lambda b: (rank.get(b, len(rank)), order.index(b) if b in order else 0))


def cores_for(qps, us):
    # ceil with a tolerance so that an exact product does not round up on float noise
    return max(1, math.ceil(qps * us / 1e6 / HEADROOM - 1e-9))


def replicas_for(cores):
    return max(math.ceil(cores / CPR), MIN_REPLICAS) + SPARE


# ------------------------------------------------------------- one row per proxy
rows = []
multi_used = []
for base in names:
    figs = groups[base]
    single = figs.get(1)
    multi = max((t for t, f in figs.items() if t > 1 and f["us"]), default=None)
    used = figs[multi] if multi else (single or (figs[min(figs)] if figs else None))
    label = (single or used or {}).get("label") or DEFAULT_LABEL.get(base, base)
    row = {"name": base, "label": label, "measured": bool(used and used["us"]), "fig": used, "single": single}
    if multi:
        multi_used.append((label, multi, figs[multi]["us"], single["us"] if single and single["us"] else None))
    rows.append(row)

ref = next((r for r in rows if r["name"] == REFERENCE and r["measured"]), None)
for r in rows:
    r["sizing"] = []
    if not r["measured"]:
        continue
    us = r["fig"]["us"]
    r["per_core"] = int(HEADROOM * 1e6 / us)
    for q in qps_targets:
        c = cores_for(q, us)
        n = replicas_for(c)
        x = round(c / cores_for(q, ref["fig"]["us"]), 2) if ref else None
        r["sizing"].append({"qps": q, "cores": c, "replicas": n, "provisioned_cores": n * CPR, "x_nginx_cores": x})


def notes(r):
    f = r["fig"]
    if not f:
        return "not in the input"
    out = []
    if not f["us"]:
        out.append("no CPU µs/req figure")
    if f["errors"] or f["runs"]["errors"]:
        out.append(f"**{max(f['errors'], f['runs']['errors'])} errors in the source: figure not valid**")
    d = f["runs"]["disturbed_runs"]
    if d:
        out.append(f"{d} of {f['runs']['runs']} runs disturbed (others up to {f['runs']['max_other_cores']:.2f} cores)")
    if f["threads"] > 1:
        out.append(f"{f['threads']}-thread figure")
    return "; ".join(out)


def qps_label(q):
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if q >= div:
            v = q / div
            return f"{v:g} {unit}"
    return str(q)


def pct(h):
    return f"{h * 100:g} %"


src_tag = {s["file"]: f"{s['kind']} {s['timestamp']}" for s in sources}

# ------------------------------------------------------------- markdown
md = []
md.append(f"# Sizing: gateway cores and replicas for {' / '.join(qps_label(q) for q in qps_targets)} req/s — {env['STAMP']}")
md.append("")
md.append("Arithmetic on measured CPU cost per request (no load was run for this report). Inputs:")
md.append("")
for s in sources:
    ld = s["load"]
    load_txt = f"; {ld.get('tool', 'wrk')} -t{ld.get('threads', '?')} -c{ld.get('connections', '?')} -d{ld.get('duration', '?')}" if ld else ""
    rounds = f"; {s['rounds']} round(s), medians" if s["rounds"] else ""
    md.append(f"- `{s['file']}` ({s['kind']}.sh): run {s['timestamp']}, commit {s['commit']}, machine {s['machine']}{rounds}{load_txt}.")
md.append("")
md.append(f"Plan: each core at most {pct(HEADROOM)} busy (`--headroom {env['HEADROOM']}`), {CPR} cores per replica "
          f"(`--cores-per-replica {CPR}`), at least {MIN_REPLICAS} replicas plus {SPARE} spare (N+1). "
          f"Report commit {env['GIT_REV']}.")
md.append("")
md.append("## Cost per request")
md.append("")
md.append(f"| proxy | CPU µs/req | runs min–max | threads | req/s per core at {pct(HEADROOM)} | source | notes |")
md.append("|---|---:|---:|---:|---:|---|---|")
for r in rows:
    f = r["fig"]
    if not r["measured"]:
        src = src_tag.get(f["source"]["file"], "") if f else "—"
        md.append(f"| {r['label']} | not measured | — | — | — | {src} | {notes(r)} |")
        continue
    rr = f["runs"]
    rng = f"{rr['us_min']:.2f}–{rr['us_max']:.2f}" if rr["us_min"] is not None else "—"
    src = src_tag[f["source"]["file"]] + (" (scaled)" if f["derived"] and f["us"] != f["us_measured"] else "")
    md.append(f"| {r['label']} | {f['us']:.2f} | {rng} | {f['threads']} | {r['per_core']} | {src} | {notes(r)} |")
md.append("")
for r in rows:
    if r["measured"] and r["fig"]["derived"]:
        md.append(f"{r['label']}: {r['fig']['derived']}.")
        md.append("")
if cost_note:
    md.append(cost_note)
    md.append("")

md.append("## Cores and replicas")
md.append("")
head = ["proxy", "µs/req"]
for q in qps_targets:
    ql = qps_label(q)
    head += [f"cores @{ql}", f"replicas @{ql}", f"× nginx @{ql}"]
md.append("| " + " | ".join(head) + " |")
md.append("|---|" + "---:|" * (len(head) - 1))
for r in rows:
    if not r["measured"]:
        md.append(f"| {r['label']} | not measured |" + " — |" * (3 * len(qps_targets)))
        continue
    cells = [r["label"], f"{r['fig']['us']:.2f}"]
    for s in r["sizing"]:
        cells += [str(s["cores"]), str(s["replicas"]), f"{s['x_nginx_cores']:.2f}" if s["x_nginx_cores"] is not None else "—"]
    md.append("| " + " | ".join(cells) + " |")
md.append("")
md.append(f"cores = ⌈QPS × µs/req / 10⁶ / {HEADROOM:g}⌉; replicas = max(⌈cores / {CPR}⌉, {MIN_REPLICAS}) + {SPARE} spare "
          f"(provisioned cores = replicas × {CPR}, in the JSON); × nginx = cores / nginx's cores at the same QPS"
          + (" (whole cores, so coarse at low QPS)" if ref else " (nginx not measured: no ratio)") + ".")
md.append("")
md.append("## Assumptions")
md.append("")
m = peers_src["machine"]
md.append(f"- **Per-request cost** is the median CPU µs/req (utime+stime of the proxy's processes / requests served) measured on the "
          f"bench machine ({m}) with one worker/thread per proxy: loopback, a small JSON GET, keep-alive clients and upstreams, "
          "no TLS, no access log. TLS, bigger bodies, short connections and logging cost more per request, and softirq time "
          "the kernel does not charge to the process is not counted: read the cores as a floor for that workload, and re-measure on "
          "the production CPU model.")
if multi_used:
    for label, t, us_m, us_1 in multi_used:
        extra = f" (one thread: {us_1:.2f})" if us_1 else ""
        md.append(f"- **Multi-core**: {label} is sized from its {t}-thread figure, {us_m:.2f} µs/req{extra}, measured in the input; "
                  "beyond that thread count scaling is assumed linear.")
    md.append("- **Multi-core** for every other proxy: linear — N cores serve N × the one-core rate (no multi-thread figure in the input).")
else:
    md.append("- **Multi-core scaling is assumed linear**: N cores serve N × the one-core rate. The input has no figure with more than "
              "one worker thread; real proxies lose some per-core throughput to cross-thread work and shared state, so this is optimistic.")
md.append(f"- **Headroom**: a core is planned at {pct(HEADROOM)} busy; the rest absorbs bursts (a final's opening) while autoscaling "
          "catches up, plus the gateway's own background work.")
md.append(f"- **Replicas**: {CPR} cores each, never fewer than {MIN_REPLICAS}, plus one spare so a replica can fail or be upgraded "
          "without the others going above the headroom. Gateway CPU only: not the pods, the network or a load balancer in front.")
if len(sources) > 1:
    md.append("- Figures from different runs or machines are not directly comparable (see README: compare within one run); the "
              "proxy-cost figure is brought to the peers run through bare pingora, which both runs measure"
              + (" — except with --raw-cost." if env["RAW_COST"] == "1" else "."))
if any(r["measured"] and r["fig"]["runs"]["disturbed_runs"] for r in rows):
    md.append(f"- Some source runs were disturbed by other processes (> {DISTURBED} cores, column notes): the medians resist one "
              "such run out of three, the min–max range does not.")
md.append("")

# ------------------------------------------------------------- JSON
out = {
    "timestamp": env["STAMP"],
    "commit": env["GIT_REV"],
    "machine": peers_src["machine"],
    "inputs": sources,
    "assumptions": {
        "headroom": HEADROOM,
        "cores_per_replica": CPR,
        "min_replicas": MIN_REPLICAS,
        "spare_replicas": SPARE,
        "scaling": "measured multi-thread figure" if multi_used else "linear from one core",
        "cores_formula": "ceil(qps * cpu_us_per_request / 1e6 / headroom)",
        "replicas_formula": "max(ceil(cores / cores_per_replica), min_replicas) + spare_replicas",
        "reference": REFERENCE,
    },
    "qps_targets": qps_targets,
    "proxies": [],
}
for r in rows:
    f = r["fig"]
    item = {"name": r["name"], "label": r["label"], "measured": r["measured"],
            "cpu_us_per_request": round(f["us"], 2) if r["measured"] else None}
    if f:
        item.update({
            "source": f["source"]["file"],
            "source_key": f["key"],
            "threads": f["threads"],
            "cpu_us_per_request_measured": f["us_measured"],
            "derived": f["derived"],
            "runs": f["runs"],
            "source_rps": f["rps"],
            "source_p99_ms": f["p99_ms"],
            "source_errors": f["errors"],
        })
    if r["measured"]:
        item["requests_per_core"] = r["per_core"]
    item["sizing"] = r["sizing"]
    out["proxies"].append(item)

with open(env["MD"], "w", encoding="utf-8") as fh:
    fh.write("\n".join(md) + "\n")
with open(env["JSON"], "w", encoding="utf-8") as fh:
    json.dump(out, fh, indent=2, ensure_ascii=False)
    fh.write("\n")
PY

show_results
