using Xunit.Abstractions;

namespace Timbre.PyRuntime.Tests;

[Collection(PythonCollection.Name)]
public sealed class PythonRuntimeTests(PythonFixture fixture, ITestOutputHelper output)
{
    private const string Probe = "runtime_probe";
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);
    private readonly PythonRuntime python = fixture.Runtime;

    private Task<T> Call<T>(PyConvert<T> convert, string function, params object?[] args) =>
        python.InvokeAsync(py =>
        {
            using var result = py.Call(Probe, function, args);
            return convert(py, result);
        }, CancellationToken.None);

    private IAsyncEnumerable<float[]> Stream(string function, CancellationToken ct, params object?[] args) =>
        python.StreamAsync(py => py.Call(Probe, function, args), (_, item) => item.AsFloatArray(), capacity: 4, ct);

    [Fact]
    public async Task Numpy_imports_from_the_embedded_interpreter()
    {
        var version = await Call((_, o) => o.AsString(), "numpy_version");
        Assert.Matches(@"^\d+\.\d+", version);
        Assert.Equal("/usr", python.Prefix);
    }

    [Fact]
    public async Task A_python_exception_carries_its_type_file_and_line()
    {
        var ex = await Assert.ThrowsAsync<PythonException>(() => Call((_, o) => o.IsNone, "fail_here"));
        var source = await File.ReadAllLinesAsync(Path.Combine(AppContext.BaseDirectory, "python", "runtime_probe.py"));
        var line = Array.FindIndex(source, l => l.Contains("# FAIL_LINE", StringComparison.Ordinal)) + 1;
        Assert.Equal("ValueError", ex.PythonType);
        Assert.Equal("deliberate failure for the traceback test", ex.PythonMessage);
        Assert.Contains($"runtime_probe.py\", line {line}, in fail_here", ex.PythonTraceback, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancelling_a_stream_runs_the_generators_finally()
    {
        var token = Guid.NewGuid().ToString();
        using var cts = new CancellationTokenSource();
        var received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var chunk in Stream("endless", cts.Token, token))
            {
                Assert.Equal(received, chunk[0]);
                if (++received == 3)
                {
                    await cts.CancelAsync();
                }
            }
        });
        Assert.Equal(3, received);
        Assert.True(await Call((_, o) => o.IsTrue(), "was_closed", token));
    }

    [Fact]
    public async Task Leaving_a_stream_early_closes_the_generator()
    {
        var token = Guid.NewGuid().ToString();
        await foreach (var chunk in Stream("endless", CancellationToken.None, token))
        {
            if (chunk[0] >= 1)
            {
                break;
            }
        }

        Assert.True(await Call((_, o) => o.IsTrue(), "was_closed", token));
    }

    [Fact]
    public async Task Fifty_concurrent_streams_complete_with_their_own_data()
    {
        async Task<List<float>> Consume(int start)
        {
            var firsts = new List<float>();
            await foreach (var chunk in Stream("ramp", CancellationToken.None, start * 1000, 40, 256))
            {
                Assert.Equal(256, chunk.Length);
                Assert.All(chunk, v => Assert.Equal(chunk[0], v));
                firsts.Add(chunk[0]);
                // Slow, uneven consumers make the bounded channels fill and the producers wait.
                if (start % 3 == 0)
                {
                    await Task.Yield();
                }
            }

            return firsts;
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(Consume)).WaitAsync(Generous);
        for (var s = 0; s < 50; s++)
        {
            Assert.Equal(Enumerable.Range(0, 40).Select(i => (float)(s * 1000 + i)), results[s]);
        }
    }

    [Fact]
    public async Task A_chunk_crosses_from_numpy_in_one_copy_and_the_crossing_is_measured()
    {
        // 4800 float32 samples: a 200 ms chunk at 24 kHz. The figure is printed, not asserted (ops/bench holds the gate).
        var crossings = new List<double>();
        long expected = 0;
        await foreach (var chunk in python.StreamAsync(
            py => py.Call(Probe, "ramp", 0, 400, 4800),
            (_, item) =>
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var samples = item.AsFloatArray();
                crossings.Add(clock.Elapsed.TotalMicroseconds);
                return samples;
            },
            capacity: 4,
            CancellationToken.None))
        {
            Assert.Equal(4800, chunk.Length);
            Assert.All(chunk, v => Assert.Equal(expected, v));
            expected++;
        }

        Assert.Equal(400, expected);
        crossings.Sort();
        output.WriteLine($"chunk crossing (4800 float32, Python -> .NET): median {crossings[crossings.Count / 2]:0.0} µs, p95 {crossings[(int)(crossings.Count * 0.95)]:0.0} µs");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task A_chunk_that_cannot_be_read_ends_the_stream_and_closes_the_generator(int goodChunks)
    {
        // The first chunk is read in the same work item as the call that starts the stream; both it
        // and a later one must leave no generator suspended.
        var token = Guid.NewGuid().ToString();
        var received = 0;
        var error = await Assert.ThrowsAsync<InvalidCastException>(async () =>
        {
            await foreach (var _ in Stream("int16_from", CancellationToken.None, goodChunks, token))
            {
                received++;
            }
        });
        Assert.Contains("'h'", error.Message, StringComparison.Ordinal);
        Assert.Equal(goodChunks, received);
        Assert.True(await Call((_, o) => o.IsTrue(), "was_closed", token));
    }

    [Fact]
    public async Task A_buffer_that_is_not_float32_is_refused_with_its_format()
    {
        var error = await Assert.ThrowsAsync<InvalidCastException>(() => Call((_, o) => o.AsFloatArray(), "int16_samples"));
        Assert.Contains("'h'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ten_million_samples_round_trip_exactly()
    {
        var random = new Random(20261124);
        var data = new float[10_000_000];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (float)((random.NextDouble() * 2) - 1) * MathF.Pow(10, random.Next(-30, 30));
        }

        var back = await Call((_, o) => o.AsFloatArray(), "echo_float32", data);
        Assert.Equal(data.Length, back.Length);
        Assert.True(data.AsSpan().SequenceEqual(back), "the samples came back changed");
    }

    [Fact]
    public async Task An_exception_mid_stream_surfaces_and_the_runtime_keeps_serving()
    {
        var received = new List<float>();
        var ex = await Assert.ThrowsAsync<PythonException>(async () =>
        {
            await foreach (var chunk in Stream("breaks_after", CancellationToken.None, 2))
            {
                received.Add(chunk[0]);
            }
        });
        Assert.Equal([0f, 1f], received);
        Assert.Equal("RuntimeError", ex.PythonType);
        Assert.Contains("stream broke after 2 chunks", ex.PythonTraceback, StringComparison.Ordinal);

        var version = await Call((_, o) => o.AsString(), "numpy_version");
        Assert.False(string.IsNullOrEmpty(version));
    }

    [Fact]
    public async Task Python_threads_run_while_the_runtime_is_idle()
    {
        await Call((_, o) => o.IsNone, "start_ticker");
        var before = await Call((_, o) => o.AsInt64(), "ticks");
        await Task.Delay(300);
        var after = await Call((_, o) => o.AsInt64(), "ticks");
        // Had the Python thread kept the GIL while waiting for work, the ticker could not have run.
        Assert.True(after - before >= 10, $"ticker advanced only {after - before} times");
    }

    [Fact]
    public async Task Under_light_load_a_streams_steps_stay_on_the_threads_that_went_idle_last()
    {
        // Four threads woken in turn would take 30 steps in rotation, all four of them. Woken last-idle-first,
        // a step runs on the thread that ran the step before it, or on the one before that when the last
        // has not yet gone back to waiting.
        var threads = new HashSet<float>();
        await foreach (var chunk in Stream("thread_of_each_step", CancellationToken.None, 30, 0.005))
        {
            threads.Add(chunk[0]);
        }

        Assert.InRange(threads.Count, 1, 2);
    }

    [Fact]
    public async Task Passing_an_unsupported_type_says_which_types_work()
    {
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => Call((_, o) => o.IsNone, "ticks", new object()));
        Assert.Contains("JSON for structures", ex.Message, StringComparison.Ordinal);
    }
}
