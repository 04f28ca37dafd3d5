#!/usr/bin/env bash
# Runs every test (except the Slow category: long fault runs and the soak), then scripts/consumer-test.sh (one more
# test), and ends with "N passed, N failed".
# Tests need redis-server (installed here with apt when missing) or REDIS_URL; the fixture starts its own server.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "Installing redis-server with apt..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# The dashboard's browser tests drive Debian's Chromium through Playwright.
if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing chromium with apt (dashboard browser tests)..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

results=TestResults
rm -rf "$results"
dotnet test Redflow.sln -c Release --filter "Category!=Slow" \
  --logger "trx;LogFilePrefix=results" --logger "console;verbosity=minimal" --results-directory "$results" "$@"
status=$?

passed=0; failed=0; found=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  found=1
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(echo "$counters" | grep -o ' passed="[0-9]*"' | grep -o '[0-9]*'); passed=$((passed + ${p:-0}))
  f=$(echo "$counters" | grep -o ' failed="[0-9]*"' | grep -o '[0-9]*'); failed=$((failed + ${f:-0}))
done
# The packages as a new user takes them (scripts/consumer-test.sh): counted as one test.
echo "Running scripts/consumer-test.sh (packages, a fresh consumer project, the tool, the templates)..."
if bash scripts/consumer-test.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
# dotnet test failing without any counters (a build error, a crashed host) counts as a failure.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=$((failed + 1)); fi
if [ "$found" -eq 0 ] && [ "$status" -eq 0 ]; then failed=$((failed + 1)); echo "No test results were written."; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
