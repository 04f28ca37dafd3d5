#!/usr/bin/env bash
# Redflow benchmark, side by side with BullMQ and Hangfire on this machine, each against a fresh redis-server of
# its own on a free loopback port (persistence off; --aof for appendfsync everysec).
#   bash bench/run.sh [--quick] [--aof] [--redflow-only] [--rounds N] [--waits] [--keys]
# By default the systems are interleaved for N rounds (3; with --quick 1) in one sitting: each round runs Redflow,
# then BullMQ, then Hangfire, each a process and a fresh Redis of its own, so that a noisy phase of the machine does
# not land on one system alone; the load average is printed before every run. The summary gives, per workload and
# metric, each system's median (min-max) across rounds and, under "vs bullmq" / "vs hangfire", the median (min-max)
# of the per-round ratios (> 1x: Redflow better), then each round's headline figures, ratios and loads.
# --quick runs each bench's short profile; --redflow-only skips BullMQ and Hangfire (still N rounds; for before/after
# comparisons of Redflow builds see bench/compare.sh); --waits runs Redflow's durable-wait workloads instead
# (waits_memory, sleep_lateness, signal_resume beside throughput_1step), one round unless --rounds is given.
# --keys runs flow control's workload instead: single-step runs/s without keys (throughput_1step) and with 1,000
# distinct keys at MaxConcurrencyPerKey = 1 (throughput_1step_keys), alternately for N rounds (3, with --quick too),
# each in a process and a fresh Redis of its own; prints each round's figures and ratio, then medians and min-max.
# Then prints one machine-readable line per round, workload and system, the round and load first:
# "1 load=0.52 redflow throughput_nostep runs_per_s=..." (--keys: "1 load=0.52 throughput_1step runs_per_s=...").
set -euo pipefail
cd "$(dirname "$0")"
quick=""; aof="no"; peers="yes"; waits=""; keys=""; rounds=""
usage="usage: bench/run.sh [--quick] [--aof] [--redflow-only] [--rounds N] [--waits] [--keys]"
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
if [ -z "$rounds" ]; then # 3 rounds; one with --quick or --waits (not with --keys)
  if [ -z "$keys" ] && [ -n "$quick$waits" ]; then rounds=1; else rounds=3; fi
fi
case "$rounds" in ''|*[!0-9]*|0) echo "--rounds N: a positive integer, not '$rounds'" >&2; echo "$usage" >&2; exit 2 ;; esac
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

work=$(mktemp -d)
cleanup() { for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source ./fresh-redis.sh # run.sh runs in bench/

echo "Building (Release)..." >&2
build() { dotnet build "$@" -c Release -v q --nologo >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }; }
build Redflow.Bench
if [ "$peers" = yes ]; then
  build Hangfire.Bench
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

# Interleaved, round by round: Redflow, then BullMQ, then Hangfire; each a process and a fresh Redis of its own.
systems=(redflow); [ "$peers" = yes ] && systems+=(bullmq hangfire)
bench() { # bench SYSTEM PORT: that system's bench against the Redis on PORT ("SYSTEM workload key=value ..." lines)
  case "$1" in
    redflow) dotnet Redflow.Bench/bin/Release/net10.0/Redflow.Bench.dll "redis://127.0.0.1:$2" $quick $waits ;;
    bullmq) (cd bullmq && node bench.mjs "$2" $quick 2>/dev/null) ;;
    hangfire) dotnet Hangfire.Bench/bin/Release/net10.0/Hangfire.Bench.dll "127.0.0.1:$2" $quick ;;
  esac
}
for r in $(seq 1 "$rounds"); do
  for s in "${systems[@]}"; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "round $r, $s, load $load" >&2
    port=$(fresh_redis)
    bench "$s" "$port" | grep "^$s " | sed "s/^/$r load=$load /" | tee -a "$out" >&2
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
done

python3 - "$out" <<'PY'
import sys, collections, statistics
SYSTEMS = ('redflow', 'bullmq', 'hangfire')
data = collections.defaultdict(lambda: collections.defaultdict(dict))  # workload -> system -> round -> {key: value}
loads = {}  # (round, system) -> 1-min load average at the start of that system's run
for line in open(sys.argv[1]):
    try:
        rnd, load, system, workload, *kv = line.split()
        rnd, load = int(rnd), float(load.split('=', 1)[1])
    except (ValueError, IndexError):
        continue
    loads[(rnd, system)] = load
    if workload.endswith('_commands'): continue  # Redflow's --commands lines (INFO commandstats per run): not figures
    figures = {}
    for p in kv:
        k, _, v = p.partition('=')
        try: figures[k] = float(v)
        except ValueError: pass  # not a number: ignored
    data[workload][system][rnd] = figures
