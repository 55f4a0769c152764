// Build models described by JSON specs with TF.js itself, save them as TF.js does, and predict:
//   node build_models.js JOBS.json > RESULTS.json
//
// JOBS.json: [{"dir", "seed", "model": SPEC, "inputs": [{"shape", "data_b64"}]}, ...] where SPEC is
//   {"kind": "sequential", "layers": [LAYER, ...]} (the first layer carries inputShape), or
//   {"kind": "functional", "inputShape": [...], "nodes": [{"layer": LAYER, "inputs": [i, ...]}, ...],
//    "outputs": [i, ...]} (tensor 0 is the input, tensor i + 1 the output of node i), and LAYER is
//   {"className": "conv2d", "args": {...}} (a tf.layers factory and its arguments) or
//   {"className": "sequential", "layers": [LAYER, ...], "inputShape": [...]} (a nested model).
// Every weight is drawn anew from the job's seed (batch-norm statistics in [0.5, 1.5]), the model is
// saved to "dir" (model.json + weights.bin), and one result per job is printed:
// {"outputs": [{"shape", "data_b64"}]} or {"error": "..."}.
'use strict';

const fs = require('fs');
const {tf, decodeArray, encodeArray, saveHandler} = require('./load_model');

function makeLayer(spec) {
  if (spec.className === 'sequential') {
    const inner = tf.sequential({name: spec.name});
    spec.layers.forEach((l, i) => {
      const args = i === 0 ? {...l.args, inputShape: spec.inputShape} : l.args;
      inner.add(tf.layers[l.className](args));
    });
    return inner;
  }
  return tf.layers[spec.className](spec.args);
}

function build(spec) {
  if (spec.kind === 'sequential') {
    const m = tf.sequential();
    for (const l of spec.layers) {
      m.add(makeLayer(l));
    }
    return m;
  }
  const tensors = [tf.input({shape: spec.inputShape})];
  for (const node of spec.nodes) {
    const ins = node.inputs.map((i) => tensors[i]);
    tensors.push(makeLayer(node.layer).apply(ins.length === 1 ? ins[0] : ins));
  }
  const outputs = spec.outputs.map((i) => tensors[i]);
  return tf.model({inputs: tensors[0], outputs: outputs.length === 1 ? outputs[0] : outputs});
}

function randomizeWeights(model, seed) {
  let k = 0;
  const visit = (layer) => {
    if (layer.layers) {
      layer.layers.forEach(visit);
      return;
    }
    const bn = layer.getClassName() === 'BatchNormalization';
    const ws = layer.getWeights();
    if (ws.length) {
      layer.setWeights(ws.map((w) => (bn ? tf.randomUniform(w.shape, 0.5, 1.5, 'float32', seed * 1000 + k++)
        : tf.randomNormal(w.shape, 0, 0.5, 'float32', seed * 1000 + k++))));
    }
  };
  model.layers.forEach(visit);
}

async function main() {
  await tf.setBackend('cpu');
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const results = [];
  for (const job of jobs) {
    try {
      const model = build(job.model);
      randomizeWeights(model, job.seed);
      await model.save(saveHandler(job.dir));
      const inputs = job.inputs.map(decodeArray);
      let out = model.predict(inputs.length === 1 ? inputs[0] : inputs);
      out = Array.isArray(out) ? out : [out];
      results.push({outputs: out.map(encodeArray)});
      tf.dispose([...inputs, ...out]);
      model.dispose();
    } catch (err) {
      results.push({error: String(err && err.stack ? err.stack : err)});
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
