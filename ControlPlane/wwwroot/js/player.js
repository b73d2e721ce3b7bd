// Gapless playback of PCM chunks as they arrive. Each chunk becomes one AudioBufferSourceNode,
// scheduled right after the previous one; the browser resamples the chunk's rate (24 kHz) to the
// AudioContext's own. The first chunk starts LEAD seconds ahead so small network jitter never
// opens a gap; after an underrun (the network fell behind playback) the schedule re-anchors.
// This works on plain-HTTP LAN pages too, where an AudioWorklet would not be allowed.

const LEAD = 0.15;

function freshStats() {
  return {
    chunksReceived: 0,   // chunks with audio that arrived
    chunksScheduled: 0,  // of those, handed to the audio graph
    samplesScheduled: 0, // = PCM bytes / 2
    chunksPlayed: 0,     // chunks whose playback ended (the audio reached the output)
    samplesPlayed: 0,
    playedBeforeEnd: 0,  // chunks played while the stream was still arriving
    underruns: 0,
    maxRmsWhileStreaming: 0,
    firstPlayedAt: null, // performance.now() when the first chunk finished playing
    streamEndedAt: null, // performance.now() when the last chunk arrived
  };
}

export class StreamPlayer {
  constructor() {
    this.context = null;
    this.analyser = null;
    this.output = null;
    this.sources = new Set();
    this.stats = freshStats();
    this.streaming = false;
    this.next = 0;
    this.onIdle = null;
  }

  /**
   * Creates or resumes the AudioContext. Call it synchronously inside the click that starts playback:
   * browsers let a context start only from a user gesture.
   */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext({ latencyHint: "interactive" });
      this.output = this.context.createGain();
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 2048;
      this.output.connect(this.analyser);
      this.analyser.connect(this.context.destination);
    }
    if (this.context.state !== "running") this.context.resume();
  }

  /** Starts a new stream, silencing anything still playing. */
  begin() {
    this.silence();
    this.stats = freshStats();
    this.streaming = true;
    this.next = 0;
  }

  /** Plays <samples> (Float32Array, -1..1) at <rate> Hz right after what is already scheduled. */
  push(samples, rate) {
    const stats = this.stats;
    stats.chunksReceived++;
    if (!this.context || samples.length === 0) return;
    const context = this.context;
    const buffer = context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const now = context.currentTime;
    if (this.next < now + 0.01) {
      if (stats.chunksScheduled > 0) stats.underruns++;
      this.next = now + LEAD;
    }
    source.start(this.next);
    this.next += buffer.duration;
    this.sources.add(source);
    stats.chunksScheduled++;
    stats.samplesScheduled += samples.length;
    source.onended = () => {
      this.sources.delete(source);
      stats.chunksPlayed++;
      stats.samplesPlayed += samples.length;
      stats.firstPlayedAt ??= performance.now();
      if (this.streaming) stats.playedBeforeEnd++;
      if (!this.streaming && this.sources.size === 0) this.onIdle?.();
    };
  }

  /** The stream sent its last chunk; playback goes on until the schedule runs out. */
  end() {
    this.streaming = false;
    this.stats.streamEndedAt = performance.now();
    if (this.sources.size === 0) this.onIdle?.();
  }

  /** Stops playback at once. */
  silence() {
    for (const source of this.sources) {
      source.onended = null;
      try { source.stop(); } catch { /* not started yet */ }
    }
    this.sources.clear();
    this.streaming = false;
  }

  get playing() { return this.sources.size > 0; }

  /** Seconds of audio still scheduled ahead of the playhead. */
  get buffered() { return this.context ? Math.max(0, this.next - this.context.currentTime) : 0; }

  /** Root-mean-square level of what is reaching the output now (and noted while the stream is still arriving). */
  level(scratch) {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(scratch);
    let sum = 0;
    for (const v of scratch) sum += v * v;
    const rms = Math.sqrt(sum / scratch.length);
    if (this.streaming && rms > this.stats.maxRmsWhileStreaming) this.stats.maxRmsWhileStreaming = rms;
    return rms;
  }
}

/** One hub chunk's PCM (base64 of little-endian int16 with the JSON protocol) as int16 and float samples. */
export function decodeChunk(pcm) {
  const binary = atob(pcm);
  const count = binary.length >> 1;
  const ints = new Int16Array(count);
  const floats = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let v = binary.charCodeAt(2 * i) | (binary.charCodeAt(2 * i + 1) << 8);
    if (v >= 0x8000) v -= 0x10000;
    ints[i] = v;
    floats[i] = v / 32768;
  }
  return { ints, floats };
}

/** A 16-bit mono WAV file of the given int16 chunks. */
export function wavBlob(chunks, rate) {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const header = new ArrayBuffer(44);
  const view = new DataView(header);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples * 2, true);
  // WAV is little-endian, as are the chunks' int16 arrays on every platform browsers run on.
  return new Blob([header, ...chunks.map(c => c.buffer)], { type: "audio/wav" });
}
