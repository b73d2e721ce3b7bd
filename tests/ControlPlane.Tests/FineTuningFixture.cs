using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>Recordings for fine-tuning tests, made once: two takes by an espeak-ng speaker (about 2.7 min with transcripts) and a short one.</summary>
public sealed class FineTuningFixture : IDisposable
{
    public FineTuningFixture()
    {
        Folder = Directory.CreateTempSubdirectory("timbre-ft-").FullName;
        Directory.CreateDirectory(Takes);
        Directory.CreateDirectory(FewTakes);
        // finetune.speakers makes the takes, so the tests and ops/eval-finetune hear the same speakers.
        Python($"""
            from finetune.speakers import recording, sentences
            texts = sentences(52, seed=11)
            recording('espeak-male-gb', texts[:26], '{Takes}/take-1.wav', seed=0)
            recording('espeak-male-gb', texts[26:], '{Takes}/take-2.wav', seed=1)
            recording('espeak-male-gb', sentences(10, seed=2), '{FewTakes}/short.wav', seed=2)
            """);
    }

    public string Folder { get; }

    /// <summary>take-1.wav, take-2.wav and their .txt transcripts.</summary>
    public string Takes => Path.Combine(Folder, "takes");

    /// <summary>About 30 s of speech: under the classic trainer's two minutes.</summary>
    public string FewTakes => Path.Combine(Folder, "few");

    public static void Python(string code)
    {
        var root = ServerProcess.RepositoryRoot;
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(string.Join('\n', code.Split('\n').Select(l => l.Trim())));
        psi.Environment["PYTHONPATH"] = $"{root}/PyRuntime/python:{root}";
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, error);
    }

    /// <summary>The takes (recordings and transcripts) as a dataset upload.</summary>
    public MultipartFormDataContent Upload(string name, string? folder = null)
    {
        var form = new MultipartFormDataContent { { new StringContent(name), "name" } };
        foreach (var f in Directory.EnumerateFiles(folder ?? Takes).Order(StringComparer.Ordinal))
        {
            form.Add(new ByteArrayContent(File.ReadAllBytes(f)), "files", Path.GetFileName(f));
        }

        return form;
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>Calls the fine-tuning API the way a script does.</summary>
public static class FineTuningClient
{
    public static async Task<(string Dataset, string Job)> UploadAsync(HttpClient http, MultipartFormDataContent form)
    {
        using var response = await http.PostAsync("/v1/datasets", form);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("id").GetString()!, body.GetProperty("job").GetProperty("id").GetString()!);
    }

    /// <summary>Waits until the job reaches one of the states; returns it.</summary>
    public static async Task<JsonElement> WaitAsync(HttpClient http, string job, params string[] states)
    {
        for (var i = 0; i < 600; i++)
        {
            var body = await http.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
            if (states.Contains(body.GetProperty("status").GetString()))
            {
                return body;
            }

            // Once a second: status reads count against the API's rate limit like any request.
            await Task.Delay(1000);
        }

        Assert.Fail($"job {job} never reached {string.Join("/", states)}");
        return default;
    }

    /// <summary>Waits until the job has written an event of the stage (training has begun, say).</summary>
    public static async Task WaitForStageAsync(HttpClient http, string job, string stage)
    {
        for (var i = 0; i < 600; i++)
        {
            var body = await http.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
            if (body.GetProperty("stage").GetString() == stage && body.GetProperty("progress").TryGetProperty("epoch", out _))
            {
                return;
            }

            Assert.NotEqual("failed", body.GetProperty("status").GetString());
            await Task.Delay(500);
        }

        Assert.Fail($"job {job} never reached {stage}");
    }

    public static async Task<HttpResponseMessage> StartJobAsync(HttpClient http, object request) =>
        await http.PostAsJsonAsync("/v1/finetune/jobs", request);

    /// <summary>Recipe processes (python -m finetune) whose command line mentions the path.</summary>
    public static int RecipesUnder(string path) => RecipePids(path).Count;

    /// <summary>The process ids of those recipes.</summary>
    public static List<string> RecipePids(string path) =>
        Directory.EnumerateDirectories("/proc").Where(d =>
        {
            try
            {
                var cmd = File.ReadAllText(Path.Combine(d, "cmdline")).Replace('\0', ' ');
                return cmd.Contains("-m finetune", StringComparison.Ordinal) && cmd.Contains(path, StringComparison.Ordinal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }).Select(Path.GetFileName).OfType<string>().ToList();
}
