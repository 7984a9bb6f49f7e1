// Shared by the deploy checks: where things are, the tools they need (each missing tool is a clear
// failure, never a silent pass), rendering the kustomize targets, and a tiny check reporter.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
// SAG_K8S_DIR: another copy of deploy/k8s (the policy self-test checks mutated copies).
export const k8sDir = process.env.SAG_K8S_DIR || path.join(repo, "deploy/k8s");

// The command that installs the Node tools, for error messages.
export const npmCiHint = "(cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)";

// Dynamic import of an npm tool, with a clear message when `npm ci` has not run.
export async function need(moduleName) {
  try {
    return await import(moduleName);
  } catch (e) {
    if (e && (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "MODULE_NOT_FOUND")) {
      fail(`the npm package '${moduleName}' is missing: run ${npmCiHint}`);
    }
    throw e;
  }
}

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// Collects problems; `done` prints them all and sets the exit code.
export class Report {
  constructor(name) {
    this.name = name;
    this.problems = [];
    this.checks = 0;
  }
  check(ok, message) {
    this.checks++;
    if (!ok) this.problems.push(message);
    return ok;
  }
  done() {
    if (this.problems.length) {
      for (const p of this.problems) console.error(`FAIL: ${p}`);
      console.error(`${this.name}: ${this.problems.length} of ${this.checks} checks failed`);
      process.exit(1);
    }
    console.log(`${this.name}: all ${this.checks} checks passed`);
  }
}

// --- kubectl kustomize -------------------------------------------------------------------------

const minKustomize = [4, 0, 0];

function versionTuple(v) {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(v || "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}
function atLeast(v, min) {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] > min[i];
  return true;
}

// A missing or too old kubectl skips the rendering checks (ctest exit code 77, the reason printed)
// instead of failing them: no Debian 12 package has a kubectl new enough, so a plain Debian 12
// machine cannot run them; machines with kubectl >= 1.21 (ours, CI's) always do. Set
// SAG_REQUIRE_KUBECTL=1 to turn the skip into a failure.
function skipForTool(message) {
  if (process.env.SAG_REQUIRE_KUBECTL === "1") fail(message);
  console.error(`SKIP: ${message}`);
  process.exit(77);
}

let kubectlChecked = null;
// The kubectl to render with ($KUBECTL, else kubectl on PATH), checked once: it must exist and
// embed kustomize 4 or newer (components, directories under `resources`). Debian 12's
// kubernetes-client is kubectl 1.20.2 with kustomize v2.0.3, which has neither.
export function kubectl() {
  if (kubectlChecked) return kubectlChecked;
  const bin = process.env.KUBECTL || "kubectl";
  const r = spawnSync(bin, ["version", "--client", "-o", "json"], { encoding: "utf8" });
  if (r.error && r.error.code === "ENOENT") {
    skipForTool(
      `'${bin}' not found: install kubectl >= 1.21 (kustomize >= v4), or set KUBECTL. Debian 12's ` +
        `kubernetes-client package is kubectl 1.20, too old for kustomize components.`,
    );
  }
  let info = {};
  try {
    info = JSON.parse(r.stdout);
  } catch {
    fail(`'${bin} version --client -o json' did not answer JSON: ${r.stderr || r.stdout}`);
  }
  const client = (info.clientVersion && info.clientVersion.gitVersion) || "unknown";
  const kv = versionTuple(info.kustomizeVersion);
  if (!kv || !atLeast(kv, minKustomize)) {
    skipForTool(
      `kubectl ${client} embeds kustomize ${info.kustomizeVersion || "v2.0.3 or older"}; these ` +
        `manifests use components and directory resources, which need kustomize >= v4 ` +
        `(kubectl >= 1.21). Debian 12's kubernetes-client is 1.20; use a newer kubectl ` +
        `(set KUBECTL=/path/to/kubectl).`,
    );
  }
  kubectlChecked = { bin, client, kustomize: info.kustomizeVersion };
  return kubectlChecked;
}

// What the checks render: the base, the base with each component, every overlay.
export function targets() {
  const list = [{ name: "base", dir: path.join(k8sDir, "base") }];
  for (const group of ["components", "overlays"]) {
    const dir = path.join(k8sDir, group);
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir).sort()) {
      const d = path.join(dir, entry);
      if (!fs.existsSync(path.join(d, "kustomization.yaml"))) continue;
      list.push(group === "components"
        ? { name: `base+components/${entry}`, component: d }
        : { name: `overlays/${entry}`, dir: d });
    }
  }
  // SAG_K8S_ONLY=name,name: only these targets (the policy self-test renders what it mutated).
  const only = (process.env.SAG_K8S_ONLY || "").split(",").filter(Boolean);
  return only.length ? list.filter((t) => only.includes(t.name)) : list;
}

