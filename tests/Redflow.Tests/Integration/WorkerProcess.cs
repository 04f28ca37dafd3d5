using System.Diagnostics;

namespace Redflow.Tests.Integration;

/// <summary>A Redflow.TestWorker process: started, waited for ("ready"), and killed or stopped by a test.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    private readonly List<string> _output = [];

    /// <summary>What the worker printed after "ready" (stdout and stderr), one entry a line.</summary>
    public IReadOnlyList<string> Output
    {
        get { lock (_output) return [.. _output]; }
    }

    /// <summary>Starts a worker on the shared Redis, or on <paramref name="url"/>; <paramref name="log"/> makes it log to stdout (see <see cref="Output"/>).</summary>
    public static async Task<WorkerProcess> StartAsync(string prefix, string ledger, TimeSpan lease, int stepTwoSleepMs, string? url = null, bool log = false)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (log) info.Environment["REDFLOW_TEST_LOG"] = "1";
        foreach (var arg in new[] { DllPath(), url ?? TestEnv.Url, prefix, ledger, ((int)lease.TotalMilliseconds).ToString(), stepTwoSleepMs.ToString() })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var ready = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
                if (line == "ready") return true;
            return false;
        });
        if (!await ready.WaitAsync(TimeSpan.FromSeconds(60)))
            throw new InvalidOperationException($"The test worker exited before it was ready: {await process.StandardError.ReadToEndAsync()}");
        var worker = new WorkerProcess(process);
        _ = worker.DrainAsync(process.StandardOutput); // keep draining, and keep what it prints
        _ = worker.DrainAsync(process.StandardError);
        return worker;
    }

    private async Task DrainAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
            lock (_output) _output.Add(line);
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    /// <summary>The test worker's dll, built beside this test assembly (same configuration).</summary>
    private static string DllPath()
    {
        var testBin = AppContext.BaseDirectory; // tests/Redflow.Tests/bin/<Configuration>/net10.0/
        var tfm = new DirectoryInfo(testBin).Name;
        var configuration = new DirectoryInfo(testBin).Parent!.Name;
        var path = Path.GetFullPath(Path.Combine(testBin, "..", "..", "..", "..", "Redflow.TestWorker", "bin", configuration, tfm, "Redflow.TestWorker.dll"));
        return File.Exists(path) ? path : throw new FileNotFoundException("Build tests/Redflow.TestWorker first.", path);
    }
}
