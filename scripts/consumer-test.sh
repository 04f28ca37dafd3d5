#!/usr/bin/env bash
# Tries the packages as a new user would, outside this repository:
#   1. packs every package (Redflow.sln) into a temporary folder, under a version of its own (0.1.0-consumer.<time>);
#   2. a fresh project (no central package management, its own nuget.config: that folder plus the usual sources)
#      references Redflow.Actors from the folder, runs a two-step workflow against a real Redis and prints its result;
#      `dotnet list package --include-transitive` of it must show no LightningDB (nor Akka.Cluster.Hosting, Sharding
#      or DistributedData);
#   3. another fresh project does the same with a ProjectReference to src/Redflow.Actors;
#   4. the Redflow.Cli tool installs from the folder (dotnet tool install --tool-path) and `redflow --help` runs;
#   5. both templates (redflow-worker, redflow-web) install from the folder (a private template hive), instantiate
#      and build; the worker template's test runs.
# Redis: $REDIS_URL, else a throwaway redis-server on a free loopback port. Prints "consumer-test: passed" or
# "consumer-test: FAILED at <step>" and exits 0 or 1. KEEP=1 keeps the temporary folder.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
work="$(mktemp -d /tmp/redflow-consumer-XXXXXX)"
feed="$work/feed"
version="0.1.0-consumer.$(date +%s)"
step="setup"
redis_pid=""
started=$SECONDS

cleanup() {
  local status=$?
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  # The packages of this run's version were cached in the global packages folder: drop them.
  for id in redflow.client redflow.actors redflow.dashboard redflow.cli redflow.templates; do
    rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/$id/$version"
  done
  if [ "${KEEP:-0}" = "1" ]; then echo "kept $work"; else rm -rf "$work"; fi
  if [ $status -eq 0 ]; then echo "consumer-test: passed ($((SECONDS - started)) s)"; else echo "consumer-test: FAILED at $step (logs above)"; fi
  exit $status
}
trap cleanup EXIT

run() { # run <log name> <command...>: quiet unless it fails
  local log="$work/$1.log" name="$1" t0=$SECONDS; shift
  if ! "$@" >"$log" 2>&1; then tail -40 "$log"; return 1; fi
  echo "  ($name: $((SECONDS - t0)) s)"
}

step="pack"
echo "consumer-test: packing $version into $feed"
run pack dotnet pack "$repo/Redflow.sln" -c Release -o "$feed" -p:VersionSuffix="${version#0.1.0-}"
ls "$feed"

step="redis"
if [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed and REDIS_URL is unset"; exit 1; }
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$work" --maxmemory-policy noeviction >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port"
fi

nuget_config() { # a nuget.config that adds the folder to the user's usual sources
  cat >"$1/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="redflow-local" value="$feed" />
  </packageSources>
</configuration>
XML
}

consumer() { # consumer <dir> <reference element>
  mkdir -p "$1"
  nuget_config "$1"
  cat >"$1/Consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
  </PropertyGroup>
  <ItemGroup>
    $2
  </ItemGroup>
</Project>
XML
  cat >"$1/Program.cs" <<'CS'
using Redflow;

var url = Environment.GetEnvironmentVariable("REDIS_URL") ?? "redis://localhost:6379";
var prefix = "consumer-" + Guid.NewGuid().ToString("N")[..8];
var order = Workflows.Define<Order, Receipt>("consumer-order", async ctx =>
{
    var total = await ctx.Step.RunAsync("price", ct => Task.FromResult(ctx.Input.Quantity * 5));
    var charge = await ctx.Step.RunAsync("charge", ct => Task.FromResult($"charged {total}"));
    return new Receipt(total, charge);
});

await using var worker = await RedflowWorker.StartAsync(new StartWorkerOptions { App = "consumer", Url = url, Prefix = prefix, Workflows = [order] });
await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
var handle = await client.EmitWorkflowAsync(order, new Order(3));
var receipt = await handle.ResultAsync(TimeSpan.FromSeconds(60));
var steps = await client.GetRunStepsAsync(handle.RunId);
Console.WriteLine($"result: total={receipt.Total} charge='{receipt.Charge}' steps={string.Join(",", steps.Select(s => $"{s.Name}:{s.Status}"))}");
await worker.StopAsync();
return receipt.Total == 15 && steps.Count == 2 ? 0 : 1;

public sealed record Order(int Quantity);
public sealed record Receipt(int Total, string Charge);
CS
}

step="package consumer"
consumer "$work/package-consumer" "<PackageReference Include=\"Redflow.Actors\" Version=\"$version\" />"
run package-build dotnet build "$work/package-consumer" -c Release
echo "package consumer: $(dotnet run --project "$work/package-consumer" -c Release --no-build)"

step="dependency list"
dotnet list "$work/package-consumer/Consumer.csproj" package --include-transitive >"$work/packages.txt"
if grep -iE "LightningDB|Akka\.Cluster\.Hosting|Akka\.Cluster\.Sharding|Akka\.DistributedData" "$work/packages.txt"; then
  echo "the consumer's dependencies include the packages above"; exit 1
fi
echo "dependencies: $(grep -cE '^\s+>' "$work/packages.txt") packages, no LightningDB; $(grep -E '> Akka.Cluster ' "$work/packages.txt" | xargs)"

step="project-reference consumer"
consumer "$work/project-consumer" "<ProjectReference Include=\"$repo/src/Redflow.Actors/Redflow.Actors.csproj\" />"
run project-build dotnet build "$work/project-consumer" -c Release
echo "project-reference consumer: $(dotnet run --project "$work/project-consumer" -c Release --no-build)"

step="tool"
mkdir -p "$work/tool" && nuget_config "$work/tool"
(cd "$work/tool" && run tool-install dotnet tool install Redflow.Cli --version "$version" --tool-path "$work/tool/bin")
"$work/tool/bin/redflow" --help >"$work/tool-help.txt"
grep -q "redflow: inspect and operate" "$work/tool-help.txt"
echo "tool: redflow --help ran ($(wc -l <"$work/tool-help.txt") lines)"

step="templates"
hive="$work/template-hive"
run template-install dotnet new install "$feed/Redflow.Templates.$version.nupkg" --debug:custom-hive "$hive"
mkdir -p "$work/templates" && nuget_config "$work/templates"
(cd "$work/templates" && run new-worker dotnet new redflow-worker -n Billing --debug:custom-hive "$hive" \
  && run new-web dotnet new redflow-web -n Portal --debug:custom-hive "$hive")
run worker-build dotnet build "$work/templates/Billing/Billing.slnx" -c Release
run worker-test dotnet test "$work/templates/Billing/Billing.slnx" -c Release --no-build
echo "template redflow-worker: built, $(grep -oE 'Passed: +[0-9]+' "$work/worker-test.log" | head -1)"
run web-build dotnet build "$work/templates/Portal/Portal.csproj" -c Release
echo "template redflow-web: built"
step="done"
