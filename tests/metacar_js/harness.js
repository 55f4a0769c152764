// Drives the original MetaCar through a fixed action sequence and posts what it saw after every step.
// Config (GET /config.json): {level, motion, rotationStep, actions, seed, botDraws?}. Result (POST /result):
// {start: snapshot, steps: [snapshot + {reward}], error?}.
// botDraws[t][i], when given, is what Math.random returns to bot i during step t (a bot draws at most once a
// step, for its turn at a junction), so that the Python side can hand its bots the same numbers.
"use strict";

// Math.random replaced by a seeded generator (mulberry32), so bots' draws are reproducible run to run.
function seededRandom(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function snapshot(level) {
  const agent = level.agent;
  const bots = level.cars.filter((car) => !car.core.agent);
  return {
    agent: [agent.core.x, agent.core.y, agent.core.rotation, agent.core.v],
    lidar: [].concat(...agent.motion.state),
    bots: bots.map((car) => [car.core.x, car.core.y, car.core.rotation]),
    botLidar: bots.map((car) => [].concat(...car.motion.state)),
  };
}

async function post(result) {
  await fetch("/result", { method: "POST", body: JSON.stringify(result) });
}

async function main() {
  const cfg = await (await fetch("/config.json")).json();
  const seeded = seededRandom(cfg.seed);
  let stepIndex = -1;
  let currentBot = -1;
  Math.random = () => (cfg.botDraws && stepIndex >= 0 && currentBot >= 0 ? cfg.botDraws[stepIndex][currentBot] : seeded());
  const M = window.metacar.default || window.metacar;
  const env = new M.env("env", M.level[cfg.level]);
  if (cfg.motion === "control") {
    env.setAgentMotion(M.motion.ControlMotion, {});
  } else {
    env.setAgentMotion(M.motion.BasicMotion, { rotationStep: cfg.rotationStep });
  }
  await env.load();
  env.render(false); // no ticker frames: the world moves only through env.step
  const level = env.level;
  level.cars.filter((car) => !car.core.agent).forEach((car, i) => {
    const step = car.step.bind(car);
    car.step = (...args) => { currentBot = i; const out = step(...args); currentBot = -1; return out; };
  });
  const result = { start: snapshot(level), steps: [] };
  for (const action of cfg.actions) {
    stepIndex += 1;
    const reward = env.step(action);
    const snap = snapshot(level);
    snap.reward = reward;
    result.steps.push(snap);
  }
  await post(result);
}

main().catch((err) => post({ error: String(err && err.stack ? err.stack : err) }));
