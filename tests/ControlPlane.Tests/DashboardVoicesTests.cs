using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Timbre.ControlPlane.Tests;

/// <summary>Voices in the dashboard: enrolment by files and by the (fake) microphone, the report, playback, delete, and a page that may not record.</summary>
[Collection("Browser")]
public sealed class DashboardVoicesTests(DashboardFixture fixture)
{
    [Fact]
    public async Task A_voice_enrols_from_uploaded_files_shows_its_report_plays_and_deletes_after_confirmation()
    {
        await using var d = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key);
        await d.TabAsync("Voices");
        var folder = Directory.CreateTempSubdirectory("timbre-upload-").FullName;
        try
        {
            var first = Path.Combine(folder, "first.wav");
            var second = Path.Combine(folder, "second.wav");
            await File.WriteAllBytesAsync(first, Audio.Espeak(Audio.Reference, "en-gb"));
            await File.WriteAllBytesAsync(second, Audio.Espeak("A rod is used to catch pink salmon. The source of the huge river is the clear spring.", "en-gb"));
            // A file that is not audio: the server's reason is shown, and nothing is stored.
            var bogus = Path.Combine(folder, "notes.wav");
            await File.WriteAllTextAsync(bogus, "these are my notes, not a recording");
            await d.ByTestId("enrol-name").FillAsync("Uploaded Voice");
            await d.ByTestId("enrol-files").SetInputFilesAsync([bogus]);
            await d.ByTestId("enrol-submit").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-result")).ToContainTextAsync("notes.wav");
            await Assertions.Expect(d.ByTestId("enrol-result")).ToHaveClassAsync(new Regex("error"));
            await d.ScreenshotAsync("voices-upload-refused");
            Assert.Equal(HttpStatusCode.NotFound, (await fixture.Http.GetAsync("/v1/voices/uploaded-voice")).StatusCode);
            await d.Page.GetByRole(AriaRole.Button, new() { Name = "Remove notes.wav" }).ClickAsync();

            await d.ByTestId("enrol-files").SetInputFilesAsync([first, second]);
            await Assertions.Expect(d.ByTestId("enrol-transcript")).ToHaveCountAsync(2);
            await d.ByTestId("enrol-transcript").First.FillAsync(Audio.Reference);
            await d.ScreenshotAsync("voices-upload-ready");
            await d.ByTestId("enrol-submit").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-result")).ToContainTextAsync("Enrolled Uploaded Voice", new() { Timeout = 60000 });
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }

        var item = d.ByTestId("voice-list").Locator("li[data-voice='uploaded-voice']");
        await Assertions.Expect(item).ToBeVisibleAsync();
        var stored = await fixture.Http.GetFromJsonAsync<JsonElement>("/v1/voices/uploaded-voice");
        Assert.Equal(2, stored.GetProperty("samples").GetArrayLength());
        Assert.Equal(Audio.Reference, stored.GetProperty("samples")[0].GetProperty("transcript").GetString());
        Assert.Equal("user", stored.GetProperty("samples")[0].GetProperty("transcriptSource").GetString());

