#!/usr/bin/env bash
# Starts three worker nodes as a cluster, emits work, kills (SIGKILL) the oldest node, which hosts the reaper and
# cron singletons, and shows that runs and cron ticks go on. Uses $REDIS_URL, or starts a private redis-server.
set -euo pipefail
cd "$(dirname "$0")"
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${redis_pid_file:-}" ] && kill "$(cat "$redis_pid_file")" 2>/dev/null || true
}
trap cleanup EXIT

if [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis_pid_file="$logs/redis.pid"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$logs" --daemonize yes --pidfile "$redis_pid_file" >/dev/null
  export REDIS_URL="redis://127.0.0.1:$port"
fi
echo "Redis: $REDIS_URL; logs in $logs"

dotnet build -c Release -v q --nologo >/dev/null
app="dotnet bin/Release/net10.0/Redflow.Samples.Cluster.dll"

for n in 1 2 3; do
  $app node "$n" >"$logs/node$n.log" 2>&1 &
  pids+=($!)
  until grep -q "ready" "$logs/node$n.log" 2>/dev/null; do sleep 0.2; done
  echo "node $n up (pid ${pids[-1]})"
done

$app emit 20 >"$logs/emit.log" 2>&1 &
emit_pid=$!
sleep 6
echo "killing node 1 (pid ${pids[0]}), which hosts the reaper and cron singletons"
kill -9 "${pids[0]}"
wait "$emit_pid" && echo "emit: $(tail -1 "$logs/emit.log")" || { cat "$logs/emit.log"; exit 1; }
sleep 12   # let cron fire a few ticks from the singleton's new node
$app report
