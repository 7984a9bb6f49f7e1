// Renders the dev overlay (`kubectl kustomize deploy/k8s/overlays/dev`) into a copy that Debian
// 12's `podman kube play` (4.3) can run, and prints every change it makes: the copy is what the
// container_kube_play test proves, the manifests minus these changes.
//
//   node tests/deploy/kube_play_render.mjs OUT_YAML IMAGE SIM_HOST [OWNER]
//
// Changes, each for something podman 4.3 cannot express:
// - every container image -> IMAGE (the image the container_image fixture built; no registry);
// - segment-sim's env from `secretKeyRef` -> the literal value of that Secret's key (podman#16269:
//   a Secret from the same YAML cannot be referenced by env);
// - `$(VAR)` in command and args -> the value of the container's env VAR (Kubernetes expands
//   them; podman 4.3 passes them verbatim);
// - each Secret volume -> a ConfigMap volume of the Secret's decoded content, and the Secret
//   dropped (podman 4.3 writes a Secret volume's files as the `data` text, still base64-encoded,
//   and ignores `stringData`);
// - the gateway's config: upstream_url's host `segment-sim` -> SIM_HOST (podman creates no
//   Services; pods resolve by pod name through the dnsname plugin);
// - every containerPort gets hostIP 127.0.0.1 and a free hostPort (podman 4.3 publishes each
//   containerPort on the host's every address otherwise); OUT_YAML.ports lists them, one
//   `DEPLOYMENT CONTAINER PORT_NAME HOST_PORT` a line;
// - with OWNER (the test's pid), each pod template gets the label `sag-ctest-owner: OWNER`, so
//   that a later run can tell a pod a killed run left behind (container_lib.sh, ctr_sweep_stale).
// Exits 77 (the reason printed) when kubectl is missing or its kustomize is older than v4, like
// the other rendering checks (SAG_REQUIRE_KUBECTL=1 makes that a failure); 1 when the rendered
// overlay is not what these changes expect.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fail, k8sDir, kubectl, need } from "./lib.mjs";

const [out, image, simHost, owner] = process.argv.slice(2);
if (!out || !image || !simHost) {
  console.error("usage: node kube_play_render.mjs OUT_YAML IMAGE SIM_HOST [OWNER]");
  process.exit(2);
}
const { parseAllDocuments, stringify } = await need("yaml");
const k = kubectl();
const text = execFileSync(k.bin, ["kustomize", path.join(k8sDir, "overlays/dev")], {
  encoding: "utf8",
  maxBuffer: 16 << 20,
});
const objects = parseAllDocuments(text).map((d) => d.toJS());
const changes = [];
const note = (what) => changes.push(what);

const secrets = new Map(objects.filter((o) => o.kind === "Secret").map((o) => [o.metadata.name, o]));
function secretValue(ref) {
  const s = secrets.get(ref.name);
  if (!s) fail(`secretKeyRef to ${ref.name}, which the overlay does not render`);
  if (s.stringData && ref.key in s.stringData) return s.stringData[ref.key];
  if (s.data && ref.key in s.data) return Buffer.from(s.data[ref.key], "base64").toString("utf8");
  return fail(`Secret ${ref.name} has no key ${ref.key}`);
}

for (const o of objects.filter((x) => x.kind === "Deployment")) {
  for (const c of o.spec.template.spec.containers || []) {
    note(`${o.metadata.name}/${c.name}: image ${c.image} -> ${image}`);
    c.image = image;
    for (const e of c.env || []) {
      const ref = e.valueFrom && e.valueFrom.secretKeyRef;
      if (!ref) continue;
      e.value = secretValue(ref);
      delete e.valueFrom;
      note(`${o.metadata.name}/${c.name}: env ${e.name} from secretKeyRef ${ref.name}/${ref.key} ` +
        `-> its literal value (podman#16269)`);
    }
    const env = new Map((c.env || []).filter((e) => "value" in e).map((e) => [e.name, e.value]));
    for (const field of ["command", "args"]) {
      if (!c[field]) continue;
      c[field] = c[field].map((arg) => arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref, name) => {
        if (!env.has(name)) return ref;
        note(`${o.metadata.name}/${c.name}: ${field} ${ref} -> its value (podman does not expand it)`);
        return env.get(name);
      }));
    }
  }
}

const asConfigMaps = new Map();
for (const o of objects.filter((x) => x.kind === "Deployment")) {
  for (const v of o.spec.template.spec.volumes || []) {
    if (!v.secret) continue;
    const secret = secrets.get(v.secret.secretName);
    if (!secret) fail(`volume ${v.name} mounts Secret ${v.secret.secretName}, not rendered`);
    const name = `${secret.metadata.name}-file`;
    const data = { ...(secret.stringData || {}) };
    for (const [k, val] of Object.entries(secret.data || {})) {
      data[k] = Buffer.from(val, "base64").toString("utf8");
    }
    asConfigMaps.set(name, { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data });
    v.configMap = { name, optional: false };
    delete v.secret;
    note(`${o.metadata.name}: volume ${v.name} from Secret ${secret.metadata.name} -> ConfigMap ` +
      `${name} of its decoded content (podman writes Secret files base64-encoded)`);
  }
}
for (const [name, secret] of secrets) {
  objects.splice(objects.indexOf(secret), 1);
  note(`Secret ${name}: dropped (nothing in the copy references it now)`);
}
objects.push(...asConfigMaps.values());

const config = objects.find((o) => o.kind === "ConfigMap" &&
  o.metadata.name.startsWith("audiences-gateway-config"));
if (!config || !config.data || !config.data["config.yaml"]) fail("no gateway ConfigMap with config.yaml");
const upstream = /^upstream_url: http:\/\/segment-sim:/m;
if (!upstream.test(config.data["config.yaml"])) {
  fail(`the dev config's upstream_url is not http://segment-sim:PORT:\n${config.data["config.yaml"]}`);
}
config.data["config.yaml"] = config.data["config.yaml"].replace(upstream,
  `upstream_url: http://${simHost}:`);
note(`ConfigMap ${config.metadata.name}: upstream_url host segment-sim -> ${simHost} (no Services)`);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
const published = [];
for (const o of objects.filter((x) => x.kind === "Deployment")) {
  for (const c of o.spec.template.spec.containers || []) {
    for (const p of c.ports || []) {
      p.hostIP = "127.0.0.1";
      p.hostPort = await freePort();
      published.push(`${o.metadata.name} ${c.name} ${p.name || p.containerPort} ${p.hostPort}`);
      note(`${o.metadata.name}/${c.name}: port ${p.containerPort} published on 127.0.0.1:${p.hostPort}`);
    }
  }
}
if (owner) {
  for (const o of objects.filter((x) => x.kind === "Deployment")) {
    const meta = (o.spec.template.metadata ||= {});
    meta.labels = { ...(meta.labels || {}), "sag-ctest-owner": String(owner) };
    note(`${o.metadata.name}: pod label sag-ctest-owner=${owner} (finds the pod if this run is killed)`);
  }
}
fs.writeFileSync(`${out}.ports`, published.map((l) => `${l}\n`).join(""));

fs.writeFileSync(out, objects.map((o) => stringify(o)).join("---\n"));
for (const c of changes) console.log(`patched: ${c}`);
console.log(`kube_play_render: ${objects.length} objects (kubectl ${k.client}, kustomize ` +
  `${k.kustomize}) written to ${out}`);
