#!/usr/bin/env bash
# Sets up and runs the quickstart: a worker plus a client that emits a send-welcome-email run and prints its result.
# Uses $REDIS_URL when set; otherwise starts a private redis-server on a free loopback port (installing it with apt if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "The .NET SDK (10.0) is required: https://dotnet.microsoft.com/download" >&2
  exit 1
fi

if [ -z "${REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "Installing redis-server with apt..."
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo 6391)
  dir=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
  trap 'kill "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "Started a private Redis at $REDIS_URL"
fi

dotnet run --project samples/Redflow.Samples.Quickstart -c Release
