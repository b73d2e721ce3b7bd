using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Timbre.ControlPlane.Tests;

/// <summary>The dashboard at / in Debian's Chromium against the real server on loopback: speech streamed and played, stop, keys, HTTPS, status, accessibility, headers.</summary>
[Collection("Browser")]
public sealed class DashboardTests(DashboardFixture fixture)
{
    private static readonly Regex RefusedLoads = new("Failed to load resource: the server responded with a status of 401");

    [Fact]
    public async Task Speech_streams_and_plays_before_it_ends_shows_first_audio_and_downloads_as_wav()
    {
        await using var d = await fixture.ReadyToSpeakAsync(Audio.LongText(14));
        await d.ScreenshotAsync("speak-ready");
        await d.ByTestId("speak-button").ClickAsync();

        // A chunk has finished playing while the server is still sending: playback started as audio arrived.
        await d.WaitForAsync("window.timbre.player.chunksPlayed > 0");
        await d.ScreenshotAsync("speak-streaming");
        await d.WaitForAsync("window.timbre.stream && window.timbre.stream.finished !== null", 60000);
        var stats = await d.EvalAsync<JsonElement>("({ ...window.timbre.player, samples: window.timbre.stream.samples, final: window.timbre.stream.final, error: window.timbre.stream.error })");
        Assert.True(stats.GetProperty("final").GetBoolean(), stats.ToString());
        Assert.Equal(JsonValueKind.Null, stats.GetProperty("error").ValueKind);
        Assert.True(stats.GetProperty("playedBeforeEnd").GetInt32() > 0, $"no chunk played before the stream ended: {stats}");
        Assert.True(stats.GetProperty("firstPlayedAt").GetDouble() < stats.GetProperty("streamEndedAt").GetDouble());
        // Every sample that arrived was scheduled, in order, and the output carried signal mid-stream.
        Assert.Equal(stats.GetProperty("chunksReceived").GetInt32() - 0, stats.GetProperty("chunksScheduled").GetInt32());
        Assert.Equal(stats.GetProperty("samples").GetInt64(), stats.GetProperty("samplesScheduled").GetInt64());
        Assert.True(stats.GetProperty("maxRmsWhileStreaming").GetDouble() > 0.005, $"the output was silent while streaming: {stats}");
        var samples = stats.GetProperty("samples").GetInt64();
        Assert.True(samples > 24000 * 20, $"{samples} samples for fourteen sentences");

        var ttfa = await d.ByTestId("ttfa").TextContentAsync();
        Assert.Matches(@"^\d+ ms$", ttfa);
        Assert.Matches(@"^\d+\.\d{3}$", await d.ByTestId("rtf").TextContentAsync());
        await Assertions.Expect(d.ByTestId("history").Locator("li")).ToHaveCountAsync(1);
        await d.ScreenshotAsync("speak-done");

        var download = await d.Page.RunAndWaitForDownloadAsync(() => d.ByTestId("download-button").ClickAsync());
        var path = await download.PathAsync();
        var wav = await File.ReadAllBytesAsync(path);
        Assert.Equal("RIFF", System.Text.Encoding.ASCII.GetString(wav, 0, 4));
        Assert.Equal("WAVE", System.Text.Encoding.ASCII.GetString(wav, 8, 4));
        Assert.Equal(24000, BitConverter.ToInt32(wav, 24));
        Assert.Equal(samples * 2, BitConverter.ToInt32(wav, 40));
        Assert.Equal(44 + (samples * 2), wav.Length);
        d.AssertClean();
    }

    [Fact]
    public async Task Stop_cancels_the_stream_on_the_server()
    {
        await using var d = await fixture.ReadyToSpeakAsync(Audio.LongText(55));
        var cancelled = await fixture.MetricAsync("timbre_streams_total", "outcome=\"cancelled\"");
        await d.ByTestId("speak-button").ClickAsync();
        await Assertions.Expect(d.ByTestId("ttfa")).ToHaveTextAsync(new Regex(@"^\d+ ms$"));
        await Assertions.Expect(d.ByTestId("stop-button")).ToBeEnabledAsync();
        await d.ByTestId("stop-button").ClickAsync();
        await Assertions.Expect(d.ByTestId("speak-status")).ToHaveTextAsync("Stopped.");
        Assert.False(await d.EvalAsync<bool>("window.timbre.stream.final"), "the whole text was spoken before Stop: make it longer");

        for (var i = 0; i < 30 && await fixture.MetricAsync("timbre_streams_total", "outcome=\"cancelled\"") <= cancelled; i++)
        {
            await Task.Delay(500);
        }

        Assert.Equal(cancelled + 1, await fixture.MetricAsync("timbre_streams_total", "outcome=\"cancelled\""));
        Assert.Equal(0, await fixture.MetricAsync("timbre_streams_in_flight"));
        await Assertions.Expect(d.ByTestId("stop-button")).ToBeDisabledAsync();
        d.AssertClean();
    }

