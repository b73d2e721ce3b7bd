using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>A voice's fine-tuned version, sent by the front to a Timbre worker that speaks it.</summary>
public sealed partial class NodeTests
{
    [Fact]
    public async Task A_voices_fine_tuned_version_goes_to_a_worker_once_checked_by_its_digest_and_speaks_there()
    {
        var a = await StartWorkerAsync();
        front.Settings["Timbre:FineTuning:EvaluationClips"] = "1";
        await FrontOnAsync(enrol: false, a);
        using var http = front.CreateClient();
        var (dataset, prepare) = await FineTuningClient.UploadAsync(http, data.Upload("Graham"));
        await FineTuningClient.WaitAsync(http, prepare, "succeeded");
        using (var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Graham", options = new { max_iterations = 2, strength = 0.6 }, force = true }))
        {
            var job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var done = await FineTuningClient.WaitAsync(http, job, "succeeded", "failed");
            Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        }

        const string Text = "Glue the sheet to the dark blue background. It is easy to tell the depth of a well.";
        var local = await SpeakAsync(Text, "graham", "classic");
        var remote = await SpeakAsync(Text, "graham");
        Assert.True(remote.Status == HttpStatusCode.OK, Encoding.UTF8.GetString(remote.Body));

        // The worker holds the version folder as the front has it, under the digest both sides compute.
        var version = Path.Combine(front.DataDirectory, "graham", "versions", "1");
        var digest = FolderDigest(version);
        var copy = Path.Combine(a.Folder, "data", "cluster", "models", digest);
        Assert.True(Directory.Exists(copy), string.Join(", ", Directory.GetDirectories(Path.GetDirectoryName(copy)!)));
        Assert.Equal(Listing(version), Listing(copy));

        // It speaks with it: the worker's audio is the front's own classic audio but for the two marks, and
        // far from the zero-shot clone's.
        var zeroShot = await ActivatedAsync(http, 0, Text);
        Assert.True(Correlation(local.Body, remote.Body) > 0.98, $"{Correlation(local.Body, remote.Body)}");
        Assert.True(Correlation(local.Body, zeroShot) < 0.9, $"{Correlation(local.Body, zeroShot)}");

        // Sent once: later requests name it, and the worker already holds it.
        var sent = front.Logs.Lines.Count(l => l.Contains("sent fine-tuned version", StringComparison.Ordinal));
        Assert.Equal(1, sent);
        await ActivatedAsync(http, 1, Text);
        Assert.Equal(sent, front.Logs.Lines.Count(l => l.Contains("sent fine-tuned version", StringComparison.Ordinal)));

        // A tar that would write outside the folder, one that is not a tar, and one whose digest is not the
        // name are refused with what is wrong, and nothing is kept.
        using var asNode = new HttpClient { BaseAddress = a.Http.BaseAddress };
        asNode.DefaultRequestHeaders.Authorization = new("Bearer", NodeKey);
        var other = new string('c', 64);
        using (var escape = await asNode.PutAsync($"/v1/cluster/models/{other}", new ByteArrayContent(Tar(("../escape.txt", "x"u8.ToArray())))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, escape.StatusCode);
            Assert.Contains("'../escape.txt' is not a relative path", await escape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var notTar = await asNode.PutAsync($"/v1/cluster/models/{other}", new ByteArrayContent(Encoding.ASCII.GetBytes(new string('z', 2048)))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, notTar.StatusCode);
            Assert.Contains("not a tar stream", await notTar.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var mismatch = await asNode.PutAsync($"/v1/cluster/models/{other}", new ByteArrayContent(Tar(("version.json", "{}"u8.ToArray())))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, mismatch.StatusCode);
            Assert.Contains("digest", await mismatch.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal([copy], Directory.GetFileSystemEntries(Path.GetDirectoryName(copy)!));
        Assert.False(File.Exists(Path.Combine(a.Folder, "data", "cluster", "escape.txt")));
        front.AssertNoErrorsLogged();
    }

    private async Task<byte[]> ActivatedAsync(HttpClient http, int version, string text)
    {
        using (var activate = await http.PostAsync($"/v1/voices/graham/versions/{version}/activate", null))
        {
            Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
        }

        var (status, wav, _) = await SpeakAsync(text, "graham");
        Assert.True(status == HttpStatusCode.OK, Encoding.UTF8.GetString(wav));
        return wav;
    }

    /// <summary>The node API's folder digest, written here from the README's words as a check on both sides.</summary>
    internal static string FolderDigest(string folder)
    {
        var lines = Listing(folder).Select(f => $"{f.Hash} {f.Size} {f.Path}\n").ToList();
        lines.Sort((x, y) => Encoding.UTF8.GetBytes(x.Split(' ', 3)[2]).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(y.Split(' ', 3)[2])));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Concat(lines))));
    }

    private static List<(string Path, string Hash, long Size)> Listing(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => (Path.GetRelativePath(folder, f), Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))), new FileInfo(f).Length))
            .OrderBy(f => f.Item1, StringComparer.Ordinal)];

    internal static byte[] Tar(params (string Name, byte[] Data)[] files)
    {
        using var buffer = new MemoryStream();
        using (var tar = new System.Formats.Tar.TarWriter(buffer, System.Formats.Tar.TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, data) in files)
            {
                tar.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            }
        }

        return buffer.ToArray();
    }

    /// <summary>Pearson correlation of two 16-bit WAVs' samples over their common length.</summary>
    private static double Correlation(byte[] x, byte[] y)
    {
        static double[] Samples(byte[] wav)
        {
            var reader = new NAudio.Wave.WaveFileReader(new MemoryStream(wav));
            var bytes = new byte[reader.Length];
            var read = reader.Read(bytes, 0, bytes.Length);
            return [.. Enumerable.Range(0, read / 2).Select(i => (double)BitConverter.ToInt16(bytes, i * 2))];
        }

        var (a, b) = (Samples(x), Samples(y));
        var n = Math.Min(a.Length, b.Length);
        var (ma, mb) = (a.Take(n).Average(), b.Take(n).Average());
        double sab = 0, saa = 0, sbb = 0;
        for (var i = 0; i < n; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }

        return sab / Math.Sqrt(saa * sbb);
    }
}
