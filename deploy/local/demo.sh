#!/usr/bin/env bash
# Arena demo on localhost: three sample esports pods (127.0.0.11-13:9100) behind the gateway
# (:8080, admin :9901) with the default config/gateway.yaml, and two pods of a new version
# (127.0.0.21-22, v2) that a canary release walks users onto. Each pod is an arena-sidecar on
# the pod address in front of an app on loopback that reports nothing itself: the sidecar
# reports its load, limits it, and cuts and captures what it cannot finish. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/prereqs.sh
deploy/local/faas-setup.sh
echo "==> building release binaries (first build takes a few minutes)"
cargo build --release --locked -p arena-gateway -p arena-sidecar -p arena-loadtest -p arena-pod --bins

BIN=target/release
LOGS=$(mktemp -d -t arena-demo.XXXXXX)
export ARENA_ADMIN_TOKEN=${ARENA_ADMIN_TOKEN:-demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')}
pids=()
cleanup() {
  echo; echo "==> stopping demo"
  # SIGINT is pingora's fast shutdown; SIGTERM would wait out the grace period.
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "logs kept in $LOGS"
}
trap cleanup EXIT INT TERM

# pod_with_sidecar IP VERSION: the app on 127.0.0.1:81xx, its sidecar on IP:9100 (admin 127.0.0.1:150xx).
pod_with_sidecar() {
  local ip=$1 version=$2 i=${1##*.}
  "$BIN/arena-pod" --listen "127.0.0.1:$((8100 + i))" --name "pod-$i" --version "$version" --latency 2ms --jitter 3ms \
    >"$LOGS/pod-$i.log" 2>&1 &
  pids+=($!)
  cat >"$LOGS/sidecar-$i.yaml" <<YAML
inbound:
  listen: $ip:9100
  app: 127.0.0.1:$((8100 + i))
  max_concurrency: adaptive
  request_timeout: 500ms           # below the gateway's per_try_timeout: the sidecar sees the cut first
  stuck_after: 3
  liveness_grace: 10s
  capture: { dir: $LOGS/captures-$i, max_files: 20 }
admin: { address: 127.0.0.1:$((15000 + i)) }
YAML
  "$BIN/arena-sidecar" check -c "$LOGS/sidecar-$i.yaml" >/dev/null
  "$BIN/arena-sidecar" run -c "$LOGS/sidecar-$i.yaml" >"$LOGS/sidecar-$i.log" 2>&1 &
  pids+=($!)
}
for i in 11 12 13; do pod_with_sidecar "127.0.0.$i" v1; done
for i in 21 22; do pod_with_sidecar "127.0.0.$i" v2; done

# The FaaS fallback: Google's functions-framework serving the sample esports function.
target/faas/venv/bin/functions-framework --target=handler --source loadtest/faas/http/main.py \
  --host 127.0.0.1 --port 8095 >"$LOGS/faas.log" 2>&1 &
pids+=($!)

"$BIN/arena-gateway" check -c config/gateway.yaml
"$BIN/arena-gateway" run -c config/gateway.yaml >"$LOGS/gateway.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs -o /dev/null http://127.0.0.1:9901/readyz && break
  sleep 0.1
done
curl -fs -o /dev/null http://127.0.0.1:9901/readyz || { echo "gateway did not become ready; see $LOGS/gateway.log" >&2; exit 1; }

cat <<MSG

Arena demo is running (logs: $LOGS)

  curl -i http://127.0.0.1:8080/v1/matches                       # live matches, picked by live load
  curl -i http://127.0.0.1:8080/v1/matches/lol-worlds25-final/live
  curl -i -H 'x-user-id: 42' http://127.0.0.1:8080/v1/players/faker/stats   # sticky by user
  curl -i http://127.0.0.1:8080/nope                              # 404 with a JSON error body
  curl -i -XPOST -d '{"match":"lol-1","kills":3}' http://127.0.0.1:8080/v1/verify

  # kill every v1 pod (app and sidecar) and watch the function take over (x-arena-backend: faas=esports-fn):
  pkill -f 'sidecar-1[123].yaml|--name pod-1[123]'; curl -i http://127.0.0.1:8080/v1/matches

  # the sidecars: each pod's load as its sidecar reports it (the apps report nothing themselves)
  curl -s http://127.0.0.1:15011/load                             # state, in flight, limit, baseline, CPU
  curl -s http://127.0.0.1:15011/metrics | grep arena_sidecar_
  # make pod-12 stuck (a dead loop): through the gateway, hedging and p2c move its traffic away at
  # once; sent to its sidecar directly, each call is cut at 500 ms (504) and captured, three make
  # the app stuck (/readyz 503, load reported full), ten seconds more and /livez fails
  curl -s -XPOST -d '{"stuck":true}' http://127.0.0.12:9100/_pod/config
  for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code} ' -XPOST -d '{"match":"lol-1"}' http://127.0.0.12:9100/v1/verify; done
  curl -s http://127.0.0.1:15012/readyz; sleep 11; curl -s http://127.0.0.1:15012/livez
  ls $LOGS/captures-12/ && $BIN/arena-sidecar replay $LOGS/captures-12 --to http://127.0.0.1:8112 --timeout 1s
  curl -s -XPOST -d '{"stuck":false}' http://127.0.0.1:8112/_pod/config

  open http://127.0.0.1:9901/ui                                   # the live page: routes, pods, releases (token: $ARENA_ADMIN_TOKEN)
  curl -s http://127.0.0.1:9901/clusters                          # pods: in-flight, EWMA, reported load
  curl -s http://127.0.0.1:9901/metrics | grep arena_
  curl -s -XPOST -H "authorization: Bearer $ARENA_ADMIN_TOKEN" http://127.0.0.1:9901/reload

  # the canary release: users walk onto v2 (5% → 25% → 50% → 100%, 20 s per healthy step)
  for i in \$(seq 20000); do curl -s -o /dev/null -H "x-user-id: \$i" http://127.0.0.1:8080/v1/matches; done &
  $BIN/arena-gateway canary status                               # state, weight, both versions live
  curl -si -H 'x-canary: 1' http://127.0.0.1:8080/v1/matches | grep -i 'x-arena-release\|x-pod-version'
  # break v2 and watch it roll back on its own (clients still get 200s: retried on stable):
  curl -s -XPOST -d '{"error_rate":0.3}' http://127.0.0.21:9100/_pod/config
  curl -s -XPOST -d '{"error_rate":0.3}' http://127.0.0.22:9100/_pod/config
  $BIN/arena-gateway canary status match-api-v2 --json | grep -m3 '"state"\|"weight"\|reason'
  # steer it yourself: set 25%, pause, resume, promote, rollback (the token is this demo's)
  ARENA_ADMIN_TOKEN=$ARENA_ADMIN_TOKEN $BIN/arena-gateway canary set match-api-v2 25%

  # make pod-13 slow and watch traffic move away from it:
  curl -s -XPOST -d '{"latency_ms":150}' http://127.0.0.13:9100/_pod/config
  for i in \$(seq 200); do curl -s -o /dev/null -w '%header{x-arena-backend}\n' http://127.0.0.1:8080/v1/matches; done | sort | uniq -c

Press Ctrl-C to stop.
MSG
wait
