using System.Diagnostics;

namespace Redflow.Tests.Integration;

/// <summary>A Redflow.TestWorker process: started, waited for ("ready"), and killed or stopped by a test.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public static async Task<WorkerProcess> StartAsync(string prefix, string ledger, TimeSpan lease, int stepTwoSleepMs)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { DllPath(), TestEnv.Url, prefix, ledger, ((int)lease.TotalMilliseconds).ToString(), stepTwoSleepMs.ToString() })
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
        _ = process.StandardOutput.ReadToEndAsync(); // keep draining
        _ = process.StandardError.ReadToEndAsync();
        return new WorkerProcess(process);
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
