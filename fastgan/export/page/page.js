// A fastgan generator drawn in the browser: onnxruntime-web runs generator.onnx on noise z.
// Everything is read from this folder (no network). ?z=FILE draws the latent vectors of a JSON
// file (a list of lists) instead of random ones, and puts the canvas as a PNG data URL in
// <output id="pixels"> once drawn (the browser test reads it).
"use strict";

const canvas = document.getElementById("grid");
const statusLine = document.getElementById("status");
const query = new URLSearchParams(location.search);
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = "./";

function noiseVector(settings) {
  const z = new Array(settings.latent_dim);
  for (let i = 0; i < z.length; i++) {
    if (settings.noise === "uniform") {
      z[i] = 2 * Math.random() - 1;
    } else {  // Box-Muller: N(0, 1)
      z[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    }
  }
  return z;
}

function randomNoise(settings, n) {
  return Array.from({ length: n }, () => noiseVector(settings));
}

// Spherical interpolation: the path between two noise vectors keeps their typical length.
function slerp(a, b, t) {
  const norm = (v) => Math.hypot(...v);
  const cosine = a.reduce((sum, x, i) => sum + x * b[i], 0) / (norm(a) * norm(b));
  const omega = Math.acos(Math.min(1, Math.max(-1, cosine)));
  if (omega < 1e-6) return a.map((x, i) => (1 - t) * x + t * b[i]);
  const [p, q] = [Math.sin((1 - t) * omega), Math.sin(t * omega)];
  return a.map((x, i) => (p * x + q * b[i]) / Math.sin(omega));
}

async function generate(session, settings, z) {
  const input = new ort.Tensor("float32", Float32Array.from(z.flat()), [z.length, settings.latent_dim]);
  const outputs = await session.run({ z: input });
  return outputs.image.data;
}

// Each sample a tile of the grid (ceil(sqrt(n)) columns), each pixel a scale x scale block;
// a value in [-1, 1] becomes round((v + 1) * 127.5).
function draw(images, n, settings) {
  const [height, width, channels] = settings.image_shape;
  const scale = settings.scale;
  const columns = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / columns);
  canvas.width = columns * width * scale;
  canvas.height = rows * height * scale;
  const picture = new ImageData(canvas.width, canvas.height);
  const features = height * width * channels;
  for (let s = 0; s < n; s++) {
    const [top, left] = [Math.floor(s / columns) * height * scale, (s % columns) * width * scale];
    for (let y = 0; y < height * scale; y++) {
      for (let x = 0; x < width * scale; x++) {
        const pixel = ((Math.floor(y / scale) * width) + Math.floor(x / scale)) * channels;
        const at = ((top + y) * canvas.width + left + x) * 4;
        for (let c = 0; c < 3; c++) {
          const value = images[s * features + pixel + (channels === 3 ? c : 0)];
          picture.data[at + c] = Math.min(255, Math.max(0, Math.round((value + 1) * 127.5)));
        }
        picture.data[at + 3] = 255;
      }
    }
  }
  canvas.getContext("2d").putImageData(picture, 0, 0);
}

async function main() {
  const settings = await (await fetch("model.json")).json();
  const session = await ort.InferenceSession.create("generator.onnx", { executionProviders: ["wasm"] });
  const fixed = query.get("z");
  let z = fixed ? await (await fetch(fixed)).json() : randomNoise(settings, settings.samples);
  const show = async (noise) => draw(await generate(session, settings, noise), noise.length, settings);
  await show(z);
  statusLine.textContent = "click the grid for new samples";
  if (fixed) document.getElementById("pixels").textContent = canvas.toDataURL("image/png");
  const reroll = async () => { z = randomNoise(settings, z.length); await show(z); };
  canvas.addEventListener("click", reroll);
  document.getElementById("reroll").addEventListener("click", reroll);
  document.getElementById("walk").addEventListener("click", async () => {
    const [start, end] = [z, randomNoise(settings, z.length)];
    for (let step = 1; step <= 60; step++) {
      await show(start.map((a, i) => slerp(a, end[i], step / 60)));
      await new Promise(requestAnimationFrame);
    }
    z = end;
  });
}

main().catch((error) => { statusLine.textContent = `error: ${error}`; throw error; });
