#!/usr/bin/env bash
# Redflow benchmark, side by side with Hangfire and BullMQ on this machine, each against a fresh redis-server of
# its own on a free loopback port (persistence off; --aof for appendfsync everysec).
#   bash bench/run.sh [--quick] [--aof] [--redflow-only] [--waits] [--keys [--rounds N]]
# --redflow-only skips BullMQ and Hangfire (for before/after comparisons of Redflow builds); --waits runs Redflow's
# durable-wait workloads instead (waits_memory, sleep_lateness, signal_resume beside throughput_1step).
# --keys runs flow control's workload instead: single-step runs/s without keys (throughput_1step) and with 1,000
# distinct keys at MaxConcurrencyPerKey = 1 (throughput_1step_keys), alternately for N rounds (default 3), each in a
# process and a fresh Redis of its own; prints each round's figures and ratio, then medians and min-max.
# Prints a table, then one machine-readable line per workload and system ("redflow throughput_nostep runs_per_s=...").
set -euo pipefail
cd "$(dirname "$0")"
quick=""; aof="no"; peers="yes"; waits=""; keys=""; rounds=3
usage="usage: bench/run.sh [--quick] [--aof] [--redflow-only] [--waits] [--keys [--rounds N]]"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick="--quick" ;;
    --aof) aof="yes" ;;
    --redflow-only) peers="no" ;;
    --waits) waits="--waits"; peers="no" ;;
    --keys) keys="--keys"; peers="no" ;;
    --rounds) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; rounds="$2"; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

work=$(mktemp -d)
cleanup() { for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source ./fresh-redis.sh # run.sh runs in bench/

echo "Building (Release)..." >&2
dotnet build Redflow.Bench -c Release -v q --nologo >/dev/null
if [ "$peers" = yes ]; then
  dotnet build Hangfire.Bench -c Release -v q --nologo >/dev/null
  (cd bullmq && npm ci --no-audit --no-fund --silent >/dev/null 2>&1 || npm install --no-audit --no-fund --silent >/dev/null)
fi

out="$work/results.txt"
if [ -n "$keys" ]; then
  # Alternately, round by round: no keys, then 1,000 keys; each a process and a fresh Redis of its own.
  for r in $(seq 1 "$rounds"); do
    for w in throughput_1step throughput_1step_keys; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      echo "round $r, $w, load $load" >&2
      port=$(fresh_redis)
      dotnet Redflow.Bench/bin/Release/net10.0/Redflow.Bench.dll "redis://127.0.0.1:$port" $quick --keys --only "$w" \
        | grep '^redflow ' | sed "s/^redflow /$r load=$load /" | tee -a "$out" >&2
      redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
  done
  python3 - "$out" <<'PY'
import sys, collections, statistics
runs = collections.defaultdict(dict)  # round -> workload -> figures
for line in open(sys.argv[1]):
    rnd, load, workload, *kv = line.split()
    if workload.endswith('_commands'): continue
    runs[int(rnd)][workload] = dict(dict((k, float(v)) for k, v in (p.split('=') for p in kv)), load=float(load.split('=')[1]))
cols = ['runs_per_s', 'redis_commands', 'redis_cpu_us', 'worker_cpu_us', 'emit_per_s', 'emit_redis_commands', 'load']
print('| round | ' + ' | '.join(f'{c} (no keys / keys)' for c in cols) + ' | ratio keys / no keys |')
print('| ---: | ' + ' | '.join('---:' for _ in cols) + ' | ---: |')
ratios = []
for r in sorted(runs):
    a, b = runs[r].get('throughput_1step'), runs[r].get('throughput_1step_keys')
    if not a or not b: continue
    ratios.append(b['runs_per_s'] / a['runs_per_s'])
    print(f'| {r} | ' + ' | '.join(f"{a[c]:,.2f} / {b[c]:,.2f}" for c in cols) + f' | {ratios[-1]:.2f} |')
def summary(xs): return f'{statistics.median(xs):,.2f} ({min(xs):,.2f}-{max(xs):,.2f})' if xs else '-'
for c in cols:
    print(f"median (min-max) {c}: no keys {summary([runs[r]['throughput_1step'][c] for r in runs if 'throughput_1step' in runs[r]])}, "
          f"keys {summary([runs[r]['throughput_1step_keys'][c] for r in runs if 'throughput_1step_keys' in runs[r]])}")
print(f'ratio keys / no keys per round: median (min-max) {summary(ratios)}; target >= 0.5: ' + ('met' if ratios and statistics.median(ratios) >= 0.5 else 'NOT met'))
PY
  echo
  cat "$out"
  exit 0
fi
echo "Redflow..." >&2
port=$(fresh_redis); dotnet Redflow.Bench/bin/Release/net10.0/Redflow.Bench.dll "redis://127.0.0.1:$port" $quick $waits | grep '^redflow ' | tee -a "$out" >&2
if [ "$peers" = yes ]; then
  echo "BullMQ..." >&2
  port=$(fresh_redis); (cd bullmq && node bench.mjs "$port" $quick 2>/dev/null) | grep '^bullmq ' | tee -a "$out" >&2
  echo "Hangfire..." >&2
  port=$(fresh_redis); dotnet Hangfire.Bench/bin/Release/net10.0/Hangfire.Bench.dll "127.0.0.1:$port" $quick | grep '^hangfire ' | tee -a "$out" >&2
fi

python3 - "$out" <<'PY'
import sys, collections
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    system, workload, *kv = line.split()
    rows[workload][system] = dict(p.split('=') for p in kv)
metric = {'throughput_nostep': 'runs_per_s', 'throughput_1step': 'runs_per_s', 'throughput_1step_after': 'runs_per_s', 'latency': 'p50_ms', 'ten_steps': 'steps_per_s',
          'children': 'runs_per_s', 'memory': 'peak_working_set_mb', 'signal_resume': 'runs_per_s', 'sleep_lateness': 'p50_ms',
          'waits_memory': 'signal_bytes_per_run'}
print(f"{'workload':<18} {'metric':<20} {'redflow':>10} {'bullmq':>10} {'hangfire':>10} {'vs bullmq':>10} {'vs hangfire':>12}")
for workload, systems in rows.items():
    keys = [metric.get(workload)] + (['p99_ms'] if workload in ('latency', 'sleep_lateness') else []) \
        + (['max_ms'] if workload == 'sleep_lateness' else []) + (['sleep_bytes_per_run'] if workload == 'waits_memory' else []) + (['round_trips'] if 'round_trips' in systems.get('redflow', {}) else [])
    # Where the time goes, per run: CPU of the worker process and of redis-server, and commands Redis ran.
    keys += [k for k in ('worker_cpu_us', 'redis_cpu_us', 'redis_commands') if k in systems.get('redflow', {})]
    for key in keys:
        v = {s: float(systems[s][key]) if key in systems.get(s, {}) else None for s in ('redflow', 'bullmq', 'hangfire')}
        lower_is_better = key.endswith('_ms') or key.endswith('_us') or key in ('round_trips', 'redis_commands') or key.endswith('_mb')
        def ratio(peer):
            if v['redflow'] is None or v[peer] is None or v['redflow'] == 0: return '-'
            r = v[peer] / v['redflow'] if lower_is_better else v['redflow'] / v[peer]
            return f"{r:.2f}x"
        f = lambda x: '-' if x is None else f"{x:.2f}"
        print(f"{workload:<18} {key:<20} {f(v['redflow']):>10} {f(v['bullmq']):>10} {f(v['hangfire']):>10} {ratio('bullmq'):>10} {ratio('hangfire'):>12}")
PY
echo
cat "$out"
