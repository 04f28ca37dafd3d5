#!/usr/bin/env bash
# Redflow benchmark, side by side with Hangfire and BullMQ on this machine, each against a fresh redis-server of
# its own on a free loopback port (persistence off; --aof for appendfsync everysec).
#   bash bench/run.sh [--quick] [--aof] [--redflow-only] [--waits]
# --redflow-only skips BullMQ and Hangfire (for before/after comparisons of Redflow builds); --waits runs Redflow's
# durable-wait workloads instead (waits_memory, sleep_lateness, signal_resume beside throughput_1step).
# Prints a table, then one machine-readable line per workload and system ("redflow throughput_nostep runs_per_s=...").
set -euo pipefail
cd "$(dirname "$0")"
quick=""; aof="no"; peers="yes"; waits=""
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --aof) aof="yes" ;;
    --redflow-only) peers="no" ;;
    --waits) waits="--waits"; peers="no" ;;
    *) echo "usage: bench/run.sh [--quick] [--aof] [--redflow-only] [--waits]" >&2; exit 2 ;;
  esac
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
