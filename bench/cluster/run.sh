#!/usr/bin/env bash
# Starts a throwaway Redis Cluster (3 primaries, 3 replicas, loopback, AOF everysec) and a single redis-server,
# runs the namespace scale-out benchmark against both, and stops every server it started (by pid).
# Usage: bench/cluster/run.sh [runs]   (results are printed and appended to bench/cluster/results/scaleout.txt)
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${1:-20000}
DIR=$(mktemp -d /tmp/redflow-bench-cluster.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
BASE=$((21000 + RANDOM % 8000))
PORTS=()
for i in 0 1 2 3 4 5; do
  P=$((BASE + i)); PORTS+=("$P"); mkdir -p "$DIR/$P"
  redis-server --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 --port "$P" --bind 127.0.0.1 \
    --dir "$DIR/$P" --save "" --appendonly yes --maxmemory-policy noeviction --repl-diskless-sync-delay 0 --logfile "$DIR/$P/log" &
  PIDS+=($!)
done
SINGLE=$((BASE + 6)); mkdir -p "$DIR/single"
redis-server --port "$SINGLE" --bind 127.0.0.1 --dir "$DIR/single" --save "" --appendonly yes --maxmemory-policy noeviction --logfile "$DIR/single/log" &
PIDS+=($!)
sleep 0.5
redis-cli --cluster create $(for P in "${PORTS[@]}"; do printf '127.0.0.1:%s ' "$P"; done) --cluster-replicas 1 --cluster-yes >/dev/null
until [ "$(redis-cli -p "${PORTS[0]}" cluster info | grep -c cluster_state:ok)" = 1 ]; do sleep 0.2; done
sleep 3 # replicas finish their first sync
URL=$(for P in "${PORTS[@]}"; do printf '127.0.0.1:%s,' "$P"; done); URL=${URL%,}
dotnet build -c Release -v q >/dev/null
mkdir -p results
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, redis $(redis-server --version | grep -o 'v=[0-9.]*'), $RUNS single-step runs"
  echo "single server:";        dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "127.0.0.1:$SINGLE" 1 "$RUNS"
  echo "cluster, 1 namespace:"; dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "$URL" 1 "$RUNS"
  echo "cluster, 3 namespaces:"; dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "$URL" 3 "$RUNS"
  echo "cluster, 6 namespaces:"; dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "$URL" 6 "$RUNS"
  echo "cluster, 1 namespace, WaitForReplicas=1:"; dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "$URL" 1 "$RUNS" 1
  echo "cluster, 3 namespaces, WaitForReplicas=1:"; dotnet bin/Release/net10.0/Redflow.Bench.Cluster.dll "$URL" 3 "$RUNS" 1
} | tee -a results/scaleout.txt
