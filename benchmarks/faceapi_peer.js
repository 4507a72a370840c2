// The peer face-api.js (npm @vladmandic/face-api, its bundled models), run by domains.py in Node
// with TensorFlow.js on its WebAssembly backend. Reads the images that domains.py decoded:
//
//   node faceapi_peer.js MODULES_DIR MANIFEST.json PIXELS.bin
//
// MANIFEST lists {offset, height, width, mode}: RGB uint8 rows in PIXELS; mode "detect" runs
// face-api's own pipeline on a whole photo (SSD MobileNetV1, 68 landmarks, expressions; largest
// face), "classify" gives the whole image to the expression network (a face crop). Prints one
// JSON object: {"predictions": [FER2013 class index, or -1 for no face], "seconds": N}.

const fs = require("fs");
const path = require("path");

const [dir, manifestFile, pixelsFile] = process.argv.slice(2);
const modules = path.resolve(dir);
const need = (name) => require(path.join(modules, "node_modules", name));
const tf = need("@tensorflow/tfjs");
const wasm = need("@tensorflow/tfjs-backend-wasm");
const faceapi = need("@vladmandic/face-api/dist/face-api.node-wasm.js");

// face-api's names -> FER2013's order (angry, disgust, fear, happy, sad, surprise, neutral)
const ORDER = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"];

function best(expressions) {
  let top = 0;
  ORDER.forEach((name, i) => {
    if (expressions[name] > expressions[ORDER[top]]) top = i;
  });
  return top;
}

async function main() {
  wasm.setWasmPaths(path.join(modules, "node_modules/@tensorflow/tfjs-backend-wasm/dist/") + "/");
  await tf.setBackend("wasm");
  await tf.ready();
  const models = path.join(modules, "node_modules/@vladmandic/face-api/model");
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(models);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(models);
  await faceapi.nets.faceExpressionNet.loadFromDisk(models);
  const items = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
  const pixels = fs.readFileSync(pixelsFile);
  const options = new faceapi.SsdMobilenetv1Options();
  const predictions = [];
  const t0 = performance.now();
  for (const it of items) {
    const data = new Uint8Array(pixels.buffer, pixels.byteOffset + it.offset, it.height * it.width * 3);
    const image = tf.tensor3d(data, [it.height, it.width, 3], "int32");
    if (it.mode === "classify") {
      const e = await faceapi.nets.faceExpressionNet.predictExpressions(image);
      predictions.push(best(Array.isArray(e) ? e[0] : e));
    } else {
      const faces = await faceapi.detectAllFaces(image, options).withFaceLandmarks().withFaceExpressions();
      let top = null;
      for (const f of faces) {
        const b = f.detection.box;
        if (top === null || b.width * b.height > top.detection.box.width * top.detection.box.height) top = f;
      }
      predictions.push(top === null ? -1 : best(top.expressions));
    }
    tf.dispose(image);
  }
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ predictions, seconds, version: faceapi.version }) + "\n");
}

main();
