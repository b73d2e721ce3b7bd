namespace Timbre.ControlPlane.Speech;

// The wire contract of /hubs/speech. Clients (ops/benchmark, McpClient) compile this file in by link,
// so the two sides cannot drift apart and no client depends on the server's assembly.

/// <summary>The hub's request; the same fields as POST /v1/speech plus an optional request id.</summary>
public sealed class SpeechRequest
{
    public string? Text { get; set; }

    public string? Voice { get; set; }

    public string? Language { get; set; }

    public string? Engine { get; set; }

    public string? Instructions { get; set; }

    public double? Speed { get; set; }

    /// <summary>The caller's id for this request: at most one stream per id per API key, and CancelSpeech(id) stops it.</summary>
    public string? RequestId { get; set; }
}

/// <summary>One piece of a speech stream: mono 16-bit little-endian PCM.</summary>
public sealed class AudioChunk
{
    public long Sequence { get; set; }

    public int SampleRate { get; set; }

    public int Channels { get; set; }

    public byte[] Pcm { get; set; } = [];

    public bool IsFinal { get; set; }
}