// Renders a target with `kubectl kustomize`; returns the YAML text. A component is rendered on the
// base through a throw-away kustomization in a temporary directory.
export function render(target) {
  const { bin } = kubectl();
  let dir = target.dir;
  let tmp = null;
  if (target.component) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sag-kustomize-"));
    const rel = (p) => path.relative(tmp, p);
    fs.writeFileSync(
      path.join(tmp, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        `  - ${rel(path.join(k8sDir, "base"))}`,
        "components:",
        `  - ${rel(target.component)}`,
        "",
      ].join("\n"),
    );
    dir = tmp;
  }
  try {
    return execFileSync(bin, ["kustomize", dir], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    fail(`kubectl kustomize ${target.name} failed:\n${e.stderr || e.message}`);
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Parses rendered YAML into objects. kubectl reads YAML 1.1 (sigs.k8s.io/yaml), so do the same.
export async function parseAll(text, where) {
  const YAML = await need("yaml");
  const docs = YAML.parseAllDocuments(text, { version: "1.1" });
  const objects = [];
  for (const d of docs) {
    if (d.errors.length) fail(`${where}: YAML error: ${d.errors[0].message}`);
    const o = d.toJS();
    if (o !== null && o !== undefined) objects.push(o);
  }
  return objects;
}

export async function parseYaml(text, where) {
  const YAML = await need("yaml");
  try {
    return YAML.parse(text, { version: "1.1" });
  } catch (e) {
    fail(`${where}: YAML error: ${e.message}`);
  }
}

// Renders and parses every target: [{ name, objects }].
export async function renderAll() {
  const out = [];
  for (const t of targets()) out.push({ ...t, objects: await parseAll(render(t), t.name) });
  return out;
}

export function id(o) {
  return `${o.kind}/${(o.metadata && o.metadata.name) || "?"}`;
}

// Containers (and init containers) of any workload kind, with the pod spec they run in.
export function podSpecOf(o) {
  switch (o.kind) {
    case "Pod":
      return o.spec;
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return o.spec && o.spec.template && o.spec.template.spec;
    case "CronJob":
      return o.spec && o.spec.jobTemplate && o.spec.jobTemplate.spec.template.spec;
    default:
      return null;
  }
}
export function podLabelsOf(o) {
  if (o.kind === "Pod") return (o.metadata && o.metadata.labels) || {};
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template.metadata.labels || {};
  return (o.spec && o.spec.template && o.spec.template.metadata && o.spec.template.metadata.labels) || {};
}

// matchLabels-only selectors (the only kind these manifests use; matchExpressions count as no
// match, which makes a check fail loudly rather than pass wrongly).
export function selects(selector, labels) {
  if (!selector) return false;
  if (selector.matchExpressions && selector.matchExpressions.length) return false;
  const ml = selector.matchLabels || {};
  return Object.entries(ml).every(([k, v]) => labels[k] === v);
}

// absl durations as the gateway's flags take them: "20s", "1m30s", "1.5s", "250ms".
export function parseDurationSeconds(text) {
  const s = String(text).trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g;
  const scale = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    if (m.index !== consumed) return NaN;
    total += Number(m[1]) * scale[m[2]];
    consumed = re.lastIndex;
  }
  return consumed === s.length && consumed > 0 ? total : NaN;
}

// Kubernetes quantities ("250m", "2", "128Mi", "1G") as numbers.
export function parseQuantity(q) {
  const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(q));
  if (!m) return NaN;
  const scale = {
    undefined: 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  };
  return Number(m[1]) * scale[m[2]];
}
