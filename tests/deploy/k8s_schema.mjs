// Every object that any kustomize target renders is valid against the Kubernetes API schema:
//  1. the JSON-schema validators of the npm `kubernetes-models` (and `@kubernetes-models/
//     prometheus-operator` for the ServiceMonitor): types, required fields, enums, formats;
//  2. their TypeScript declarations, with the TypeScript compiler: an object literal may only name
//     known fields, at every depth, so a misspelt or misplaced field (`readinesProbe`, `replicas`
//     under the pod spec) fails here instead of being dropped by the API server.
// An apiVersion/kind with no schema is a failure, not a skip.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Report, fail, here, id, need, npmCiHint, renderAll } from "./lib.mjs";

const r = new Report("k8s_schema");

// "apps/v1" + "Deployment" -> the module holding its model and its TypeScript interface.
function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  }
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

await need("kubernetes-models");
await need("@kubernetes-models/prometheus-operator");
const tsc = path.join(here, "node_modules/typescript/bin/tsc");
if (!fs.existsSync(tsc)) fail(`the npm package 'typescript' is missing: run ${npmCiHint}`);

// Validates [{ target, o }]; returns the problems found.
async function validate(items) {
  const problems = [];
  let checks = 0;
  const typed = []; // objects that have a model, for the TypeScript pass
  // 1. JSON schema.
  for (const { target, o } of items) {
    const where = `${target}: ${id(o)} (${o.apiVersion})`;
    checks++;
    if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") {
      problems.push(`${where}: no apiVersion/kind`);
      continue;
    }
    const mod = modelModule(o.apiVersion, o.kind);
    let Model;
    try {
      Model = (await import(mod))[o.kind];
    } catch {
      Model = undefined;
    }
    if (typeof Model !== "function") {
      problems.push(`${where}: no schema known for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
    typed.push({ target, o, mod });
  }

  // 2. Known fields only, through the TypeScript compiler.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sag-k8s-types-"));
  try {
    fs.symlinkSync(path.join(here, "node_modules"), path.join(tmp, "node_modules"), "dir");
    const lines = [];
    const ranges = []; // [firstLine, lastLine, description]
    const imports = new Map();
    for (const { mod } of typed) if (!imports.has(mod)) imports.set(mod, `T${imports.size}`);
    for (const [mod, alias] of imports) {
      lines.push(`import type { I${mod.split("/").pop()} as ${alias} } from "${mod}";`);
    }
    typed.forEach(({ target, o, mod }, i) => {
      const body = JSON.stringify(o, null, 2).split("\n");
      const first = lines.length + 1;
      lines.push(`// ${target}: ${id(o)}`);
      lines.push(`export const o${i}: ${imports.get(mod)} = ${body[0]}`, ...body.slice(1));
      lines[lines.length - 1] += ";";
      ranges.push([first, lines.length, `${target}: ${id(o)}`]);
    });
    const file = path.join(tmp, "rendered.mts");
    fs.writeFileSync(file, lines.join("\n") + "\n");
    const res = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck",
      "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", file],
    { encoding: "utf8", cwd: tmp });
    if (res.error) fail(`cannot run tsc: ${res.error.message}`);
    const out = `${res.stdout}${res.stderr}`;
    const errors = out.split("\n").filter((l) => /error TS\d+/.test(l));
    checks++;
    if (res.status !== 0 && errors.length === 0) problems.push(`tsc failed without an error line:\n${out}`);
    for (const e of errors) {
      const m = /\((\d+),\d+\): error (TS\d+: .*)$/.exec(e);
      const line = m ? Number(m[1]) : 0;
      const range = ranges.find(([a, b]) => line >= a && line <= b);
      const field = line ? lines[line - 1].trim() : "";
      problems.push(`${range ? range[2] : "rendered objects"}: ${m ? m[2] : e} (at ${field})`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { problems, checks, typed: typed.length };
}

// First, the checker itself: a Deployment with a wrong type and one with a misspelt field must
// fail, or the check below would prove nothing. (Two objects: TypeScript reports a literal's type
// error before its unknown fields.)
const deployment = (container) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "self-test" },
  spec: {
    selector: { matchLabels: { a: "b" } },
    template: { metadata: { labels: { a: "b" } }, spec: { containers: [container] } },
  },
});
const selfTest = await validate([
  { target: "self-test-type", o: deployment({ name: "c", image: "i:1", ports: [{ containerPort: "x" }] }) },
  { target: "self-test-field", o: deployment({ name: "c", image: "i:1", readinesProbe: {} }) },
]);
r.check(selfTest.problems.some((p) => /containerPort must be integer/.test(p)),
  `the JSON-schema pass accepted a string containerPort: ${selfTest.problems.join("; ")}`);
r.check(selfTest.problems.some((p) => /self-test-field.*readinesProbe/.test(p)),
  `the known-fields pass accepted 'readinesProbe': ${selfTest.problems.join("; ")}`);

const rendered = await renderAll();
const items = rendered.flatMap((t) => t.objects.map((o) => ({ target: t.name, o })));
const result = await validate(items);
for (let i = 0; i < result.checks; i++) r.check(true, "");
for (const p of result.problems) r.check(false, p);
r.check(result.typed > 0, "nothing was type-checked");
console.log(`validated ${items.length} rendered objects (JSON schema, then known fields with TypeScript)`);
r.done();
