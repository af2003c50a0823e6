#!/usr/bin/env bash
# Regenerates the audit fixtures from the REAL tools (genai-bench, Locust, openai-python,
# LiteLLM proxy) run against a mock upstream on 127.0.0.1 while tcpdump records the wire.
# Each scenario leaves in fixtures/<scenario>/: the tool's own output, wire.pcap,
# mock.jsonl (the mock's view, a second witness) and wire.jsonl (`ratewire replay`).
#
# Usage: scripts/make-fixtures.sh [scenario...]     (root: tcpdump on lo)
#        scripts/make-fixtures.sh --replay-only    (wire.pcap.gz -> wire.jsonl again)
# Scenarios: genai_bench_clean genai_bench_cohere genai_bench_sse_error
#   genai_bench_boundary genai_bench_multi locust_sdk_retries locust_boundary litellm_gateway
# Env: VENV (default /tmp/rw-venv), TOK (tokenizer dir), RATEWIRE (the ratewire
#   binary) or REPLAY (a command taking `CAPTURE --output FILE`).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CRATE="$(dirname "$HERE")"
ROOT="$(cd "$CRATE/../../.." && pwd)"
FIX="$CRATE/fixtures"
VENV="${VENV:-/tmp/rw-venv}"
PY="$VENV/bin/python"
TOK="${TOK:-/tmp/rw-tokenizer}"
rm -rf /tmp/rw-fixtures.*
WORK="$(mktemp -d /tmp/rw-fixtures.XXXXXX)"
PIDS=()
LITELLM_KEY=sk-fixture-master-0f9e8d7c6b5a49382716051423324150 # as in litellm_config.yaml

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q genai-bench locust 'litellm[proxy]' openai prometheus_client
  fi
  [ -f "$TOK/tokenizer.json" ] || "$PY" "$HERE/make_tokenizer.py" "$TOK" 2>/dev/null
}

# start_mock PORT LOG ARGS... : a mock upstream in the background
start_mock() {
  local port=$1 log=$2; shift 2
  python3 "$HERE/mock_upstream.py" --listen "127.0.0.1:$port" --log "$log" "$@" 2>>"$WORK/mock.err" &
  PIDS+=($!)
  wait_port "$port"
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  return 1
}

# start_capture PCAP PORT... : tcpdump on lo for these ports; sets CAPTURE_PID
start_capture() {
  local pcap=$1; shift
  local filter="tcp port $1"; shift
  for p in "$@"; do filter="$filter or tcp port $p"; done
  tcpdump -i lo -U -s 0 -w "$pcap" "$filter" 2>>"$WORK/tcpdump.err" &
  CAPTURE_PID=$!
  PIDS+=($CAPTURE_PID)
  sleep 1 # tcpdump needs a moment before it sees packets
}

stop_capture() {
  sleep 1
  kill -INT "$CAPTURE_PID"
  wait "$CAPTURE_PID" 2>/dev/null || true
}

