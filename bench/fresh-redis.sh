# Sourced by bench/run.sh and bench/compare.sh: fresh_redis starts a redis-server of its own on a free loopback port
# (persistence off unless $aof is "yes": then appendfsync everysec), its files and pid under $work, and prints its port.
fresh_redis() {
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly "${aof:-no}" --appendfsync everysec \
    --maxmemory-policy noeviction --dir "$work/$port" --daemonize yes --pidfile "$work/$port.pid" >/dev/null
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$port"
}