    [Fact]
    public async Task A_missing_or_wrong_key_is_said_plainly()
    {
        await using var d = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address);
        await Assertions.Expect(d.ByTestId("auth-error")).ToBeVisibleAsync();
        await Assertions.Expect(d.ByTestId("auth-error")).ToContainTextAsync("needs an API key");
        await d.ScreenshotAsync("key-missing");

        await d.ByTestId("api-key").FillAsync("not-the-right-key-at-all");
        await d.Page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
        await Assertions.Expect(d.ByTestId("auth-error")).ToContainTextAsync("refused this API key");
        await Assertions.Expect(d.ByTestId("auth-error")).ToContainTextAsync("not one of Timbre:Auth:ApiKeys");

        // The right key clears the error and fills the pickers; it is kept for the next visit.
        await d.ByTestId("api-key").FillAsync(DashboardFixture.Key);
        await d.Page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
        await Assertions.Expect(d.ByTestId("auth-error")).ToBeHiddenAsync();
        await Assertions.Expect(d.ByTestId("speak-engine").Locator("option[value=classic]")).ToHaveCountAsync(1);
        await d.Page.ReloadAsync();
        await Assertions.Expect(d.ByTestId("api-key")).ToHaveValueAsync(DashboardFixture.Key);
        await Assertions.Expect(d.ByTestId("auth-error")).ToBeHiddenAsync();
        d.AssertClean(RefusedLoads);
    }

    [Fact]
    public async Task Over_https_with_the_certificate_ops_make_cert_makes_the_page_may_record()
    {
        var work = Directory.CreateTempSubdirectory("timbre-https-").FullName;
        var (httpPort, httpsPort) = (ServerProcess.FreePort(), ServerProcess.FreePort());
        var envFile = Path.Combine(work, "timbre.env");
        Audio.Run(Path.Combine(ServerProcess.RepositoryRoot, "ops", "make-cert"), "--dir", Path.Combine(work, "certs"), "--env", envFile,
            "--https-url", $"https://127.0.0.1:{httpsPort}", "--http-url", $"http://127.0.0.1:{httpPort}", Browser.LanHost);
        // What ops/run would export from timbre.env.
        var settings = File.ReadAllLines(envFile).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1].Trim('"'));
        Assert.Equal("600", Audio.Run("stat", "-c", "%a", settings["Kestrel__Endpoints__Https__Certificate__KeyPath"]).Trim());
        var key = settings["Timbre__Auth__ApiKeys__0"];
        using var server = ServerProcess.Start(work, httpPort, "/usr/bin/python3", out var log, settings);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
            await ServerProcess.WaitReadyAsync(http, server, log);

            // Kestrel serves exactly the certificate the script made.
            var made = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(
                await File.ReadAllTextAsync(settings["Kestrel__Endpoints__Https__Certificate__Path"]));
            string? served = null;
            using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => (served = c?.GetCertHashString()) == made.GetCertHashString() };
            using var https = new HttpClient(handler);
            using (var page = await https.GetAsync($"https://127.0.0.1:{httpsPort}/"))
            {
                Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            }

            Assert.Equal(made.GetCertHashString(), served);

            await using var d = await DashboardPage.OpenAsync(fixture.Browser, new Uri($"https://{Browser.LanHost}:{httpsPort}/"), key, ignoreHttpsErrors: true);
            await d.TabAsync("Voices");
            Assert.True(await d.EvalAsync<bool>("window.isSecureContext && !!navigator.mediaDevices"));
            await Assertions.Expect(d.ByTestId("record-unavailable")).ToBeHiddenAsync();
            await Assertions.Expect(d.ByTestId("enrol-record")).ToBeEnabledAsync();
            // The API answers there with the key the script made (the engine list came through).
            await Assertions.Expect(d.ByTestId("speak-engine").Locator("option[value=classic]")).ToHaveCountAsync(1);
            await Assertions.Expect(d.ByTestId("auth-error")).ToBeHiddenAsync();
            d.AssertClean();
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            Directory.Delete(work, recursive: true);
        }
    }

    [Fact]
    public async Task Status_shows_engines_with_reasons_and_live_figures_from_metrics()
    {
        var voice = await fixture.VoiceAsync("ada");
        using (var spoken = await fixture.Http.PostAsJsonAsync("/v1/speech", new { text = "Counting for the status page.", voice }))
        {
            Assert.Equal(HttpStatusCode.OK, spoken.StatusCode);
        }

        await using var d = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key);
        await d.TabAsync("Status");
        var classic = d.ByTestId("engine-table").Locator("tr[data-engine=classic]");
        await Assertions.Expect(classic).ToContainTextAsync("yes");
        // GPU engines cannot run here: the table says so and why.
        var qwen3 = d.ByTestId("engine-table").Locator("tr[data-engine=qwen3]");
        await Assertions.Expect(qwen3).ToContainTextAsync("no");
        Assert.True((await qwen3.Locator("td").Nth(0).TextContentAsync())!.Length > 10);
        await Assertions.Expect(d.ByTestId("stat-ttfa")).ToHaveTextAsync(new Regex(@"^\d+ / \d+ ms$"));
        await Assertions.Expect(d.ByTestId("stat-rtf")).ToHaveTextAsync(new Regex(@"^\d+\.\d+ / \d+\.\d+$"));
        await Assertions.Expect(d.ByTestId("stat-inflight")).ToHaveTextAsync(new Regex(@"^\d+$"));
        await Assertions.Expect(d.ByTestId("stat-streams")).ToContainTextAsync("done");
        await d.ScreenshotAsync("status");
        d.AssertClean();
    }

    [Fact]
    public async Task Every_panel_passes_axe_in_light_and_dark_and_the_tabs_work_from_the_keyboard()
    {
        await fixture.VoiceAsync("ada");
        foreach (var dark in new[] { false, true })
        {
            await using var d = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key, dark: dark);
            await Assertions.Expect(d.ByTestId("speak-voice").Locator("option")).Not.ToHaveCountAsync(0);
            foreach (var tab in new[] { "Speak", "Voices", "Status", "Fine-tuning" })
            {
                await d.TabAsync(tab);
                await d.Page.WaitForTimeoutAsync(300);
                var result = await d.Page.RunAxe(new AxeRunOptions { ResultTypes = [ResultType.Violations] });
                var serious = result.Violations.Where(v => v.Impact is "serious" or "critical")
                    .Select(v => $"{tab} ({(dark ? "dark" : "light")}): {v.Id} {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target?.ToString()))}").ToList();
                Assert.True(serious.Count == 0, string.Join("\n", serious));
            }

            await d.ScreenshotAsync(dark ? "dark-fine-tuning" : "light-fine-tuning");
            await d.TabAsync("Speak");
            await d.ScreenshotAsync(dark ? "dark-speak" : "light-speak");

            // Arrow keys move between tabs, and the panel follows (WAI-ARIA tabs).
            await d.Page.GetByRole(AriaRole.Tab, new() { Name = "Speak" }).FocusAsync();
            await d.Page.Keyboard.PressAsync("ArrowRight");
            await Assertions.Expect(d.Page.GetByRole(AriaRole.Tab, new() { Name = "Voices" })).ToBeFocusedAsync();
            await Assertions.Expect(d.Page.GetByRole(AriaRole.Tab, new() { Name = "Voices" })).ToHaveAttributeAsync("aria-selected", "true");
            await Assertions.Expect(d.ByTestId("voice-list")).ToBeVisibleAsync();
            await d.Page.Keyboard.PressAsync("End");
            await Assertions.Expect(d.Page.GetByRole(AriaRole.Tab, new() { Name = "Fine-tuning" })).ToBeFocusedAsync();
            d.AssertClean();
        }

        // A laptop screen: nothing wider than the window.
        await using var narrow = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key, width: 1024, height: 700);
        Assert.True(await narrow.EvalAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways at 1024 px");
        await narrow.ScreenshotAsync("speak-1024");
        await using var phone = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key, width: 600, height: 900);
        Assert.True(await phone.EvalAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways at 600 px");
    }

    [Fact]
    public async Task The_page_and_its_files_are_served_without_a_key_under_a_strict_content_security_policy()
    {
        using var anonymous = new HttpClient { BaseAddress = fixture.Address };
        foreach (var path in new[] { "/", "/js/app.js", "/css/app.css", "/lib/microsoft-signalr/signalr.min.js" })
        {
            using var response = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var csp = response.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
            Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
            Assert.DoesNotContain("unsafe", csp, StringComparison.Ordinal);
            Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        }

        // The API behind it still needs the key, and a page on another origin is refused.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/voices")).StatusCode);
        using var foreign = new HttpRequestMessage(HttpMethod.Get, "/v1/voices");
        foreign.Headers.Add("Origin", "http://evil.example");
        foreign.Headers.Authorization = new("Bearer", DashboardFixture.Key);
        Assert.Equal(HttpStatusCode.Forbidden, (await anonymous.SendAsync(foreign)).StatusCode);
        // A host name not in AllowedHosts gets no page either.
        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/");
        rebound.Headers.Host = "attacker.example";
        Assert.Equal(HttpStatusCode.BadRequest, (await anonymous.SendAsync(rebound)).StatusCode);
    }
}
