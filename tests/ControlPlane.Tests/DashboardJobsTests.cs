using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;

namespace Timbre.ControlPlane.Tests;

/// <summary>The Fine-tuning panel driving a real classic fine-tune: dataset upload, job, live log and loss, evaluation, versions.</summary>
public sealed class DashboardJobsTests(FineTuningFixture data, DashboardFixture fixture) : IClassFixture<FineTuningFixture>, IClassFixture<DashboardFixture>
{
    private TimbreApp app => fixture.App;

    private Browser browser => fixture.Browser;

    [Fact]
    public async Task A_dataset_uploaded_and_trained_from_the_page_shows_progress_log_loss_evaluation_and_versions()
    {
        await using var d = await DashboardPage.OpenAsync(browser, app.BaseAddress, DashboardFixture.Key);
        // A new server: the empty states say what to do first.
        await d.TabAsync("Voices");
        await Assertions.Expect(d.Page.Locator("#voice-empty")).ToBeVisibleAsync();
        await d.ScreenshotAsync("voices-empty");
        await d.TabAsync("Fine-tuning");
        await Assertions.Expect(d.Page.Locator("#jobs-empty")).ToBeVisibleAsync();
        await d.ScreenshotAsync("fine-tuning-empty");
        await d.ByTestId("dataset-name").FillAsync("Graham takes");
        await d.ByTestId("dataset-files").SetInputFilesAsync(Directory.EnumerateFiles(data.Takes).Order(StringComparer.Ordinal).ToArray());
        await d.ByTestId("dataset-submit").ClickAsync();
        await Assertions.Expect(d.Page.Locator("#dataset-result")).ToContainTextAsync("preparing it now");

        // The preparation job appears with a progress bar, and its dataset becomes choosable once ready.
        var prepare = d.ByTestId("job-list").Locator("li").Filter(new() { HasText = "Prepare Graham takes" });
        await Assertions.Expect(prepare).ToBeVisibleAsync();
        await Assertions.Expect(prepare.Locator("progress")).ToBeVisibleAsync();
        await Assertions.Expect(prepare.Locator(".badge")).ToHaveTextAsync("succeeded", new() { Timeout = 240_000 });
        await Assertions.Expect(d.ByTestId("job-dataset").Locator("option", new() { HasText = "Graham takes" })).ToHaveCountAsync(1);

        await d.ByTestId("job-voice").FillAsync("Graham");
        await d.ByTestId("job-options").FillAsync("{ not json");
        await d.ByTestId("job-submit").ClickAsync();
        await Assertions.Expect(d.Page.Locator("#job-result")).ToContainTextAsync("must be JSON");
        await d.ByTestId("job-options").FillAsync("""{"max_iterations": 3, "strength": 0.6}""");
        await d.ByTestId("job-submit").ClickAsync();

        // The job opens with its live log; the loss curve draws as epochs end.
        await Assertions.Expect(d.ByTestId("job-detail")).ToBeVisibleAsync();
        await Assertions.Expect(d.ByTestId("job-log")).ToContainTextAsync("[train]", new() { Timeout = 240_000 });
        await d.ScreenshotAsync("fine-tuning-running");
        await Assertions.Expect(d.ByTestId("evaluation")).ToBeVisibleAsync(new() { Timeout = 300_000 });
        await Assertions.Expect(d.ByTestId("job-log")).ToContainTextAsync("end of job");
        Assert.Equal(3, await d.EvalAsync<int>("[...document.getElementById('job-log').textContent.matchAll(/\\[train\\].*epoch=\\d+ loss=/g)].length"));
        await Assertions.Expect(d.ByTestId("evaluation").Locator("tbody tr")).ToHaveCountAsync(5);
        await Assertions.Expect(d.ByTestId("job-cancel")).ToBeHiddenAsync();

        var job = (await app.CreateClient(DashboardFixture.Key).GetFromJsonAsync<JsonElement[]>("/v1/finetune/jobs"))!.First(j => j.GetProperty("kind").GetString() != "prepare");
        var evaluation = job.GetProperty("result").GetProperty("evaluation");
        var shown = await d.ByTestId("evaluation").Locator("tbody tr").First.Locator("td").AllTextContentsAsync();
        string Shown(string side, string key, string format) => evaluation.GetProperty(side).GetProperty(key).GetDouble().ToString(format, CultureInfo.InvariantCulture);
        Assert.Equal([Shown("zero_shot", "distance_db", "F3"), Shown("candidate", "distance_db", "F3")], shown);
        // Every row keeps its decimals, whole numbers included (a word error rate of 25 reads 25.0).
        var errors = await d.ByTestId("evaluation").Locator("tbody tr").Nth(2).Locator("td").AllTextContentsAsync();
        Assert.Equal([Shown("zero_shot", "wer_pct", "F1"), Shown("candidate", "wer_pct", "F1")], errors);

        // Versions: activate the zero-shot clone from the page; the library follows.
        var versions = d.ByTestId("versions");
        await Assertions.Expect(versions.Locator("tbody tr")).ToHaveCountAsync(2);
        await d.ScreenshotAsync("fine-tuning-done");
        // Switch to whichever version is not active; one that evaluated worse asks first.
        using var http = app.CreateClient(DashboardFixture.Key);
        var active = (await http.GetFromJsonAsync<JsonElement>("/v1/voices/graham/versions")).GetProperty("active").GetInt32();
        Assert.Equal(evaluation.GetProperty("better").GetBoolean() ? 1 : 0, active);
        var other = versions.Locator("tbody tr").Nth(1 - active);
        await other.GetByTestId("activate-version").ClickAsync();
        if (active == 0)
        {
            await Assertions.Expect(d.Page.Locator("dialog#confirm")).ToContainTextAsync("worse than the zero-shot clone");
            await d.ByTestId("confirm-ok").ClickAsync();
        }

        await Assertions.Expect(other).ToContainTextAsync("active");
        Assert.Equal(1 - active, (await http.GetFromJsonAsync<JsonElement>("/v1/voices/graham/versions")).GetProperty("active").GetInt32());
        d.AssertClean();
        app.AssertNoErrorsLogged();
    }
}
