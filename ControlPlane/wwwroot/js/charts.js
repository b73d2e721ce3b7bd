// Canvas drawings: the live waveform, a spectrogram of finished speech, sparklines and a line chart.
// Colours come from the page's CSS variables so light and dark both read well.

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** Fits the canvas's pixel size to its displayed size (and the screen's density); returns the 2-D context. */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio)) || canvas.width;
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio)) || canvas.height;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return canvas.getContext("2d");
}

export function drawWaveform(canvas, samples) {
  const g = prepare(canvas);
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.strokeStyle = css("--line");
  g.beginPath();
  g.moveTo(0, height / 2);
  g.lineTo(width, height / 2);
  g.stroke();
  if (!samples) return;
  g.strokeStyle = css("--wave");
  g.lineWidth = Math.max(1, width / 600);
  g.beginPath();
  for (let x = 0; x < width; x++) {
    const v = samples[Math.floor((x / width) * samples.length)] ?? 0;
    const y = height / 2 - v * (height / 2) * 0.95;
    if (x === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  }
  g.stroke();
}

// In-place radix-2 FFT of (re, im), length a power of two.
function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const step = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < size / 2; k++) {
        const cos = Math.cos(step * k);
        const sin = Math.sin(step * k);
        const a = start + k;
        const b = a + size / 2;
        const tr = re[b] * cos - im[b] * sin;
        const ti = re[b] * sin + im[b] * cos;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
}

// A perceptually ordered dark-to-bright ramp (black, violet, orange, pale yellow).
function colour(t) {
  const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
  const x = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x);
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

/** Spectrogram of <samples> (Float32Array at <rate> Hz), 0 to 8 kHz, 80 dB of range. */
export function drawSpectrogram(canvas, samples, rate) {
  const g = prepare(canvas);
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  if (!samples || samples.length < 1024) return;
  const size = 512;
  const columns = Math.min(width, Math.floor((samples.length - size) / 64) + 1);
  const hop = (samples.length - size) / Math.max(1, columns - 1);
  const bins = Math.min(size / 2, Math.floor((8000 / (rate / 2)) * (size / 2)));
  const window = Float32Array.from({ length: size }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
  const re = new Float32Array(size);
  const im = new Float32Array(size);
  const db = new Float32Array(columns * bins);
  let peak = -Infinity;
  for (let c = 0; c < columns; c++) {
    const start = Math.floor(c * hop);
    for (let i = 0; i < size; i++) {
      re[i] = (samples[start + i] ?? 0) * window[i];
      im[i] = 0;
    }
    fft(re, im);
    for (let b = 0; b < bins; b++) {
      const v = 10 * Math.log10(re[b] * re[b] + im[b] * im[b] + 1e-12);
      db[c * bins + b] = v;
      if (v > peak) peak = v;
    }
  }
  const image = g.createImageData(columns, bins);
  for (let c = 0; c < columns; c++) {
    for (let b = 0; b < bins; b++) {
      const [r, gg, bl] = colour((db[c * bins + b] - (peak - 80)) / 80);
      const p = ((bins - 1 - b) * columns + c) * 4;
      image.data[p] = r;
      image.data[p + 1] = gg;
      image.data[p + 2] = bl;
      image.data[p + 3] = 255;
    }
  }
  const bitmap = document.createElement("canvas");
  bitmap.width = columns;
  bitmap.height = bins;
  bitmap.getContext("2d").putImageData(image, 0, 0);
  g.imageSmoothingEnabled = true;
  g.drawImage(bitmap, 0, 0, width, height);
}

/** A small line of recent values (nulls leave gaps). */
export function drawSparkline(canvas, values) {
  const g = prepare(canvas);
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const known = values.filter(v => v !== null && Number.isFinite(v));
  if (known.length === 0) return;
  const max = Math.max(...known, 1e-9);
  g.strokeStyle = css("--accent");
  g.lineWidth = Math.max(1.5, width / 160);
  g.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) { drawing = false; return; }
    const x = values.length === 1 ? width / 2 : (i / (values.length - 1)) * width;
    const y = height - 2 - (v / max) * (height - 4);
    if (drawing) g.lineTo(x, y);
    else g.moveTo(x, y);
    drawing = true;
  });
  g.stroke();
  if (known.length === 1) {
    g.fillStyle = g.strokeStyle;
    g.beginPath();
    g.arc(width / 2, height - 2 - (known[0] / max) * (height - 4), g.lineWidth * 1.5, 0, 2 * Math.PI);
    g.fill();
  }
}

/**
 * A line chart: series = [{ label, points: [[x, y]], colour }]. Each series has its own vertical scale
 * (the first labelled on the left, the second on the right): a trainer's training and held-out losses
 * are often on very different scales, and what matters is each one's trend.
 */
export function drawLineChart(canvas, series, xLabel) {
  const g = prepare(canvas);
  const { width, height } = canvas;
  const ratio = window.devicePixelRatio || 1;
  g.clearRect(0, 0, width, height);
  const drawn = series.filter(s => s.points.length > 0);
  g.font = `${11 * ratio}px system-ui, sans-serif`;
  g.fillStyle = css("--muted");
  if (drawn.length === 0) {
    g.fillText("No training progress yet", 12 * ratio, height / 2);
    return;
  }
  const left = 48 * ratio, right = width - 48 * ratio, top = 22 * ratio, bottom = height - 22 * ratio;
  const xs = drawn.flatMap(s => s.points.map(p => p[0]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const X = x => left + ((x - x0) / (x1 - x0)) * (right - left);
  g.strokeStyle = css("--line");
  g.beginPath();
  g.moveTo(left, top);
  g.lineTo(left, bottom);
  g.lineTo(right, bottom);
  g.lineTo(right, top);
  g.stroke();
  g.fillText(`${xLabel} ${x0}–${x1}`, left, height - 5 * ratio);
  let legend = left;
  drawn.slice(0, 2).forEach((s, k) => {
    const ys = s.points.map(p => p[1]);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    const Y = y => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);
    const colour = css(s.colour ?? "--accent");
    g.strokeStyle = colour;
    g.fillStyle = colour;
    g.lineWidth = 2 * ratio;
    g.beginPath();
    s.points.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke();
    for (const [x, y] of s.points) {
      g.beginPath();
      g.arc(X(x), Y(y), 2.5 * ratio, 0, 2 * Math.PI);
      g.fill();
    }
    const axis = k === 0 ? 2 * ratio : right + 4 * ratio;
    g.fillText(y1.toPrecision(4), axis, top + 4 * ratio);
    g.fillText(y0.toPrecision(4), axis, bottom);
    const text = `${s.label} (${k === 0 ? "left" : "right"} scale)`;
    g.fillText(text, legend, 13 * ratio);
    legend += g.measureText(text).width + 18 * ratio;
  });
  g.lineWidth = 1;
}
