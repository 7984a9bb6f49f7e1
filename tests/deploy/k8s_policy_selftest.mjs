// The policy check has teeth: each mutation of a copy of deploy/k8s below breaks one rule, and
// k8s_policy.mjs must fail on it with the expected message (the unmutated copy must pass).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Report, here, kubectl, repo } from "./lib.mjs";

kubectl(); // fails clearly when kubectl is missing or too old
const r = new Report("k8s_policy_selftest");
const src = path.join(repo, "deploy/k8s");

// Each mutation: the edits ([file, text to find, replacement]) and the message k8s_policy must print.
const m = (edits, expect) => ({ edits, expect });
const mutations = [
  m([["base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"]], /readOnlyRootFilesystem is not true/),
  m([["base/deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"]], /allowPrivilegeEscalation is not false/),
  m([["base/deployment.yaml", "- ALL", "- NET_RAW"]], /capabilities do not drop ALL/),
  m([["base/deployment.yaml", "            runAsNonRoot: true\n            runAsUser: 10001",
    "            runAsNonRoot: false\n            runAsUser: 10001"]], /container gateway: runAsNonRoot is not true/),
  m([["overlays/redis/redis.yaml", "            seccompProfile:\n              type: RuntimeDefault",
    "            seccompProfile:\n              type: Unconfined"]], /redis: seccompProfile is not RuntimeDefault/),
  m([["base/deployment.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 20"]],
    /terminationGracePeriodSeconds 20 is not above/),
  m([["overlays/redis/config.yaml", "shutdown_grace: 20s", "shutdown_grace: 1m"]],
    /overlays\/redis.*terminationGracePeriodSeconds 35 is not above preStop 5s \+ shutdown_grace 60s/),
  m([["base/deployment.yaml", "            limits:\n              cpu: \"2\"\n", "            limits:\n"]], /container gateway: no cpu limits/),
  m([["overlays/dev/segment-sim.yaml", "              memory: 64Mi", "              memory: 1Gi"]], /memory request 1Gi above limit 256Mi/),
  m([["base/deployment.yaml", "              mountPath: /var/run/secrets/segment\n",
    "              mountPath: /var/run/secrets/segment\n              subPath: token\n"]], /mounted with subPath/),
  m([["base/deployment.yaml",
    "          readinessProbe:\n            grpc:\n              port: 50051\n              service: segment.audiences.v1.AudiencesService",
    "          readinessProbe:\n            tcpSocket:\n              port: 50051"]], /readinessProbe is not a native gRPC probe/),
  m([["overlays/redis/redis.yaml",
    "          livenessProbe:\n            tcpSocket:\n              port: redis\n            periodSeconds: 10\n            failureThreshold: 6\n",
    ""]], /redis: no livenessProbe/),
  m([["base/networkpolicy.yaml", "          port: 443", "          port: 8443"]], /egress to TCP\/8443 anywhere/),
  m([["base/networkpolicy.yaml", "audiences-gateway/caller: \"true\"", "team: anyone"]], /admits port 50051 from peers not labelled/),
  m([["base/networkpolicy.yaml", "    - Egress\n", ""]], /not covered by NetworkPolicies for both Ingress and Egress/),
  m([["base/deployment.yaml", "topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/region"]],
    /no topology spread across nodes/),
  m([["base/kustomization.yaml", "newTag: 0.1.0", "newTag: latest"]], /has no explicit tag \(or is 'latest'\)/),
  m([["base/config.yaml", "token_file: /var/run/secrets/segment/token", "token_file: /etc/audiences-gateway/token"]],
    /base: .*token_file \/etc\/audiences-gateway\/token is not in a Secret volume/),
  // Only both opt-outs gone (the pod's and its account's) mount the token.
  m([["base/deployment.yaml", "      automountServiceAccountToken: false\n", ""],
    ["base/serviceaccount.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true"]],
  /Deployment\/audiences-gateway: mounts a service account token/),
  m([["overlays/redis/kustomization.yaml", "  - redis.yaml\n", "  - redis.yaml\n  - token.yaml\n"]],
    /overlays\/redis: renders the token Secret/),
];

// Renders only the target a mutation is about: the overlay it edits, else the base.
function runPolicy(dir, files = []) {
  const overlay = files.map((f) => /^overlays\/[^/]+/.exec(f)).find(Boolean);
  const only = files.length ? (overlay ? overlay[0] : "base") : "";
  const res = spawnSync(process.execPath, [path.join(here, "k8s_policy.mjs")], {
    encoding: "utf8",
    env: { ...process.env, SAG_K8S_DIR: dir, SAG_K8S_ONLY: only },
  });
  return { status: res.status, out: `${res.stdout}${res.stderr}` };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sag-k8s-mutants-"));
try {
  const clean = path.join(tmp, "clean");
  fs.cpSync(src, clean, { recursive: true });
  const base = runPolicy(clean);
  r.check(base.status === 0, `the unmutated manifests fail the policy:\n${base.out}`);

  mutations.forEach(({ edits, expect }, i) => {
    const dir = path.join(tmp, `m${i}`);
    fs.cpSync(src, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "overlays/redis/token.yaml"), [
      "apiVersion: v1", "kind: Secret", "metadata:", "  name: audiences-gateway-token",
      "stringData:", "  token: not-a-real-token", ""].join("\n"));
    for (const [file, find, replace] of edits) {
      const f = path.join(dir, file);
      const text = fs.readFileSync(f, "utf8");
      if (!r.check(text.includes(find), `mutation ${i}: '${find}' not found in ${file} (update the self-test)`)) return;
      fs.writeFileSync(f, text.replace(find, replace));
    }
    const res = runPolicy(dir, edits.map((e) => e[0]));
    const label = edits.map((e) => `${e[0]}: ${JSON.stringify(e[2]).slice(0, 50)}`).join(" + ");
    r.check(res.status !== 0, `mutation ${i} (${label}) passed the policy`);
    r.check(expect.test(res.out), `mutation ${i} (${label}) failed, but not with ${expect}:\n${res.out}`);
  });
  console.log(`${mutations.length} mutations, each caught`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
r.done();
