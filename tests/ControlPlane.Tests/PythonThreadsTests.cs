using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Tests;

/// <summary>How many threads run Python when the owner does not say (README, "Which threads run Python").</summary>
public sealed class PythonThreadsTests
{
    [Theory]
    [InlineData(2, 8)] // this build machine: four per core
    [InlineData(16, 20)] // a desktop: one per stream the engines may run (16 + 1 + 1) and two for calls
    [InlineData(1, 4)]
    public void By_default_a_thread_per_stream_up_to_four_per_core(int cores, int threads) =>
        Assert.Equal(threads, HostingExtensions.AutomaticPythonThreads(new SpeechOptions(), cores));

    [Fact]
    public void Fewer_streams_need_fewer_threads()
    {
        var speech = new SpeechOptions();
        speech.Concurrency["classic"] = 2;
        Assert.Equal(6, HostingExtensions.AutomaticPythonThreads(speech, 8));
    }

    [Fact]
    public void A_negative_count_refuses_to_start_and_says_what_to_set()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Python:Threads"] = "-1";
        var error = Assert.Throws<OptionsValidationException>(() => app.CreateClient());
        Assert.Contains("Timbre:Python:Threads is -1", error.Message, StringComparison.Ordinal);
    }
}
