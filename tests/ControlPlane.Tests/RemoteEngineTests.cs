using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// A remote engine of kind openai-speech in front of tests/fakes/vllm_omni.py processes (vLLM-Omni's
/// speech contract): streaming, marking, refusals, and what happens when endpoints fail, hang or die.
/// </summary>
public sealed class RemoteEngineTests : IAsyncLifetime, IDisposable
{
    private const string Model = "Qwen/Qwen3-TTS-12Hz-0.6B-Base";
    private const string Text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well.";

    private readonly TimbreApp app = new();
    private readonly List<FakeVllm> fakes = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public void Dispose() => app.Dispose();

    public async Task DisposeAsync()
    {
        app.Dispose();
        foreach (var fake in fakes)
        {
            await fake.DisposeAsync();
        }
    }

    /// <summary>Starts fakes and configures Timbre's remote engine "vllm" on them (not started yet).</summary>
    private async Task<FakeVllm[]> RemoteAsync(int count, double pace = 0.05, double breakSeconds = 15, double firstAudioTimeout = 20, string fakeModel = Model, string timbreModel = Model)
    {
        var started = new List<FakeVllm>();
        for (var i = 0; i < count; i++)
        {
            var fake = await FakeVllm.StartAsync(fakeModel, pace);
            fakes.Add(fake);
            started.Add(fake);
            app.Settings[$"Timbre:Engine:Remote:vllm:Endpoints:{i}"] = fake.Url.ToString();
        }

        app.Settings["Timbre:Engine:Remote:vllm:Kind"] = "openai-speech";
        app.Settings["Timbre:Engine:Remote:vllm:Model"] = timbreModel;
        app.Settings["Timbre:Engine:Remote:vllm:BreakSeconds"] = breakSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        app.Settings["Timbre:Engine:Remote:vllm:FirstAudioTimeoutSeconds"] = firstAudioTimeout.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await app.EnrolAsync("Ada");
        return [.. started];
    }

    private async Task<(HttpStatusCode Status, byte[] Body, string? Clip)> SpeakAsync(object body, string path = "/v1/speech")
    {
        using var client = app.CreateClient();
        using var response = await client.PostAsJsonAsync(path, body);
        var clip = response.Headers.TryGetValues("Timbre-Clip-Id", out var v) ? v.Single() : null;
        return (response.StatusCode, await response.Content.ReadAsByteArrayAsync(), clip);
    }