        // The report: one row per sample, with its figures in words.
        await item.Locator("summary").ClickAsync();
        await Assertions.Expect(item.Locator("tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(item.Locator("tbody tr").First).ToContainTextAsync(" dB");
        await d.ScreenshotAsync("voices-report");

        var audio = await d.Page.RunAndWaitForResponseAsync(() => item.GetByTestId("voice-play").ClickAsync(), r => r.Url.Contains("/v1/voices/uploaded-voice/audio", StringComparison.Ordinal));
        Assert.Equal(200, audio.Status);
        Assert.Equal("audio/wav", audio.Headers["content-type"]);
        await Assertions.Expect(d.ByTestId("enrol-result")).Not.ToContainTextAsync("Could not play");

        await item.GetByTestId("voice-delete").ClickAsync();
        await Assertions.Expect(d.Page.Locator("dialog#confirm")).ToBeVisibleAsync();
        await d.ScreenshotAsync("voices-delete-confirm");
        await d.Page.GetByRole(AriaRole.Button, new() { Name = "Keep it" }).ClickAsync();
        await Assertions.Expect(item).ToBeVisibleAsync();
        Assert.Equal(HttpStatusCode.OK, (await fixture.Http.GetAsync("/v1/voices/uploaded-voice")).StatusCode);

        await item.GetByTestId("voice-delete").ClickAsync();
        await d.ByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(item).ToHaveCountAsync(0);
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Http.GetAsync("/v1/voices/uploaded-voice")).StatusCode);
        // Only the refused upload's 400 reached the console, as the browser logs every failed request.
        d.AssertClean(new Regex("Failed to load resource: the server responded with a status of 400"));
    }

    [Fact]
    public async Task A_voice_enrols_by_recording_the_script_from_the_microphone()
    {
        // The script the page shows, spoken by espeak-ng, is what the fake microphone hears.
        string script;
        await using (var peek = await DashboardPage.OpenAsync(fixture.Browser, fixture.Address, DashboardFixture.Key))
        {
            script = (await peek.ByTestId("enrol-script").TextContentAsync())!;
        }

        var wav = Path.Combine(Path.GetTempPath(), $"microphone-{Guid.NewGuid():n}.wav");
        await File.WriteAllBytesAsync(wav, Audio.Espeak(script, "en-us+m3"));
        try
        {
            var seconds = (new FileInfo(wav).Length - 44) / 2.0 / 22050;
            await using var browser = await Browser.LaunchAsync(microphone: wav);
            await using var d = await DashboardPage.OpenAsync(browser, fixture.Address, DashboardFixture.Key);
            await d.TabAsync("Voices");
            await Assertions.Expect(d.ByTestId("record-unavailable")).ToBeHiddenAsync();
            await d.ByTestId("enrol-name").FillAsync("Recorded");
            // A take stopped too soon is called out; Re-take starts a new one at once.
            await d.ByTestId("enrol-record").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-record")).ToHaveTextAsync("Stop recording");
            await Task.Delay(1500);
            await d.ByTestId("enrol-record").ClickAsync();
            await Assertions.Expect(d.Page.Locator("#record-note")).ToContainTextAsync("under 3 seconds");
            await d.ScreenshotAsync("voices-recorded-too-short");
            await d.ByTestId("enrol-retake").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-record")).ToHaveTextAsync("Stop recording");
            await Assertions.Expect(d.ByTestId("enrol-preview")).ToBeHiddenAsync();
            var started = DateTime.UtcNow;
            // The meter moves with the voice (it reads the level ten times a second; pauses read low).
            await d.WaitForAsync("document.getElementById('enrol-level').value > -50", 5000);
            await d.ScreenshotAsync("voices-recording");
            var left = started.AddSeconds(seconds + 0.5) - DateTime.UtcNow;
            if (left > TimeSpan.Zero)
            {
                await Task.Delay(left);
            }

            await d.ByTestId("enrol-record").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-preview")).ToBeVisibleAsync();
            await Assertions.Expect(d.ByTestId("enrol-retake")).ToBeVisibleAsync();
            await d.ScreenshotAsync("voices-recorded");
            await d.ByTestId("enrol-submit").ClickAsync();
            await Assertions.Expect(d.ByTestId("enrol-result")).ToContainTextAsync("Enrolled Recorded", new() { Timeout = 60000 });
            d.AssertClean();
        }
        finally
        {
            File.Delete(wav);
        }

        var voice = await fixture.Http.GetFromJsonAsync<JsonElement>("/v1/voices/recorded");
        var sample = voice.GetProperty("samples")[0];
        Assert.Equal("recording.webm", sample.GetProperty("fileName").GetString());
        Assert.Equal(script, sample.GetProperty("transcript").GetString());
        Assert.Equal("user", sample.GetProperty("transcriptSource").GetString());
        Assert.True(sample.GetProperty("durationSeconds").GetDouble() > 5, voice.ToString());
        // What was recorded is speech at a usable level, as the enrolment measured it.
        var report = voice.GetProperty("quality").GetProperty("samples")[0];
        Assert.True(report.GetProperty("speechSeconds").GetDouble() > 4, report.ToString());
    }

    [Fact]
    public async Task On_a_plain_http_lan_address_the_page_says_why_it_cannot_record_and_uploads_still_work()
    {
        await using var d = await fixture.ReadyToSpeakAsync("Hello from the other room.", fixture.LanAddress);
        await d.TabAsync("Voices");
        Assert.False(await d.EvalAsync<bool>("window.isSecureContext"));
        await Assertions.Expect(d.ByTestId("record-unavailable")).ToBeVisibleAsync();
        await Assertions.Expect(d.ByTestId("record-unavailable")).ToContainTextAsync("HTTPS");
        await Assertions.Expect(d.ByTestId("record-unavailable")).ToContainTextAsync("ssh -L");
        await Assertions.Expect(d.ByTestId("enrol-record")).ToBeDisabledAsync();
        await Assertions.Expect(d.ByTestId("enrol-files")).ToBeEnabledAsync();
        await d.ScreenshotAsync("voices-insecure-origin");

        // Speech still plays there: scheduled buffers need no secure context.
        await d.TabAsync("Speak");
        await d.ByTestId("speak-button").ClickAsync();
        await d.WaitForAsync("window.timbre.stream && window.timbre.stream.finished !== null");
        Assert.True(await d.EvalAsync<bool>("window.timbre.stream.final && window.timbre.player.chunksScheduled > 0"));
        d.AssertClean();
    }
}
