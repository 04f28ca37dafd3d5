#!/usr/bin/env bash
# Times the dashboard's pages of 50 runs with many runs in Redis (a measurement; nothing is asserted about time).
#   bash scripts/dashboard-timing.sh                 # 20,000 runs
#   DASHBOARD_TIMING_RUNS=100000 bash scripts/dashboard-timing.sh
# Uses REDIS_URL if set, else starts a throwaway redis-server on a free loopback port (like the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
DASHBOARD_TIMING_RUNS="${DASHBOARD_TIMING_RUNS:-20000}" dotnet test tests/Redflow.Dashboard.Tests -c Release --filter "FullyQualifiedName~PageTiming" \
  --logger "console;verbosity=detailed" | grep -E "seeded|ms  median|Passed|Failed|error"