rounds = sorted({r for r, _ in loads})
metric = {'throughput_nostep': 'runs_per_s', 'throughput_1step': 'runs_per_s', 'throughput_1step_after': 'runs_per_s', 'latency': 'p50_ms', 'ten_steps': 'steps_per_s',
          'children': 'runs_per_s', 'memory': 'peak_working_set_mb', 'signal_resume': 'runs_per_s', 'sleep_lateness': 'p50_ms',
          'waits_memory': 'signal_bytes_per_run', 'throughput_1step_keys': 'runs_per_s'}
def lower_is_better(key):
    return key.endswith(('_ms', '_us', '_mb', '_kb', '_per_run')) or key in ('round_trips', 'redis_commands', 'emit_redis_commands')
def value(w, system, r, key): return data[w].get(system, {}).get(r, {}).get(key)
def ratio(w, peer, r, key):  # within one round; > 1: Redflow better
    a, b = value(w, 'redflow', r, key), value(w, peer, r, key)
    if a is None or b is None: return None
    if lower_is_better(key): return b / a if a else None
    return a / b if b else None
def fmt(x, like=None):  # decimals by magnitude (of like, if given: one cell's figures alike)
    m = abs(x if like is None else like)
    return f"{x:,.0f}" if m >= 1000 else f"{x:,.1f}" if m >= 100 else f"{x:,.2f}"
def spread(xs, unit=''):  # median (min-max); one value alone
    xs = [x for x in xs if x is not None]
    if not xs: return '-'
    if len(xs) == 1: return fmt(xs[0]) + unit
    m = statistics.median(xs)
    return f"{fmt(m)}{unit} ({fmt(min(xs), m)}-{fmt(max(xs), m)})"
def has(w, key): return any(key in f for per_round in data[w].values() for f in per_round.values())
present = [s for s in SYSTEMS if any(s in d for d in data.values())]
peers = [s for s in present if s != 'redflow']
many = len(rounds) > 1
print(f"{len(rounds)} round(s) of {', '.join(present)}" + (", interleaved" if peers and many else "") + ("; median (min-max) across rounds" if many else "")
      + ("; vs: " + ("median (min-max) of the per-round ratios, " if many else "") + "> 1x: Redflow better" if peers else ""))
table = [['workload', 'metric'] + present + ['vs ' + p for p in peers]]
for w in data:
    main = metric.get(w) or next((k for k in ('runs_per_s', 'p50_ms') if has(w, k)), None)
    keys = [main] + (['p90_ms', 'p99_ms', 'max_ms'] if w == 'latency' else ['p99_ms', 'max_ms'] if w == 'sleep_lateness' else []) \
        + (['sleep_bytes_per_run'] if w == 'waits_memory' else []) + ['round_trips', 'worker_cpu_us', 'redis_cpu_us', 'redis_commands']
    # Where the time goes, per run: script calls, CPU of the worker process and of redis-server, and commands Redis ran.
    for key in dict.fromkeys(k for k in keys if k and has(w, k)):
        cells = [spread([value(w, s, r, key) for r in rounds]) for s in present]
        vs = [spread([ratio(w, p, r, key) for r in rounds], 'x') for p in peers]
        table.append([w, key] + cells + vs)
widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
for row in table: print('  '.join(c.ljust(n) if i < 2 else c.rjust(n) for i, (c, n) in enumerate(zip(row, widths))))
headline = [(w, k) for w, k in (('throughput_nostep', 'runs_per_s'), ('throughput_1step', 'runs_per_s'), ('ten_steps', 'steps_per_s'),
                                ('latency', 'p50_ms'), ('latency', 'p99_ms')) if w in data and has(w, k)]
if headline:
    print()
    print("per round; load: the 1-min load average at the start of each system's run")
    print(f"{'round':>5} {'workload':<18} {'metric':<12} " + ' '.join(f"{s:>10}" for s in present)
          + ''.join(f" {'vs ' + p:>11}" for p in peers) + '  load (' + ' / '.join(present) + ')')
    for r in rounds:
        for i, (w, k) in enumerate(headline):
            cells = [value(w, s, r, k) for s in present]
            vs = [ratio(w, p, r, k) for p in peers]
            load = '  ' + ' / '.join(f"{loads[(r, s)]:.2f}" if (r, s) in loads else '-' for s in present) if i == 0 else ''
            print(f"{r if i == 0 else '':>5} {w:<18} {k:<12} " + ' '.join(f"{'-' if c is None else fmt(c):>10}" for c in cells)
                  + ''.join(f" {'-' if x is None else f'{x:.2f}x':>11}" for x in vs) + load)
PY
echo
cat "$out"
