using System.Net.Http.Headers;
using System.Text.Json;

namespace Timbre.ControlPlane.Engines;

/// <summary>
/// What only Timbre worker nodes (kind timbre) need: a worker names the samples it lacks (409 with
/// <c>missing</c>), and the front sends each before asking again (README, "Scaling out", the node API).
/// </summary>
public sealed partial class RemoteEngine
{
    /// <summary>The samples a worker's 409 names as missing.</summary>
    private static async Task<List<string>> MissingAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.TryGetProperty("missing", out var missing) && missing.ValueKind == JsonValueKind.Array)
            {
                return [.. missing.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.String).Select(m => m.GetString()!)];
            }
        }
        catch (JsonException)
        {
        }

        throw new EndpointFailedException($"HTTP 409 without the list of missing samples: {(text.Length > 300 ? text[..300] : text)}");
    }

    /// <summary>PUT /v1/cluster/samples/{sha256} for each sample the worker lacks; it checks the hash.</summary>
    private async Task UploadAsync(Endpoint endpoint, List<string> missing, IReadOnlyDictionary<string, string> files, CancellationToken cancellationToken)
    {
        foreach (var sha in missing)
        {
            if (!files.TryGetValue(sha, out var path))
            {
                throw new EndpointFailedException($"it asked for sample {sha}, which this request did not name");
            }

            await using var file = File.OpenRead(path);
            using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(endpoint.Url, $"v1/cluster/samples/{sha}"))
            {
                Content = new StreamContent(file),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
            Authorise(request);
            using var response = await http.SendAsync(request, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                var (message, _) = ErrorOf(await response.Content.ReadAsStringAsync(cancellationToken));
                throw new EndpointFailedException($"sending sample {sha[..12]} failed: HTTP {(int)response.StatusCode}{(message is null ? "" : $": {message}")}");
            }

            LogSampleSent(logger, Name, endpoint.Text, sha);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Remote engine {Engine}: sent sample {Sha256} to {Endpoint}, which lacked it")]
    private static partial void LogSampleSent(ILogger logger, string engine, string endpoint, string sha256);
}
