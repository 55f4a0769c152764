// Build small models with TF.js itself, save them as TF.js does, and record TF.js' predictions:
//   node save_models.js OUT_DIR
// writes OUT_DIR/<name>/{model.json, weights.bin, expected.json} for each model below, where
// expected.json = {"inputs": [{"shape", "data_b64"}], "outputs": [...]} (float32 LE, base64).
// The Python import tests load each directory with rl.tfjs.load_tfjs and compare predictions.
'use strict';

const fs = require('fs');
const path = require('path');
const {tf, encodeArray, saveHandler} = require('./load_model');

// BatchNormalization starts at mean 0 / variance 1, which would hide a mix-up of the four BN tensors.
function randomizeBatchNorm(model) {
  for (const layer of model.layers) {
    if (layer.getClassName() === 'BatchNormalization') {
      const ws = layer.getWeights();
      layer.setWeights(ws.map((w) => tf.randomUniform(w.shape, 0.5, 1.5)));
    }
  }
}

function mlp() {
  const m = tf.sequential();
  m.add(tf.layers.dense({units: 16, activation: 'relu', inputShape: [6]}));
  m.add(tf.layers.dense({units: 12, activation: 'tanh'}));
  m.add(tf.layers.dense({units: 8, activation: 'elu'}));
  m.add(tf.layers.dense({units: 4, activation: 'softmax'}));
  return {model: m, inputShape: [5, 6]};
}

function cnn() {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', inputShape: [10, 10, 2]}));
  m.add(tf.layers.batchNormalization());
  // Stride 2 'same' on an even size: TF pads only bottom/right; rl's 'same' must do the same.
  m.add(tf.layers.conv2d({filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6'}));
  m.add(tf.layers.maxPooling2d({poolSize: 2}));
  m.add(tf.layers.averagePooling2d({poolSize: 2, strides: 1, padding: 'same'}));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dropout({rate: 0.25}));
  m.add(tf.layers.dense({units: 3, activation: 'sigmoid'}));
  return {model: m, inputShape: [3, 10, 10, 2]};
}

function functional() {
  const inp = tf.input({shape: [12, 12, 3]});
  let x = tf.layers.zeroPadding2d({padding: [[1, 1], [1, 1]]}).apply(inp);
  x = tf.layers.conv2d({filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false}).apply(x);
  x = tf.layers.batchNormalization({epsilon: 1e-5, momentum: 0.9}).apply(x);
  x = tf.layers.reLU({maxValue: 6}).apply(x);
  const dw = tf.layers.depthwiseConv2d({kernelSize: 3, padding: 'same', depthMultiplier: 2}).apply(x);
  const a = tf.layers.activation({activation: 'softplus'}).apply(dw);
  const b = tf.layers.conv2d({filters: 16, kernelSize: 1}).apply(x);
  const sum = tf.layers.add().apply([a, b]);
  const cat = tf.layers.concatenate().apply([sum, x]);
  const pooled = tf.layers.globalAveragePooling2d({}).apply(cat);
  const out = tf.layers.dense({units: 5}).apply(pooled);
  return {model: tf.model({inputs: inp, outputs: out}), inputShape: [2, 12, 12, 3]};
}

function snakeDqn() {
  // The book's snake-dqn network (dqn.js) at a CPU-friendly width.
  const m = tf.sequential();
  m.add(tf.layers.conv2d({filters: 16, kernelSize: 3, strides: 1, activation: 'relu', inputShape: [9, 9, 2]}));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.conv2d({filters: 32, kernelSize: 3, strides: 1, activation: 'relu'}));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({units: 32, activation: 'relu'}));
  m.add(tf.layers.dropout({rate: 0.25}));
  m.add(tf.layers.dense({units: 3}));
  return {model: m, inputShape: [4, 9, 9, 2]};
}

function nestedReshape() {
  // A Sequential nested in a functional model: TF.js refers to its first call as node 1 (node 0 is the
  // nested model's own construction), and saves Reshape([-1, 4]) as target_shape [null, 4].
  const inner = tf.sequential({name: 'inner'});
  inner.add(tf.layers.dense({units: 8, activation: 'tanh', inputShape: [6]}));
  inner.add(tf.layers.reshape({targetShape: [-1, 4]}));
  const inp = tf.input({shape: [6]});
  const out = tf.layers.dense({units: 3}).apply(inner.apply(inp));
  return {model: tf.model({inputs: inp, outputs: out}), inputShape: [5, 6]};
}

async function main() {
  await tf.setBackend('cpu');
  const outDir = process.argv[2];
  const builders = {mlp, cnn, functional, snake_dqn: snakeDqn, nested_reshape: nestedReshape};
  for (const [name, build] of Object.entries(builders)) {
    const {model, inputShape} = build();
    randomizeBatchNorm(model);
    const dir = path.join(outDir, name);
    await model.save(saveHandler(dir));
    const x = tf.randomNormal(inputShape);
    const y = model.predict(x);
    const expected = {inputs: [encodeArray(x)], outputs: [encodeArray(y)]};
    fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected));
  }
  process.stdout.write(JSON.stringify(Object.keys(builders)));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
