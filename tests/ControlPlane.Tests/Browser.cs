using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// Debian's Chromium driven by Playwright, headless, for the dashboard tests. Browsers cannot be downloaded
/// here, so Playwright is pointed at /usr/bin/chromium (ops/install-deps installs it).
/// </summary>
public sealed class Browser : IAsyncDisposable
{
    public const string Executable = "/usr/bin/chromium";

    /// <summary>A host name that resolves to loopback inside the browser only: a LAN address as far as the page can tell.</summary>
    public const string LanHost = "timbre.test";

    private Browser(IPlaywright playwright, IBrowser browser)
    {
        Playwright = playwright;
        Instance = browser;
    }

    public IPlaywright Playwright { get; }

    public IBrowser Instance { get; }

    /// <summary>Launches Chromium; <paramref name="microphone"/> is a WAV file the fake microphone plays.</summary>
    public static async Task<Browser> LaunchAsync(string? microphone = null)
    {
        Assert.True(File.Exists(Executable), $"{Executable} is missing: run ops/install-deps (Debian package chromium).");
        var playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        var args = new List<string> { $"--host-resolver-rules=MAP {LanHost} 127.0.0.1", "--no-sandbox" };
        if (microphone is not null)
        {
            // The path must be absolute and normalised, or Chromium records silence.
            args.AddRange(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", $"--use-file-for-fake-audio-capture={Path.GetFullPath(microphone)}"]);
        }

        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Executable, Headless = true, Args = args });
        return new Browser(playwright, browser);
    }

    public async ValueTask DisposeAsync()
    {
        await Instance.CloseAsync();
        Playwright.Dispose();
    }
}

/// <summary>One page in a fresh browser context, with everything it logged and every request it made.</summary>
public sealed partial class DashboardPage : IAsyncDisposable
{
    private readonly IBrowserContext context;
    private readonly List<string> consoleErrors = [];
    private readonly List<string> requests = [];

    private DashboardPage(IBrowserContext context, IPage page)
    {
        this.context = context;
        Page = page;
        page.Console += (_, m) =>
        {
            if (m.Type is "error" or "warning")
            {
                lock (consoleErrors)
                {
                    consoleErrors.Add($"{m.Type}: {m.Text}");
                }
            }
        };
        page.PageError += (_, e) =>
        {
            lock (consoleErrors)
            {
                consoleErrors.Add($"page error: {e}");
            }
        };
        page.Request += (_, r) =>
        {
            lock (requests)
            {
                requests.Add(r.Url);
            }
        };
    }

    public IPage Page { get; }

    /// <summary>Opens the dashboard in a fresh context; with <paramref name="key"/>, as a browser that was given the key on an earlier visit.</summary>
    public static async Task<DashboardPage> OpenAsync(Browser browser, Uri address, string? key = null, bool dark = false, int width = 1400, int height = 1000, bool ignoreHttpsErrors = false)
    {
        var origin = address.GetLeftPart(UriPartial.Authority);
        var context = await browser.Instance.NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = width, Height = height },
            AcceptDownloads = true,
            ColorScheme = dark ? ColorScheme.Dark : ColorScheme.Light,
            IgnoreHTTPSErrors = ignoreHttpsErrors,
            StorageState = key is null ? null : System.Text.Json.JsonSerializer.Serialize(new
            {
                cookies = Array.Empty<object>(),
                origins = new[] { new { origin, localStorage = new[] { new { name = "timbre.apiKey", value = key } } } },
            }),
        });
        var page = await context.NewPageAsync();
        var dashboard = new DashboardPage(context, page);
        await page.GotoAsync(address.ToString());
        // Ready once the catalog has loaded (or failed) and the pickers are filled.
        await dashboard.WaitForAsync("document.getElementById('speak-engine').options.length > 0 || !document.getElementById('banner').hidden");
        return dashboard;
    }

    public ILocator ByTestId(string id) => Page.GetByTestId(id);

    public Task TabAsync(string name) => Page.GetByRole(AriaRole.Tab, new() { Name = name }).ClickAsync();

    public async Task<T> EvalAsync<T>(string expression) => await Page.EvaluateAsync<T>(expression);

    /// <summary>Waits until <paramref name="expression"/> is true in the page.</summary>
    /// <remarks>Polled from here: Playwright's WaitForFunction compiles its predicate with eval, which the page's CSP forbids.</remarks>
    public async Task WaitForAsync(string expression, int timeoutMs = 30000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!await Page.EvaluateAsync<bool>($"!!({expression})"))
        {
            Assert.True(DateTime.UtcNow < until, $"still false after {timeoutMs} ms: {expression}");
            await Task.Delay(50);
        }
    }

    /// <summary>Saves a full-page screenshot as artifacts/screenshots/NAME.png for people to look at.</summary>
    public async Task ScreenshotAsync(string name)
    {
        Directory.CreateDirectory(ScreenshotFolder);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotFolder, name + ".png"), FullPage = true });
    }

    public static string ScreenshotFolder => Path.Combine(ServerProcess.RepositoryRoot, "artifacts", "screenshots");

    /// <summary>Console errors and warnings and uncaught exceptions, less those matching <paramref name="expected"/>.</summary>
    public IReadOnlyList<string> ConsoleErrors(Regex? expected = null)
    {
        lock (consoleErrors)
        {
            return consoleErrors.Where(e => expected is null || !expected.IsMatch(e)).ToList();
        }
    }

    /// <summary>Every request that went anywhere but this machine (data: and blob: URLs stay in the page).</summary>
    public IReadOnlyList<string> RequestsOffMachine()
    {
        lock (requests)
        {
            return requests.Where(u => !LocalUrl().IsMatch(u)).ToList();
        }
    }

    public void AssertClean(Regex? expected = null)
    {
        Assert.Empty(ConsoleErrors(expected));
        Assert.Empty(RequestsOffMachine());
    }

    [GeneratedRegex(@"^(?:(?:https?|wss?)://(?:127\.0\.0\.1|localhost|\[::1\]|timbre\.test)(?::\d+)?/|data:|blob:)")]
    private static partial Regex LocalUrl();

    public async ValueTask DisposeAsync() => await context.CloseAsync();
}
