#!/usr/bin/env bash
# Before/after: Redflow's bench of several builds, run alternately in one sitting, each run against a fresh
# redis-server (as bench/run.sh starts it), then the median and spread (min-max) of each figure per build.
#   bash bench/compare.sh [--rounds N] [--full] TREE... # TREE: a checkout (e.g. a git worktree at the old commit)
# Each TREE's bench/Redflow.Bench is built in Release first. The load average is printed before every run.
set -euo pipefail
rounds=3; quick="--quick"; trees=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --full) quick=""; shift ;;
    -*) echo "usage: bench/compare.sh [--rounds N] [--full] TREE..." >&2; exit 2 ;;
    *) trees+=("$(cd "$1" && pwd)"); shift ;;
  esac
done
[ ${#trees[@]} -gt 0 ] || { echo "usage: bench/compare.sh [--rounds N] [--full] TREE..." >&2; exit 2; }

work=$(mktemp -d)
cleanup() { for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source "$(cd "$(dirname "$0")" && pwd)/fresh-redis.sh"

for t in "${trees[@]}"; do
  echo "Building $t ($(git -C "$t" rev-parse --short HEAD))..." >&2
  dotnet build "$t/bench/Redflow.Bench" -c Release -v q --nologo >/dev/null
done

out="$work/results.txt"
for r in $(seq 1 "$rounds"); do
  for t in "${trees[@]}"; do
    commit=$(git -C "$t" rev-parse --short HEAD)
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "round $r, $commit, load $load" >&2
    port=$(fresh_redis)
    dotnet "$t/bench/Redflow.Bench/bin/Release/net10.0/Redflow.Bench.dll" "redis://127.0.0.1:$port" $quick \
      | grep '^redflow ' | sed "s/^redflow /$commit $r load=$load /" | tee -a "$out" >&2
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
done

python3 - "$out" <<'PY'
import sys, collections, statistics
vals = collections.defaultdict(lambda: collections.defaultdict(list))  # (workload, key) -> commit -> values
loads = collections.defaultdict(list)
commits = []
for line in open(sys.argv[1]):
    commit, rnd, load, workload, *kv = line.split()
    if commit not in commits: commits.append(commit)
    loads[commit].append(float(load.split('=')[1]))
    for k, v in (p.split('=') for p in kv):
        vals[(workload, k)][commit].append(float(v))
keys = [('throughput_nostep', 'runs_per_s'), ('throughput_1step', 'runs_per_s'), ('latency', 'p50_ms'), ('latency', 'p99_ms'),
        ('ten_steps', 'steps_per_s'), ('children', 'runs_per_s'), ('memory', 'peak_working_set_mb'),
        ('throughput_nostep', 'worker_cpu_us'), ('throughput_nostep', 'worker_alloc_kb'), ('throughput_nostep', 'redis_cpu_us'), ('throughput_nostep', 'redis_commands'),
        ('throughput_1step', 'worker_cpu_us'), ('throughput_1step', 'worker_alloc_kb'), ('throughput_1step', 'redis_cpu_us'), ('throughput_1step', 'redis_commands')]
print('| workload | metric | ' + ' | '.join(f'{c} median (min-max)' for c in commits) + ' |')
print('| --- | --- | ' + ' | '.join('---:' for _ in commits) + ' |')
for w, k in keys:
    if (w, k) not in vals: continue
    cells = []
    for c in commits:
        xs = vals[(w, k)].get(c, [])
        cells.append(f'{statistics.median(xs):,.2f} ({min(xs):,.2f}-{max(xs):,.2f})' if xs else '-')
    print(f'| {w} | {k} | ' + ' | '.join(cells) + ' |')
print('| load average at start | 1 min | ' + ' | '.join(
    f'{statistics.median(loads[c]):.1f} ({min(loads[c]):.1f}-{max(loads[c]):.1f})' for c in commits) + ' |')
PY
echo
cat "$out"
