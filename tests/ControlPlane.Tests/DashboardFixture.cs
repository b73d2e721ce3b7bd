using System.Globalization;
using System.Net;

namespace Timbre.ControlPlane.Tests;

/// <summary>The browser tests that share one server and one Chromium run one after another.</summary>
[CollectionDefinition("Browser")]
public sealed class BrowserCollection : ICollectionFixture<DashboardFixture>;

/// <summary>The real server with an API key, and one Chromium for the dashboard tests.</summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    public const string Key = "dashboard-test-key-0123456789";

    public TimbreApp App { get; } = new();

    public Browser Browser { get; private set; } = null!;

    public Uri Address => App.BaseAddress;

    /// <summary>The same server under a name the browser takes for a LAN host (plain HTTP, not localhost).</summary>
    public Uri LanAddress => new UriBuilder(Address) { Host = Browser.LanHost }.Uri;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        App.Settings["AllowedHosts"] = $"localhost;127.0.0.1;[::1];{Browser.LanHost}";
        // Fine-tuning from the page evaluates on three held-out sentences, not twelve.
        App.Settings["Timbre:FineTuning:EvaluationClips"] = "3";
        Http = App.CreateClient(Key);
        Browser = await Browser.LaunchAsync();
    }

    /// <summary>A counter from /metrics, summed over the series whose labels contain <paramref name="labels"/>.</summary>
    public async Task<double> MetricAsync(string name, string labels = "")
    {
        var text = await Http.GetStringAsync("/metrics");
        return text.Split('\n')
            .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains(labels, StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    public async Task<string> VoiceAsync(string name)
    {
        using var response = await Http.GetAsync($"/v1/voices/{name}");
        return response.StatusCode == HttpStatusCode.OK ? name : await App.EnrolAsync(name, DashboardFixture.Key);
    }

    /// <summary>The Speak panel with a voice chosen and <paramref name="text"/> typed, ready for the Speak button.</summary>
    public async Task<DashboardPage> ReadyToSpeakAsync(string text, Uri? address = null)
    {
        var voice = await VoiceAsync("ada");
        var d = await DashboardPage.OpenAsync(Browser, address ?? Address, DashboardFixture.Key);
        await d.ByTestId("speak-voice").SelectOptionAsync(voice);
        await d.ByTestId("speak-text").FillAsync(text);
        return d;
    }

    public async Task DisposeAsync()
    {
        await Browser.DisposeAsync();
        Http.Dispose();
        await App.DisposeAsync();
    }
}
