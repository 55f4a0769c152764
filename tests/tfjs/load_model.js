// Load a TF.js layers model from a directory in Node with the pure-JS @tensorflow/tfjs package.
//
// Without @tensorflow/tfjs-node there is no file:// IO handler in Node, so this does by hand what
// the browser's HTTP loader does (tfjs-core io/http.ts): read model.json, read every group's shard
// files in manifest order and concatenate their bytes, flatten all groups' weight specs into one
// list, and hand the lot to tf.io.fromMemory. Weights are then decoded one after another, so a
// shard boundary may fall inside a tensor.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function readArtifacts(modelDir) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
  const buffers = [];
  const weightSpecs = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      buffers.push(fs.readFileSync(path.join(modelDir, p)));
    }
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  // A fresh ArrayBuffer holding exactly these bytes (a Buffer may be a view into a larger pool).
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return {
    modelTopology: modelJson.modelTopology,
    weightSpecs,
    weightData,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    userDefinedMetadata: modelJson.userDefinedMetadata,
  };
}

async function loadModel(modelDir) {
  return tf.loadLayersModel(tf.io.fromMemory(readArtifacts(modelDir)));
}

// Arrays cross the process boundary as base64 float32 little-endian bytes, so no digits are lost.
function decodeArray(spec) {
  const bytes = Buffer.from(spec.data_b64, 'base64');
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return tf.tensor(values, spec.shape, 'float32');
}

function encodeArray(tensor) {
  const values = tensor.dataSync();
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  return {shape: tensor.shape, data_b64: Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64')};
}

// Save a model as TF.js itself does: model.json is what tfjs' own file/http save handlers write (tfjs-core
// io_utils getModelJSONForModelArtifacts), the artifacts' fields plus a one-group weightsManifest.
function saveHandler(dir) {
  return tf.io.withSaveHandler(async (artifacts) => {
    fs.mkdirSync(dir, {recursive: true});
    const parts = Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData];
    const bytes = Buffer.concat(parts.map((b) => Buffer.from(b)));
    fs.writeFileSync(path.join(dir, 'weights.bin'), bytes);
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{paths: ['weights.bin'], weights: artifacts.weightSpecs}],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  });
}

module.exports = {tf, readArtifacts, loadModel, decodeArray, encodeArray, saveHandler};