stop_all() {
  for pid in "${PIDS[@]:-}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# replay DIR : DIR/wire.pcap -> DIR/wire.jsonl with `ratewire replay`, then keep the
# capture gzipped (wire.pcap.gz) so journals can be remade without the tools.
# REPLAY overrides the command (it gets: CAPTURE --output FILE).
replay() {
  local dir=$1 cmd=()
  if [ -n "${REPLAY:-}" ]; then
    read -r -a cmd <<<"$REPLAY"
  else
    local bin
    for bin in "${RATEWIRE:-}" "$ROOT/target/release/ratewire" "$ROOT/target/debug/ratewire"; do
      if [ -n "$bin" ] && [ -x "$bin" ] && "$bin" replay --help >/dev/null 2>&1; then
        cmd=("$bin" replay)
        break
      fi
    done
  fi
  if [ ${#cmd[@]} -eq 0 ]; then
    echo "note: no \`ratewire replay\` (build it, or set REPLAY): $dir/wire.jsonl not made" >&2
  else
    "${cmd[@]}" "$dir/wire.pcap" --output "$dir/wire.jsonl" >/dev/null
  fi
  gzip -9 -f "$dir/wire.pcap"
}

# Remake every wire.jsonl from the committed captures (no tools needed).
replay_only() {
  local gz dir
  for gz in "$FIX"/*/wire.pcap.gz; do
    dir=$(dirname "$gz")
    gunzip -k -f "$gz"
    replay "$dir"
    echo "replayed $dir"
  done
}

# genai_bench NAME ARGS... : one genai-bench experiment, run in its own directory
# (genai_bench.log lands in the working directory). A run stops on the first 1 s tick
# past --max-requests-per-run; requests still in flight then are never recorded.
genai_bench() {
  local name=$1; shift
  mkdir -p "$WORK/$name"
  # (--api-backend must come before --task.)
  (cd "$WORK/$name" && "$VENV/bin/genai-bench" benchmark "$@" --api-model-name mock-model \
    --model-tokenizer "$TOK" --task text-to-text --traffic-scenario "D(10,10)" \
    --max-time-per-run 1 --experiment-base-dir "$WORK/$name" --experiment-folder-name experiment \
    >"$WORK/$name.out" 2>&1) || { echo "genai-bench failed, see $WORK/$name.out" >&2; return 1; }
}

# keep_genai_bench NAME OUT : the run JSONs, metadata and log (not the plots/xlsx)
keep_genai_bench() {
  mkdir -p "$2/experiment"
  cp "$WORK/$1/experiment/"*.json "$2/experiment/"
  cp "$WORK/$1/genai_bench.log" "$2/experiment/"
}

# locust NAME LOCUSTFILE HOST ARGS... : a headless Locust run with --csv and --json-file
locust_run() {
  local name=$1 file=$2 host=$3; shift 3
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && "$VENV/bin/locust" -f "$HERE/$file" --headless --host "$host" \
    --csv "$WORK/$name/locust" --csv-full-history --json-file "$WORK/$name/locust" \
    --only-summary "$@" >"$WORK/$name.out" 2>&1) || true # exits 1 when any request failed
}

keep_locust() {
  mkdir -p "$2"
  cp "$WORK/$1/"locust_*.csv "$WORK/$1/locust.json" "$2/"
}

# A clean run: every response 200. The audit must raise no alarm (requests in flight
# at the stop tick are the only difference, and they are boundary, not dropped).
scenario_genai_bench_clean() {
  local name=genai-bench-clean port=9111 out=$FIX/genai-bench-clean
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200 --delay-ms 40
  start_capture "$out/wire.pcap" $port
  genai_bench $name --api-backend openai --api-base "http://127.0.0.1:$port" \
    --api-key sk-fixture-not-a-key --num-concurrency 2 --max-requests-per-run 30
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  replay "$out"
}

# genai-bench's Cohere user: raise_for_status() then `except RequestException: 500`,
# so every upstream 429 is reported as 500 (misreported).
scenario_genai_bench_cohere() {
  local name=genai-bench-cohere port=9112 out=$FIX/genai-bench-cohere
  rm -rf "$out"; mkdir -p "$out"
  # The Cohere backend authenticates through OCI's config file: a throwaway one.
  openssl genrsa -out "$WORK/oci-key.pem" 2048 2>/dev/null
  cat >"$WORK/oci-config" <<CFG
[DEFAULT]
user=ocid1.user.oc1..fixture
fingerprint=00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff
tenancy=ocid1.tenancy.oc1..fixture
region=us-chicago-1
key_file=$WORK/oci-key.pem
CFG
  start_mock $port "$out/mock.jsonl" --plan 200x4,429x2 --retry-after 1 --delay-ms 40
  start_capture "$out/wire.pcap" $port
  genai_bench $name --api-backend cohere --api-base "http://127.0.0.1:$port" \
    --config-file "$WORK/oci-config" --num-concurrency 2 --max-requests-per-run 30
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  replay "$out"
}

# HTTP 200 whose SSE stream carries an `error` event with code 429: genai-bench reports
# 429 where the wire carried 200 (phantom).
scenario_genai_bench_sse_error() {
  local name=genai-bench-sse-error port=9113 out=$FIX/genai-bench-sse-error
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200x5,e429 --delay-ms 40
  start_capture "$out/wire.pcap" $port
  genai_bench $name --api-backend openai --api-base "http://127.0.0.1:$port" \
    --api-key sk-fixture-not-a-key --num-concurrency 2 --max-requests-per-run 30
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  replay "$out"
}

# A slow upstream and a request cap: the run stops on its 1 s tick with requests in
# flight; genai-bench never records them while the wire carries their responses.
scenario_genai_bench_boundary() {
  local name=genai-bench-boundary port=9116 out=$FIX/genai-bench-boundary
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200x3,429 --retry-after 1 --delay-ms 450
  start_capture "$out/wire.pcap" $port
  genai_bench $name --api-backend openai --api-base "http://127.0.0.1:$port" \
    --api-key sk-fixture-not-a-key --num-concurrency 4 --max-requests-per-run 4
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  replay "$out"
}

# Two runs in one experiment (concurrency 2, then 10): the run files sort as "10"
# before "2", the log says the order they ran in; each run owns its own responses.
scenario_genai_bench_multi() {
  local name=genai-bench-multi port=9117 out=$FIX/genai-bench-multi
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200x4,429 --retry-after 1 --delay-ms 300
  start_capture "$out/wire.pcap" $port
  genai_bench $name --api-backend openai --api-base "http://127.0.0.1:$port" \
    --api-key sk-fixture-not-a-key --num-concurrency 2 --num-concurrency 10 --max-requests-per-run 4
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  replay "$out"
}

# Locust + openai-python (default max_retries=2): the SDK retries 429s into successes,
# Locust shows no failure (retry_absorbed; x-stainless-retry-count pairs the attempts).
# --stop-timeout lets users finish, so nothing is in flight at the stop.
scenario_locust_sdk_retries() {
  local name=locust-sdk-retries port=9114 out=$FIX/locust-sdk-retries
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200x3,429 --retry-after-ms 100 --delay-ms 20
  start_capture "$out/wire.pcap" $port
  locust_run $name locust_sdk.py "http://127.0.0.1:$port" -u 2 -r 2 -t 3s --stop-timeout 5
  stop_capture; stop_all
  keep_locust $name "$out"
  replay "$out"
}

# Locust HttpUser, slow upstream, no --stop-timeout: users are killed mid-request at
# the stop (the wire carries responses Locust never records), and the CSV writer's
# last write is up to 1 s before the end (boundary vs dropped).
scenario_locust_boundary() {
  local name=locust-boundary port=9115 out=$FIX/locust-boundary
  rm -rf "$out"; mkdir -p "$out"
  start_mock $port "$out/mock.jsonl" --plan 200x8,429x2 --retry-after 1 --delay-ms 300
  start_capture "$out/wire.pcap" $port
  locust_run $name locust_http.py "http://127.0.0.1:$port" -u 4 -r 4 -t 3s
  stop_capture; stop_all
  keep_locust $name "$out"
  replay "$out"
}

# LiteLLM proxy (router, two deployments, num_retries=2) between genai-bench and two
# upstreams; upstream A answers every other request 429. The router retries those,
# possibly onto B: the client leg shows few or no 429s (retry_absorbed by the gateway),
# and the proxy's Prometheus counters are compared with the upstream leg.
scenario_litellm_gateway() {
  local name=litellm-gateway out=$FIX/litellm-gateway
  rm -rf "$out"; mkdir -p "$out"
  start_mock 9121 "$out/mock-a.jsonl" --plan 429,200 --delay-ms 20
  start_mock 9122 "$out/mock-b.jsonl" --plan 200 --delay-ms 20
  start_capture "$out/wire.pcap" 9120 9121 9122
  (cd "$WORK" && LITELLM_LOCAL_MODEL_COST_MAP=True exec "$VENV/bin/litellm" --config "$HERE/litellm_config.yaml" --host 127.0.0.1 \
      --port 9120 --num_workers 1 >"$WORK/litellm.log" 2>&1) &
  PIDS+=($!)
  wait_port 9120 || { cat "$WORK/litellm.log" >&2; return 1; }
  sleep 3 # the proxy finishes its startup after the port opens
  genai_bench $name --api-backend openai --api-base "http://127.0.0.1:9120" \
    --api-key "$LITELLM_KEY" --num-concurrency 2 --max-requests-per-run 30
  # The proxy's Prometheus counters (request/failure families only: the latency
  # histograms are most of the page and say nothing about status codes).
  curl -sfL http://127.0.0.1:9120/metrics/ -H "Authorization: Bearer $LITELLM_KEY" |
    grep -E '^(# (HELP|TYPE) )?litellm_(deployment|proxy)_[a-z_]*(total|cooled_down)[{ ]' \
    >"$out/litellm-metrics.prom"
  stop_capture; stop_all
  keep_genai_bench $name "$out"
  # The proxy's stdout: uvicorn access lines among LiteLLM's own messages.
  cp "$WORK/litellm.log" "$out/litellm.log"
  replay "$out"
}

main() {
  if [ "${1:-}" = "--replay-only" ]; then
    replay_only
    return
  fi
  setup
  local all=(genai_bench_clean genai_bench_cohere genai_bench_sse_error genai_bench_boundary genai_bench_multi locust_sdk_retries locust_boundary litellm_gateway)
  local wanted=("$@")
  [ ${#wanted[@]} -eq 0 ] && wanted=("${all[@]}")
  for s in "${wanted[@]}"; do
    echo "== $s"
    "scenario_${s//-/_}"
  done
  # The formats no tool here produces (Envoy/Plano, nginx, vLLM, aiperf, guidellm,
  # JSON Lines): written from their documented formats, deterministic.
  python3 "$HERE/make_synthetic_fixtures.py" "$FIX/synthetic"
  echo "work dir (tool stdout, errors): $WORK"
}

main "$@"
