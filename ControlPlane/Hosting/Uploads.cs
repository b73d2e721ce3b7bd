using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Reading a multipart upload within a size limit, the same way for every endpoint that takes files.</summary>
public static class Uploads
{
    /// <summary>
    /// The form, or a 413 problem saying <paramref name="limits"/> when the body is larger than
    /// <paramref name="maxBody"/> or cannot be read. Kestrel's own body limit is raised to match.
    /// </summary>
    public static async Task<(IFormCollection? Form, ProblemHttpResult? Problem)> ReadFormAsync(HttpContext http, long maxBody, string limits, CancellationToken ct)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = maxBody;
        }

        try
        {
            return (await http.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = maxBody }, ct), null);
        }
        catch (Exception e) when (e is BadHttpRequestException or InvalidDataException or IOException)
        {
            return (null, Problems.TooLarge($"The upload could not be read ({e.Message}). {limits}"));
        }
    }

    /// <summary>Bytes free on the disk that holds <paramref name="path"/>; unknown counts as plenty.</summary>
    public static long FreeBytes(string path)
    {
        try
        {
            return new DriveInfo(Path.GetFullPath(path)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return long.MaxValue;
        }
    }
}
