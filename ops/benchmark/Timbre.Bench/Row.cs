namespace Timbre.Bench;

/// <summary>One line of the table: a path at one concurrency.</summary>
internal sealed record Row(string Path, int Concurrency, double FirstP50, double FirstP95, double FirstMean, double TotalP50, double TotalP95, int Underruns, int Served, int Refused, double? RefusedSlowest, int Errors, long? Rss, double? ServerFirst, double ServerCpu, double ClientCpu)
{
    public static Row Of(string path, int c, List<Result> results, long? rss, double? serverFirst, double serverCpu, double clientCpu)
    {
        var ok = results.Where(r => r.Error is null).ToList();
        var refused = results.Where(r => r.Refused).ToList();
        return new Row(path, c,
            Percentile(ok.Select(r => r.First), 0.5), Percentile(ok.Select(r => r.First), 0.95), ok.Count > 0 ? ok.Average(r => r.First) : double.NaN,
            Percentile(ok.Select(r => r.Total), 0.5), Percentile(ok.Select(r => r.Total), 0.95),
            ok.Sum(r => r.Underruns), ok.Count, refused.Count, refused.Count > 0 ? refused.Max(r => r.Total) : null,
            results.Count - ok.Count - refused.Count, rss, serverFirst, serverCpu, clientCpu);
    }

    private static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    public string Format() =>
        $"| {Path} | {Concurrency} | {Ms(FirstP50)} | {Ms(FirstP95)} | {Ms(TotalP50)} | {Ms(TotalP95)} | {Underruns} | {Refused} | {Errors} | {(Rss is { } r ? $"{r / (1024 * 1024)} MiB" : "—")} | {(ServerFirst is { } f ? Ms(f) : "—")} | {Ms(ServerCpu)} | {Ms(ClientCpu)} |";

    private static string Ms(double s) => double.IsNaN(s) ? "—" : $"{s * 1000:0.0} ms";
}
