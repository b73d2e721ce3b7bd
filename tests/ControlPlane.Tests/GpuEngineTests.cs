using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// The qwen3 and xtts adapters through the real server: the embedded interpreter imports fakes of
/// qwen_tts, TTS and torch (PyRuntime/python/tests/fakes) that behave as the upstream packages do and
/// log every call, and requests go over HTTP on loopback. Each server is its own process because the
/// fakes must be on sys.path when the interpreter starts.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class GpuEngineTests : IDisposable
{
    private const string ThreeSentences = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well.";
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-gpu-");

    public void Dispose() => work.Delete(recursive: true);

    private string FakeLog => Path.Combine(work.FullName, "fake-calls.jsonl");

    [Fact]
    public async Task Qwen3_and_xtts_clone_an_enrolled_voice_cache_what_they_prepare_and_unload_when_idle()
    {
        var xtts = Path.Combine(work.FullName, "xtts_v2");
        Directory.CreateDirectory(xtts);
        foreach (var file in new[] { "model.pth", "vocab.json", "dvae.pth", "mel_stats.pth" })
        {
            await File.WriteAllTextAsync(Path.Combine(xtts, file), "weights");
        }

        await File.WriteAllTextAsync(Path.Combine(xtts, "config.json"), "{}");
        await using var server = await StartAsync(
            "--Timbre:Engine:Xtts:ModelDir", xtts, "--Timbre:Engine:Xtts:AcceptLicense", "true", "--Timbre:Engine:IdleUnloadMinutes", "0.03");
        var http = server.Http;

        var engines = await http.GetFromJsonAsync<JsonElement>("/v1/engines");
        var byName = engines.EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal(["classic", "qwen3", "xtts"], byName.Keys.Order());
        Assert.True(byName["classic"].GetProperty("default").GetBoolean() && byName["classic"].GetProperty("loaded").GetBoolean());
        Assert.True(byName["qwen3"].GetProperty("available").GetBoolean());
        Assert.False(byName["qwen3"].GetProperty("loaded").GetBoolean());
        Assert.Equal(["clone"], byName["qwen3"].GetProperty("capabilities").EnumerateArray().Select(c => c.GetString()));
        Assert.Contains("de", byName["qwen3"].GetProperty("languages").EnumerateArray().Select(c => c.GetString()));
        Assert.Contains("CPML", byName["xtts"].GetProperty("license").GetString(), StringComparison.Ordinal);

        using (var form = new MultipartFormDataContent
        {
            { new StringContent("Ada"), "name" },
            { new ByteArrayContent(Audio.Espeak(Audio.Reference)), "files", "ref.wav" },
            { new StringContent(Audio.Reference), "transcripts" },
        })
        {
            Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/v1/voices", form)).StatusCode);
        }

        // qwen3 clones in ICL mode with the transcript, one generation per sentence, in order.
        var wav = await SpeakAsync(http, new { text = ThreeSentences, voice = "ada", engine = "qwen3", language = "en" });
        Assert.Equal(24000, wav.SampleRate);
        Assert.True(wav.Seconds > 3, $"only {wav.Seconds:0.00} s of audio");
        var prompts = Calls("create_voice_clone_prompt");
        Assert.Equal(Audio.Reference, Assert.Single(prompts).GetProperty("ref_text").GetString());
        // The prompt is the segment enrolment chose, and XTTS conditions on the reference it wrote.
        Assert.EndsWith("/ada/samples/prompt.wav", prompts[0].GetProperty("ref_audio").GetString(), StringComparison.Ordinal);
        Assert.False(prompts[0].GetProperty("x_vector_only_mode").GetBoolean());
        var generated = Calls("generate_voice_clone");
        Assert.Equal(
            ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.", "It is easy to tell the depth of a well."],
            generated.Select(g => g.GetProperty("text").GetString()));
        Assert.All(generated, g => Assert.True(g.GetProperty("icl").GetBoolean()));
        Assert.Single(generated.Select(g => g.GetProperty("seed").GetInt64()).Distinct());
        Assert.Equal("bfloat16", Assert.Single(Calls("from_pretrained")).GetProperty("dtype").GetString());

        // A second request reuses the prompt the first one cached.
        await SpeakAsync(http, new { text = "Once more, with 2 numbers.", voice = "ada", engine = "qwen3" });
        Assert.Single(Calls("create_voice_clone_prompt"));
        Assert.Equal("Once more, with two numbers.", Calls("generate_voice_clone")[^1].GetProperty("text").GetString());

        // The engine's refusals arrive as problem details that say what to change.
        await AssertProblemAsync(http, new { text = "Hallo.", voice = "ada", engine = "qwen3", language = "nl" }, HttpStatusCode.BadRequest, "does not speak 'nl'");
        await AssertProblemAsync(http, new { text = "Hello.", voice = "ada", engine = "qwen3", instructions = "whisper" }, HttpStatusCode.BadRequest, "instructions need a Qwen3 CustomVoice");

        // xtts through the OpenAI endpoint: latents from the voice's samples, computed once.
        foreach (var input in new[] { "Hello from the second engine.", "And again." })
        {
            using var response = await http.PostAsJsonAsync("/v1/audio/speech", new { model = "xtts", input, voice = "ada", response_format = "pcm" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True((await response.Content.ReadAsByteArrayAsync()).Length > 24000);
        }

        var latents = Assert.Single(Calls("get_conditioning_latents"));
        Assert.EndsWith("/ada/samples/reference.wav", Assert.Single(latents.GetProperty("audio_path").EnumerateArray()).GetString(), StringComparison.Ordinal);
        Assert.Equal("en", Calls("inference_stream")[0].GetProperty("language").GetString());

        // Idle GPU engines are unloaded (the GPU's memory released), and come back on the next request.
        var unloaded = false;
        for (var i = 0; i < 100 && !unloaded; i++)
        {
            await Task.Delay(100);
            var list = await http.GetFromJsonAsync<JsonElement>("/v1/engines");
            unloaded = list.EnumerateArray().Where(e => e.GetProperty("gpu").GetBoolean()).All(e => !e.GetProperty("loaded").GetBoolean());
        }

        Assert.True(unloaded, "the idle GPU engines were never unloaded");
        Assert.NotEmpty(Calls("torch.cuda.empty_cache"));
        await SpeakAsync(http, new { text = "Back again.", voice = "ada", engine = "qwen3" });
        Assert.Equal(2, Calls("from_pretrained").Count);
        Assert.Contains("Engine qwen3 unloaded", server.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_custom_voice_model_speaks_its_own_speakers_and_an_unavailable_engine_says_why()
    {
        await using var server = await StartAsync("--Timbre:Engine:Qwen3:Model", "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice");
        var http = server.Http;
        var qwen3 = (await http.GetFromJsonAsync<JsonElement>("/v1/engines")).EnumerateArray().Single(e => e.GetProperty("name").GetString() == "qwen3");
        Assert.Equal("custom_voice", qwen3.GetProperty("mode").GetString());
        Assert.Contains("instructions", qwen3.GetProperty("capabilities").EnumerateArray().Select(c => c.GetString()));
        Assert.Contains("Ryan", qwen3.GetProperty("speakers").EnumerateArray().Select(c => c.GetString()));

        // A speaker of the model needs no enrolled voice; OpenAI clients name it as the voice.
        using (var response = await http.PostAsJsonAsync("/v1/audio/speech", new { model = "qwen3", input = "Good morning.", voice = "RYAN", instructions = "Cheerfully", response_format = "wav" }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var call = Assert.Single(Calls("generate_custom_voice"));
        // The model's own spelling of its speaker, whatever case the request used.
        Assert.Equal(("ryan", "Cheerfully"), (call.GetProperty("speaker").GetString(), call.GetProperty("instruct").GetString()));
        await AssertProblemAsync(http, new { text = "Hi.", voice = "bob", engine = "qwen3" }, HttpStatusCode.BadRequest, "speaks as Vivian");

        // xtts without its licence accepted is listed as unavailable, and a request for it says why.
        await AssertProblemAsync(http, new { text = "Hi.", voice = "bob", engine = "xtts" }, HttpStatusCode.BadRequest, "AcceptLicense");
    }

    [Fact]
    public async Task Without_a_GPU_the_gpu_engines_are_unavailable_and_classic_still_serves()
    {
        await using var server = await StartAsync(new Dictionary<string, string> { ["TIMBRE_FAKE_CUDA"] = "0" });
        var engines = await server.Http.GetFromJsonAsync<JsonElement>("/v1/engines");
        var qwen3 = engines.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "qwen3");
        Assert.False(qwen3.GetProperty("available").GetBoolean());
        Assert.Contains("no CUDA GPU", qwen3.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var problem = await AssertProblemAsync(server.Http, new { text = "Hi.", voice = "ada", engine = "qwen3" }, HttpStatusCode.BadRequest, "not available on this server: no CUDA GPU");
        Assert.Contains("Use one of classic", problem, StringComparison.Ordinal);
        Assert.Equal("engine", JsonSerializer.Deserialize<JsonElement>(problem).GetProperty("field").GetString());
    }

    [Fact]
    public async Task A_default_engine_that_cannot_run_here_stops_start_up_with_what_to_do()
    {
        using var server = ServerProcess.Start(work.FullName, ServerProcess.FreePort(), "/usr/bin/python3", out var log, null, "--Timbre:Engine:Default", "qwen3");
        Assert.True(server.WaitForExit(60_000), "the server kept running with an engine it cannot load");
        await Task.Delay(100);
        Assert.NotEqual(0, server.ExitCode);
        Assert.Contains("Timbre:Engine:Default is 'qwen3', which cannot run here: torch and qwen_tts not installed: run ops/install-gpu", log.ToString(), StringComparison.Ordinal);
    }

    private List<JsonElement> Calls(string name) =>
        File.Exists(FakeLog)
            ? File.ReadAllLines(FakeLog).Select(l => JsonSerializer.Deserialize<JsonElement>(l)).Where(c => c.GetProperty("call").GetString() == name).ToList()
            : [];

    private static async Task<Wav> SpeakAsync(HttpClient http, object body)
    {
        using var response = await http.PostAsJsonAsync("/v1/speech", body);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, Encoding.UTF8.GetString(bytes));
        return Wav.Parse(bytes);
    }

    private static async Task<string> AssertProblemAsync(HttpClient http, object body, HttpStatusCode status, string detail)
    {
        using var response = await http.PostAsJsonAsync("/v1/speech", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, JsonSerializer.Deserialize<JsonElement>(text).GetProperty("detail").GetString(), StringComparison.Ordinal);
        return text;
    }

    [Fact]
    public async Task A_gpu_stream_waiting_on_its_model_does_not_hold_back_classic_streams_beside_it()
    {
        // Each qwen3 sentence takes the fake model 2 s, during which Python waits with the GIL released.
        await using var server = await StartAsync(new Dictionary<string, string> { ["TIMBRE_FAKE_GENERATION_SECONDS"] = "2" });
        var http = server.Http;
        using (var form = new MultipartFormDataContent
        {
            { new StringContent("Ada"), "name" },
            { new ByteArrayContent(Audio.Espeak(Audio.Reference)), "files", "ref.wav" },
            { new StringContent(Audio.Reference), "transcripts" },
        })
        {
            Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/v1/voices", form)).StatusCode);
        }

        // Both engines loaded and the voice prepared for each, then the classic engine's first audio at rest.
        await SpeakAsync(http, new { text = "Warm up.", voice = "ada", engine = "qwen3" });
        // The slowest of five at rest against the slowest of three beside the GPU stream: like against like,
        // whatever else the machine is doing.
        var idle = (await FirstAudioTimesAsync(http, 5)).Max();

        // A three-sentence qwen3 stream is under way, read as a player reads it: its first audio has arrived
        // and its engine is waiting on the model for the next sentence …
        var firstGpuAudio = new TaskCompletionSource();
        var gpu = Task.Run(async () =>
        {
            using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/speech")
            {
                Content = JsonContent.Create(new { text = ThreeSentences, voice = "ada", engine = "qwen3", stream = true, format = "pcm" }),
            }, HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[4096];
            long total = 0;
            for (int n; (n = await body.ReadAsync(buffer)) > 0;)
            {
                total += n;
                firstGpuAudio.TrySetResult();
            }

            return total;
        });
        await firstGpuAudio.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var during = await FirstAudioTimesAsync(http, 3);

        // … and every classic stream started beside it reaches first audio within twice its time at rest.
        Assert.True(during.Max().TotalMilliseconds <= 2 * idle.TotalMilliseconds,
            $"classic first audio {string.Join(", ", during.Select(t => $"{t.TotalMilliseconds:0}"))} ms beside a waiting GPU stream, at most {idle.TotalMilliseconds:0} ms at rest");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.8) || !gpu.IsCompleted, "the GPU stream ended before the classic ones were measured beside it");
        Assert.True(await gpu > 24000 * 2, "the GPU stream came back short");
    }

    /// <summary>Times to the first PCM bytes of <paramref name="count"/> streamed classic requests, one after another.</summary>
    private static async Task<List<TimeSpan>> FirstAudioTimesAsync(HttpClient http, int count)
    {
        var times = new List<TimeSpan>();
        for (var i = 0; i < count; i++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/speech")
            {
                Content = JsonContent.Create(new { text = "Short and quick. Then a little more.", voice = "ada", engine = "classic", stream = true, format = "pcm" }),
            }, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            Assert.True(await body.ReadAsync(new byte[1024]) > 0);
            times.Add(clock.Elapsed);
            await body.CopyToAsync(Stream.Null);
        }

        return times;
    }

    private Task<Server> StartAsync(params string[] args) => StartAsync([], args);

    private async Task<Server> StartAsync(Dictionary<string, string> environment, params string[] args)
    {
        environment["TIMBRE_FAKE_LOG"] = FakeLog;
        var fakes = Path.Combine(ServerProcess.RepositoryRoot, "PyRuntime", "python", "tests", "fakes");
        var port = ServerProcess.FreePort();
        var process = ServerProcess.Start(work.FullName, port, "/usr/bin/python3", out var log, environment, ["--Timbre:Python:ModulePaths:0", fakes, .. args]);
        var server = new Server(process, log, new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") });
        await ServerProcess.WaitReadyAsync(server.Http, process, log);
        return server;
    }

    private sealed record Server(Process Process, StringBuilder Output, HttpClient Http) : IAsyncDisposable
    {
        public string Log
        {
            get
            {
                lock (Output)
                {
                    return Output.ToString();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }

            Process.Dispose();
        }
    }
}

/// <summary>
/// Tests that compare first-audio times measured on the same server (idle against beside a waiting
/// stream) run alone, after the others: the fake servers, Redis and second nodes of the tests running
/// beside them on two cores made one classic request take a second in a full run.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Timing";
}