    private async Task<JsonElement> DetectAsync(byte[] wav)
    {
        using var client = app.CreateClient();
        using var form = new MultipartFormDataContent { { new ByteArrayContent(wav), "file", "remote.wav" } };
        using var response = await client.PostAsync("/v1/provenance/detect", form);
        var found = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.StatusCode == HttpStatusCode.OK, found.ToString());
        return found;
    }

    private async Task<JsonElement> EndpointsAsync()
    {
        using var client = app.CreateClient();
        var engines = await client.GetFromJsonAsync<JsonElement[]>("/v1/engines");
        return engines!.Single(e => e.GetProperty("name").GetString() == "vllm").GetProperty("endpoints");
    }

    private static string Outcomes(JsonElement[] requests) => string.Join(",", requests.Select(r => r.GetProperty("outcome").GetString()));

    [Fact]
    public async Task A_remote_engine_streams_the_fakes_speech_marked_and_logged_and_sends_the_voice_with_each_request()
    {
        var fake = (await RemoteAsync(1))[0];
        using (var client = app.CreateClient())
        {
            var engines = await client.GetFromJsonAsync<JsonElement[]>("/v1/engines");
            var vllm = engines!.Single(e => e.GetProperty("name").GetString() == "vllm");
            Assert.True(vllm.GetProperty("available").GetBoolean());
            Assert.Equal("base", vllm.GetProperty("mode").GetString());
            Assert.Equal(fake.Url.ToString().TrimEnd('/'), vllm.GetProperty("endpoints")[0].GetProperty("url").GetString());
        }

        var (status, wav, clip) = await SpeakAsync(new { text = Text, voice = "ada", engine = "vllm", language = "en" });
        Assert.True(status == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(wav));
        Assert.True(wav.Length > 24000 * 2 * 3, $"{wav.Length} bytes");

        // The fake got what vLLM-Omni needs to clone: the enrolment's prompt as a data URL and its transcript.
        var sent = (await fake.RequestsAsync()).Single();
        Assert.Equal("completed", sent.GetProperty("outcome").GetString());
        var body = sent.GetProperty("body");
        Assert.Equal("Base", body.GetProperty("task_type").GetString());
        Assert.Equal("pcm", body.GetProperty("response_format").GetString());
        Assert.Equal("audio", body.GetProperty("stream_format").GetString());
        Assert.Equal("English", body.GetProperty("language").GetString());
        Assert.Equal(Model, body.GetProperty("model").GetString());
        Assert.StartsWith("data:audio/wav;base64,", body.GetProperty("ref_audio").GetString(), StringComparison.Ordinal);
        Assert.True(body.TryGetProperty("ref_text", out _) || body.GetProperty("x_vector_only_mode").GetBoolean());

        // Marked on the front with this install's key, and named in its log as the remote engine's clip.
        var found = await DetectAsync(wav);
        Assert.True(found.GetProperty("detected").GetBoolean(), found.ToString());
        Assert.Equal(clip, found.GetProperty("clip").GetProperty("id").GetString());
        Assert.Equal("vllm", found.GetProperty("clip").GetProperty("engine").GetString());

        // The OpenAI-compatible endpoint takes the remote engine as its model.
        var (openAiStatus, openAiWav, _) = await SpeakAsync(new { model = "vllm", input = "Hello from the other machine.", voice = "ada", response_format = "wav" }, "/v1/audio/speech");
        Assert.True(openAiStatus == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(openAiWav));
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public void A_remote_engine_configured_wrongly_stops_the_start_and_says_what_to_set()
    {
        app.Settings["Timbre:Engine:Remote:GPU_box:Kind"] = "grpc";
        app.Settings["Timbre:Engine:Remote:GPU_box:Endpoints:0"] = "gpu-box:8091";
        app.Settings["Timbre:Engine:Remote:GPU_box:Concurrency"] = "0";
        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => app.CreateClient());
        Assert.Contains("Timbre:Engine:Remote:GPU_box: a remote engine's name must be lower-case letters", error.Message, StringComparison.Ordinal);
        Assert.Contains("Timbre:Engine:Remote:GPU_box:Kind is 'grpc': use openai-speech", error.Message, StringComparison.Ordinal);
        Assert.Contains("Endpoints holds 'gpu-box:8091': use an http:// or https:// base URL", error.Message, StringComparison.Ordinal);
        Assert.Contains("Concurrency is 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sse_answers_are_read_and_timbres_refusals_reach_the_caller_as_problem_details_before_any_request_leaves()
    {
        var fake = (await RemoteAsync(1))[0];
        await fake.SetModeAsync("sse");
        // Three sentences, not one: the mark's score grows with the square root of the marked seconds. One
        // sentence (1.9 s) scored 7.2-9.4 against the threshold of 6 and once went undetected while the whole
        // suite ran; its score was not reported then, and now is.
        var (status, wav, _) = await SpeakAsync(new { text = Text, voice = "ada", engine = "vllm" });
        Assert.True(status == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(wav));
        Assert.True(wav.Length > 24000 * 2 * 3, $"{wav.Length} bytes");
        var found = await DetectAsync(wav);
        Assert.True(found.GetProperty("detected").GetBoolean(), found.ToString());

        // The server streams at speed 1.0 only, a Base model takes no instructions, and it speaks ten languages.
        foreach (var (body, field) in new (object, string)[]
        {
            (new { text = "Faster.", voice = "ada", engine = "vllm", speed = 1.5 }, "speed"),
            (new { text = "Softly.", voice = "ada", engine = "vllm", instructions = "whisper" }, "instructions"),
            (new { text = "Hei.", voice = "ada", engine = "vllm", language = "fi" }, "language"),
        })
        {
            var (refused, problemBody, _) = await SpeakAsync(body);
            Assert.Equal(HttpStatusCode.BadRequest, refused);
            var problem = JsonDocument.Parse(problemBody).RootElement;
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }

        Assert.Single(await fake.RequestsAsync());
    }

    [Fact]
    public async Task The_servers_own_refusal_comes_back_with_its_message_and_is_not_retried_elsewhere()
    {
        // No model configured, so Timbre takes it for a Base model and sends no model name; the servers
        // run a CustomVoice checkpoint, and vLLM-Omni refuses the cloning request with 400.
        var fakes = await RemoteAsync(2, fakeModel: "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice", timbreModel: "");
        var (status, body, _) = await SpeakAsync(new { text = "Hello.", voice = "ada", engine = "vllm" });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
        Assert.Contains("refused the request: Qwen3-TTS CustomVoice checkpoint does not support task_type='Base'", detail, StringComparison.Ordinal);
        var sent = (await fakes[0].RequestsAsync()).Length + (await fakes[1].RequestsAsync()).Length;
        Assert.Equal(1, sent);
        foreach (var endpoint in (await EndpointsAsync()).EnumerateArray())
        {
            Assert.Equal("closed", endpoint.GetProperty("state").GetString());
        }
    }

    [Fact]
    public async Task A_failing_endpoint_is_passed_over_for_another_skipped_once_it_keeps_failing_and_used_again_when_it_recovers()
    {
        var fakes = await RemoteAsync(2, breakSeconds: 1);
        var (failing, healthy) = (fakes[0], fakes[1]);
        await failing.SetModeAsync("fail");
        for (var i = 0; i < 4; i++)
        {
            var (status, body, _) = await SpeakAsync(new { text = "Still here.", voice = "ada", engine = "vllm" });
            Assert.True(status == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(body));
        }

        var failed = await failing.RequestsAsync();
        Assert.True(failed.Length >= 2 && failed.All(r => r.GetProperty("outcome").GetString() == "failed"), Outcomes(failed));
        var states = await EndpointsAsync();
        Assert.Equal("open", states[0].GetProperty("state").GetString());
        Assert.Contains("HTTP 500", states[0].GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Equal(4, (await healthy.RequestsAsync()).Count(r => r.GetProperty("outcome").GetString() == "completed"));

        // Recovered: after BreakSeconds a request tries it again, and it is back in use.
        await failing.SetModeAsync("ok");
        await Task.Delay(1200);
        for (var i = 0; i < 4 && !(await failing.RequestsAsync()).Any(r => r.GetProperty("outcome").GetString() == "completed"); i++)
        {
            var (status, _, _) = await SpeakAsync(new { text = "Back again.", voice = "ada", engine = "vllm" });
            Assert.Equal(HttpStatusCode.OK, status);
        }

        Assert.Contains(await failing.RequestsAsync(), r => r.GetProperty("outcome").GetString() == "completed");
        Assert.Equal("closed", (await EndpointsAsync())[0].GetProperty("state").GetString());
    }

    [Fact]
    public async Task An_endpoint_that_sends_nothing_is_given_up_after_the_first_audio_timeout_and_another_serves()
    {
        var fakes = await RemoteAsync(2, firstAudioTimeout: 1.5);
        await fakes[0].SetModeAsync("hang");
        for (var i = 0; i < 2; i++)
        {
            var (status, body, _) = await SpeakAsync(new { text = "Nobody waits forever.", voice = "ada", engine = "vllm" });
            Assert.True(status == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(body));
        }

        // The hung request's connection was closed by Timbre: the fake saw its client leave.
        var hung = await fakes[0].WaitForOutcomeAsync("aborted", TimeSpan.FromSeconds(10));
        Assert.Single(hung);
        Assert.Equal(2, (await fakes[1].RequestsAsync()).Length);
        Assert.Contains(app.Logs.Lines, l => l.Contains("no audio within 1.5 s", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Requests_arriving_together_spread_over_the_endpoints_and_a_caller_that_leaves_aborts_its_upstream_request()
    {
        var fakes = await RemoteAsync(2, pace: 1.0);
        using var client = app.CreateClient();
        var responses = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/speech") { Content = JsonContent.Create(new { text = Text, voice = "ada", engine = "vllm", stream = true, format = "pcm" }) },
            HttpCompletionOption.ResponseHeadersRead)));
        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var audio = await response.Content.ReadAsStreamAsync();
            var first = new byte[4800];
            Assert.True(await audio.ReadAsync(first) > 0);
        }

        Assert.Single(await fakes[0].RequestsAsync());
        Assert.Single(await fakes[1].RequestsAsync());

        // Both callers hang up after their first audio: each upstream request is aborted, long before its end.
        foreach (var response in responses)
        {
            response.Dispose();
        }

        await fakes[0].WaitForOutcomeAsync("aborted", TimeSpan.FromSeconds(5));
        await fakes[1].WaitForOutcomeAsync("aborted", TimeSpan.FromSeconds(5));
        var scheduler = app.Get<SpeechScheduler>();
        for (var i = 0; i < 50 && scheduler.RunningOn("vllm") > 0; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(0, scheduler.RunningOn("vllm"));
    }

    [Fact]
    public async Task A_server_killed_mid_stream_ends_that_stream_with_a_clear_error_the_survivor_serves_and_the_restarted_one_is_used_again()
    {
        var fakes = await RemoteAsync(2, pace: 1.0, breakSeconds: 1);
        await using var hub = new HubConnectionBuilder().WithUrl(new Uri(app.BaseAddress, "/hubs/speech")).Build();
        await hub.StartAsync();
        FakeVllm? killed = null;
        var chunks = 0;
        var failure = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var chunk in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Text, Voice = "ada", Engine = "vllm" }))
            {
                if (chunks++ == 0)
                {
                    // The first audio is out: kill whichever server is making it.
                    killed = (await fakes[0].RequestsAsync()).Length > 0 ? fakes[0] : fakes[1];
                    killed.Kill();
                }
            }
        });
        Assert.True(chunks > 0);
        Assert.Contains("stopped in the middle of the audio", failure.Message, StringComparison.Ordinal);

        Assert.NotNull(killed);
        var survivor = killed == fakes[0] ? fakes[1] : fakes[0];
        for (var i = 0; i < 3; i++)
        {
            var (status, body, _) = await SpeakAsync(new { text = "The other one answers.", voice = "ada", engine = "vllm" });
            Assert.True(status == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(body));
        }

        Assert.Equal(3, (await survivor.RequestsAsync()).Count(r => r.GetProperty("outcome").GetString() == "completed"));

        await killed.RestartAsync();
        await Task.Delay(1200);
        for (var i = 0; i < 4 && (await killed.RequestsAsync()).Length == 0; i++)
        {
            var (status, _, _) = await SpeakAsync(new { text = "Welcome back.", voice = "ada", engine = "vllm" });
            Assert.Equal(HttpStatusCode.OK, status);
        }

        Assert.Contains(await killed.RequestsAsync(), r => r.GetProperty("outcome").GetString() == "completed");
    }
}
