// Predict with TF.js on models exported by playgrad: node predict.js JOBS.json > RESULTS.json
//
// JOBS.json: [{"model_dir": "...", "inputs": [{"shape": [...], "data_b64": "..."}]}, ...]
// (one entry of "inputs" per model input). Prints a JSON list, one entry per job:
// {"outputs": [{"shape", "data_b64"}], "class_name", "layers"} or {"error": "..."}.
// One process runs every job, so the tfjs start-up cost is paid once.
'use strict';

const fs = require('fs');
const {tf, loadModel, decodeArray, encodeArray} = require('./load_model');

async function main() {
  await tf.setBackend('cpu');
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const results = [];
  for (const job of jobs) {
    try {
      const model = await loadModel(job.model_dir);
      const inputs = job.inputs.map(decodeArray);
      let out = model.predict(inputs.length === 1 ? inputs[0] : inputs);
      out = Array.isArray(out) ? out : [out];
      results.push({
        outputs: out.map(encodeArray),
        class_name: model.getClassName(),
        layers: model.layers.map((l) => [l.getClassName(), l.name]),
        metadata: model.getUserDefinedMetadata() || null,
      });
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
