// The policy an SRE reviews, asserted on everything that any kustomize target renders.
//
// Every container: runAsNonRoot (and no uid 0), readOnlyRootFilesystem, allowPrivilegeEscalation
// false, capabilities drop ALL (and add none), not privileged, seccomp RuntimeDefault, CPU and
// memory requests and limits (requests <= limits), liveness and readiness probes, an image with
// an explicit tag that is not `latest`. Every pod: no host namespaces, no hostPath, no service
// account token.
//
// The gateway: native gRPC probes on its gRPC port; terminationGracePeriodSeconds above the
// preStop pause plus --shutdown_grace (read from the rendered config file and args); a hostname
// topology spread; the Segment token from a Secret mounted as a directory (no subPath) where
// token_file points; --config from the ConfigMap; its ports agree with listen/metrics_listen and
// the Service's `grpc` and `metrics` ports; a PodDisruptionBudget and (but in dev) an autoscaler.
//
// NetworkPolicy: the gateway's ingress only on 50051 from pods labelled as callers and on 9464
// from Prometheus; its egress only to DNS (53/UDP+TCP), HTTPS (443) and Redis (6379), plus ports
// of pods the same target deploys (segment-sim in dev); every other workload is fenced too.
import path from "node:path";
import {
  Report, id, parseDurationSeconds, parseQuantity, parseYaml, podLabelsOf, podSpecOf, renderAll,
  selects,
} from "./lib.mjs";

const r = new Report("k8s_policy");
const gatewayImage = "audiences-gateway";
const callerLabel = ["audiences-gateway/caller", "true"];
const scraperLabel = ["app.kubernetes.io/name", "prometheus"];
const allowedEgress = new Set(["UDP/53", "TCP/53", "TCP/443", "TCP/6379"]);

const imageRepo = (image) => image.replace(/@.*$/, "").replace(/:[^/:]+$/, "");
const imageTag = (image) => {
  const noDigest = image.replace(/@.*$/, "");
  const m = /:([^/:]+)$/.exec(noDigest);
  return m ? m[1] : null;
};
const isGatewayImage = (image) => imageRepo(image).split("/").pop() === gatewayImage;
const isGatewayContainer = (c) => isGatewayImage(c.image || "") && !(c.command && c.command.length);

function flagsFromArgs(args) {
  const flags = {};
  for (const a of args || []) {
    const m = /^--?([A-Za-z0-9_]+)=(.*)$/.exec(a);
    if (m) flags[m[1]] = m[2];
  }
  return flags;
}
function portOf(address) {
  const m = /:(\d+)$/.exec(String(address || ""));
  return m ? Number(m[1]) : NaN;
}
// The volume (and mount) that holds `file` in a container.
function mountFor(container, spec, file) {
  const mounts = (container.volumeMounts || []).filter((m) =>
    file === m.mountPath || file.startsWith(m.mountPath.replace(/\/$/, "") + "/"));
  mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts[0];
  if (!mount) return {};
  const volume = (spec.volumes || []).find((v) => v.name === mount.name);
  return { mount, volume, rel: path.posix.relative(mount.mountPath, file) };
}

function checkContainer(where, c, pod) {
  const sc = c.securityContext || {};
  const psc = pod.securityContext || {};
  const eff = (k) => (sc[k] !== undefined ? sc[k] : psc[k]);
  r.check(eff("runAsNonRoot") === true, `${where}: runAsNonRoot is not true`);
  r.check(eff("runAsUser") === undefined || eff("runAsUser") > 0, `${where}: runs as uid 0`);
  r.check(sc.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem is not true`);
  r.check(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation is not false`);
  r.check(sc.privileged !== true, `${where}: privileged`);
  const caps = sc.capabilities || {};
  r.check((caps.drop || []).includes("ALL"), `${where}: capabilities do not drop ALL`);
  r.check(!(caps.add && caps.add.length), `${where}: adds capabilities ${caps.add}`);
  const seccomp = eff("seccompProfile");
  r.check(seccomp && seccomp.type === "RuntimeDefault", `${where}: seccompProfile is not RuntimeDefault`);

  const res = c.resources || {};
  for (const kind of ["requests", "limits"]) {
    for (const name of ["cpu", "memory"]) {
      r.check(res[kind] && res[kind][name] !== undefined, `${where}: no ${name} ${kind}`);
    }
  }
  for (const name of ["cpu", "memory"]) {
    if (res.requests && res.limits && res.requests[name] && res.limits[name]) {
      const q = parseQuantity(res.requests[name]);
      const l = parseQuantity(res.limits[name]);
      r.check(!Number.isNaN(q) && !Number.isNaN(l) && q <= l,
        `${where}: ${name} request ${res.requests[name]} above limit ${res.limits[name]}`);
    }
  }
  r.check(c.livenessProbe, `${where}: no livenessProbe`);
  r.check(c.readinessProbe, `${where}: no readinessProbe`);

  const image = c.image || "";
  const tag = imageTag(image);
  r.check(image.includes("@sha256:") || (tag && tag !== "latest"),
    `${where}: image '${image}' has no explicit tag (or is 'latest')`);
}

function checkGateway(t, d, c, spec) {
  const where = `${t.name}: ${id(d)} container ${c.name}`;
  const ports = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
  r.check(ports.grpc === 50051, `${where}: no container port 'grpc' = 50051`);
  r.check(ports.metrics === 9464, `${where}: no container port 'metrics' = 9464`);
  for (const probe of ["livenessProbe", "readinessProbe"]) {
    const p = c[probe] || {};
    r.check(p.grpc && p.grpc.port === ports.grpc,
      `${where}: ${probe} is not a native gRPC probe on the gRPC port`);
    if (p.grpc) {
      r.check(["", undefined, "segment.audiences.v1.AudiencesService"].includes(p.grpc.service),
        `${where}: ${probe} asks for unknown health service '${p.grpc.service}'`);
    }
  }

  // --config: a file in a ConfigMap volume the same target renders.
  const args = flagsFromArgs(c.args);
  let config = {};
  if (r.check(args.config, `${where}: no --config argument`)) {
    const { mount, volume, rel } = mountFor(c, spec, args.config);
    if (r.check(volume && volume.configMap, `${where}: --config ${args.config} is not in a ConfigMap volume`)) {
      const cm = t.objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === volume.configMap.name);
      const key = volume.configMap.items
        ? (volume.configMap.items.find((i) => i.path === rel) || {}).key
        : rel;
      if (r.check(cm && cm.data && key in cm.data,
        `${where}: ConfigMap ${volume.configMap.name} with key ${key} is not rendered`)) {
        config = t.configs.get(cm.metadata.name) || {};
      }
      r.check(mount.readOnly === true, `${where}: the config mount is not read-only`);
    }
  }
  const flag = (name) => (args[name] !== undefined ? args[name] : config[name]);

  // Ports agree with the flags.
  const listen = flag("listen") || "0.0.0.0:50051";
  const metricsListen = flag("metrics_listen") || "0.0.0.0:9464";
  r.check(portOf(listen) === ports.grpc, `${where}: listen ${listen} is not the 'grpc' port`);
  r.check(portOf(metricsListen) === ports.metrics, `${where}: metrics_listen ${metricsListen} is not the 'metrics' port`);

  // Graceful shutdown fits in the grace period.
  const grace = parseDurationSeconds(flag("shutdown_grace") || "20s");
  r.check(!Number.isNaN(grace), `${where}: cannot read shutdown_grace '${flag("shutdown_grace")}'`);
  let preStop = 0;
  const cmd = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command;
  if (cmd && /(^|\/)sleep$/.test(cmd[0])) preStop = Number(cmd[1]) || 0;
  const sleepAction = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.sleep;
  if (sleepAction) preStop = sleepAction.seconds;
  const tgps = spec.terminationGracePeriodSeconds === undefined ? 30 : spec.terminationGracePeriodSeconds;
  r.check(tgps > preStop + grace,
    `${where}: terminationGracePeriodSeconds ${tgps} is not above preStop ${preStop}s + shutdown_grace ${grace}s`);

  // The token: a file in a Secret volume, mounted as a directory.
  const tokenFile = flag("token_file");
  if (r.check(tokenFile, `${where}: no token_file (config or args)`)) {
    const { mount, volume, rel } = mountFor(c, spec, tokenFile);
    if (r.check(volume && volume.secret, `${where}: token_file ${tokenFile} is not in a Secret volume`)) {
      r.check(!mount.subPath && !mount.subPathExpr,
        `${where}: the Secret is mounted with subPath (a rotated token would never arrive)`);
      r.check(mount.readOnly === true, `${where}: the Secret mount is not read-only`);
      r.check(volume.secret.optional !== true, `${where}: the token Secret is optional`);
      const key = volume.secret.items ? (volume.secret.items.find((i) => i.path === rel) || {}).key : rel;
      r.check(key, `${where}: token_file ${tokenFile} is not a key of the Secret volume`);
      const secret = t.objects.find((o) => o.kind === "Secret" && o.metadata.name === volume.secret.secretName);
      if (secret) {
        r.check(t.name.startsWith("overlays/dev"), `${t.name}: renders the token Secret ${secret.metadata.name}: ` +
          `a real token never belongs in the manifests (only the dev overlay's simulator token does)`);
        r.check((secret.data && key in secret.data) || (secret.stringData && key in secret.stringData),
          `${where}: Secret ${secret.metadata.name} has no key ${key}`);
      } else {
        r.check(volume.secret.secretName === "audiences-gateway-token",
          `${where}: the token Secret is not the documented audiences-gateway-token`);
      }
    }
  }
  r.check(!(c.env || []).some((e) => e.name === "SEGMENT_API_TOKEN"),
    `${where}: the token travels in the environment, not as a file`);
  return { flag, ports };
}

const rendered = await renderAll();
for (const t of rendered) {
  t.configs = new Map();
  for (const o of t.objects) {
    if (o.kind === "ConfigMap" && o.data && o.data["config.yaml"] !== undefined) {
      t.configs.set(o.metadata.name, (await parseYaml(o.data["config.yaml"], `${t.name}: ${id(o)}`)) || {});
    }
  }
  const workloads = t.objects.filter((o) => podSpecOf(o));
  const policies = t.objects.filter((o) => o.kind === "NetworkPolicy");
  let gatewayDeployments = 0;

  for (const w of workloads) {
    const spec = podSpecOf(w);
    const labels = podLabelsOf(w);
    const where = `${t.name}: ${id(w)}`;
    r.check(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${where}: uses a host namespace`);
    r.check(!(spec.volumes || []).some((v) => v.hostPath), `${where}: mounts a hostPath`);
    const sa = t.objects.find((o) => o.kind === "ServiceAccount" && o.metadata.name === spec.serviceAccountName);
    r.check(spec.automountServiceAccountToken === false ||
      (spec.automountServiceAccountToken === undefined && sa && sa.automountServiceAccountToken === false),
    `${where}: mounts a service account token`);
    const containers = [...(spec.initContainers || []), ...(spec.containers || [])];
    for (const c of containers) checkContainer(`${where} container ${c.name}`, c, spec);

    // Every workload is fenced by a NetworkPolicy for both directions.
    const mine = policies.filter((p) => selects(p.spec.podSelector, labels));
    const types = new Set(mine.flatMap((p) => p.spec.policyTypes || []));
    r.check(types.has("Ingress") && types.has("Egress"),
      `${where}: not covered by NetworkPolicies for both Ingress and Egress (${[...types]})`);

    const gw = containers.find(isGatewayContainer);
    if (!gw) {
      // Other workloads accept traffic from the gateway's pods only.
      for (const p of mine) {
        for (const rule of p.spec.ingress || []) {
          r.check((rule.from || []).length > 0 && (rule.from || []).every((peer) =>
            peer.podSelector && !peer.namespaceSelector && !peer.ipBlock &&
            peer.podSelector.matchLabels && peer.podSelector.matchLabels["app.kubernetes.io/name"] === gatewayImage),
          `${where}: ${id(p)} admits more than the gateway's pods`);
        }
      }
      continue;
    }
    gatewayDeployments++;
    const { flag } = checkGateway(t, w, gw, spec);

    // Topology spread across nodes.
    r.check((spec.topologySpreadConstraints || []).some((tsc) =>
      tsc.topologyKey === "kubernetes.io/hostname" && tsc.maxSkew >= 1 && selects(tsc.labelSelector, labels)),
    `${where}: no topology spread across nodes (kubernetes.io/hostname) selecting its pods`);

    // PodDisruptionBudget and autoscaler.
    r.check(t.objects.some((o) => o.kind === "PodDisruptionBudget" && selects(o.spec.selector, labels)),
      `${where}: no PodDisruptionBudget selects its pods`);
    const hpa = t.objects.find((o) => o.kind === "HorizontalPodAutoscaler" &&
      o.spec.scaleTargetRef.kind === w.kind && o.spec.scaleTargetRef.name === w.metadata.name);
    if (t.name.startsWith("overlays/dev")) {
      r.check(!hpa, `${where}: the dev overlay should not autoscale`);
    } else {
      r.check(hpa, `${where}: no HorizontalPodAutoscaler targets it`);
    }

    // Services: a `grpc` and a `metrics` port reaching the container's ports.
    const svc = t.objects.find((o) => o.kind === "Service" && o.metadata.name === "audiences-gateway");
    if (r.check(svc && selects({ matchLabels: svc.spec.selector }, labels),
      `${where}: no Service audiences-gateway selecting its pods`)) {
      const sp = Object.fromEntries(svc.spec.ports.map((p) => [p.name, p]));
      r.check(sp.grpc && (sp.grpc.targetPort === "grpc" || sp.grpc.targetPort === 50051),
        `${where}: Service has no 'grpc' port to the gRPC container port`);
      r.check(sp.metrics && (sp.metrics.targetPort === "metrics" || sp.metrics.targetPort === 9464),
        `${where}: Service has no 'metrics' port to the metrics container port`);
    }

    // NetworkPolicy, ingress.
    const ingress = mine.filter((p) => (p.spec.policyTypes || []).includes("Ingress"))
      .flatMap((p) => (p.spec.ingress || []).map((rule) => ({ p, rule })));
    const ingressPorts = new Set();
    for (const { p, rule } of ingress) {
      const ports = (rule.ports || []).map((x) => x.port);
      r.check(ports.length > 0, `${where}: ${id(p)} has an ingress rule for every port`);
      r.check((rule.from || []).length > 0, `${where}: ${id(p)} has an ingress rule from anywhere`);
      for (const port of ports) {
        ingressPorts.add(port);
        const want = port === 50051 || port === "grpc" ? callerLabel
          : port === 9464 || port === "metrics" ? scraperLabel : null;
        r.check(want, `${where}: ${id(p)} admits port ${port}`);
        if (!want) continue;
        r.check((rule.from || []).every((peer) => !peer.ipBlock && peer.podSelector &&
          peer.podSelector.matchLabels && peer.podSelector.matchLabels[want[0]] === want[1]),
        `${where}: ${id(p)} admits port ${port} from peers not labelled ${want[0]}=${want[1]}`);
      }
    }
    r.check(ingressPorts.has(50051), `${where}: callers cannot reach the gRPC port`);
    r.check(ingressPorts.has(9464), `${where}: Prometheus cannot reach the metrics port`);

    // NetworkPolicy, egress.
    const egress = mine.filter((p) => (p.spec.policyTypes || []).includes("Egress"))
      .flatMap((p) => (p.spec.egress || []).map((rule) => ({ p, rule })));
    const open = new Set();
    for (const { p, rule } of egress) {
      const ports = (rule.ports || []).map((x) => `${x.protocol || "TCP"}/${x.port}`);
      r.check(ports.length > 0, `${where}: ${id(p)} allows egress on every port`);
      if (!rule.to || rule.to.length === 0) {
        for (const port of ports) {
          open.add(port);
          r.check(allowedEgress.has(port), `${where}: ${id(p)} allows egress to ${port} anywhere`);
        }
      } else {
        // Only to pods this same target deploys.
        for (const peer of rule.to) {
          const target = !peer.ipBlock && !peer.namespaceSelector && peer.podSelector &&
            workloads.some((o) => o !== w && selects(peer.podSelector, podLabelsOf(o)));
          r.check(target, `${where}: ${id(p)} allows egress to peers this target does not deploy`);
        }
      }
    }
    for (const port of allowedEgress) r.check(open.has(port), `${where}: egress to ${port} is not allowed`);

    // Overlay specifics.
    const upstream = String(flag("upstream_url") || "https://api.segmentapis.com");
    if (t.name === "overlays/dev") {
      const u = new URL(upstream);
      const sim = t.objects.find((o) => o.kind === "Service" && o.metadata.name === u.hostname);
      r.check(sim && sim.spec.ports.some((p) => p.port === Number(u.port)),
        `${where}: upstream_url ${upstream} is not a Service of the overlay`);
      const simDeployment = workloads.find((o) => sim && selects({ matchLabels: sim.spec.selector }, podLabelsOf(o)));
      const simContainer = simDeployment && podSpecOf(simDeployment).containers[0];
      r.check(simContainer && simContainer.image === gw.image &&
        /segment-sim$/.test((simContainer.command || [])[0] || ""),
      `${where}: segment-sim does not run from the gateway's image`);
    } else {
      r.check(upstream === "https://api.segmentapis.com", `${where}: upstream_url is ${upstream}`);
    }
    const redisUrl = flag("redis_url");
    if (t.name === "overlays/redis") {
      if (r.check(redisUrl, `${where}: no redis_url`)) {
        const u = new URL(redisUrl);
        const redis = t.objects.find((o) => o.kind === "Service" && o.metadata.name === u.hostname);
        r.check(redis && redis.spec.ports.some((p) => p.port === Number(u.port || 6379)),
          `${where}: redis_url ${redisUrl} is not a Service of the overlay`);
      }
      r.check(w.spec.replicas >= 2, `${where}: the redis overlay runs ${w.spec.replicas} replica(s)`);
    } else {
      r.check(!redisUrl, `${where}: redis_url set outside the redis overlay`);
    }
  }
  r.check(gatewayDeployments === 1, `${t.name}: ${gatewayDeployments} gateway workloads, expected 1`);

  // The ServiceMonitor scrapes the gateway Service's metrics port.
  for (const sm of t.objects.filter((o) => o.kind === "ServiceMonitor")) {
    const svc = t.objects.filter((o) => o.kind === "Service" &&
      selects(sm.spec.selector, o.metadata.labels || {}));
    r.check(svc.length === 1 && svc[0].metadata.name === "audiences-gateway",
      `${t.name}: ${id(sm)} selects ${svc.map(id).join(", ") || "no Service"}, not Service/audiences-gateway`);
    r.check(sm.spec.endpoints.every((e) => svc.length && svc[0].spec.ports.some((p) => p.name === e.port)),
      `${t.name}: ${id(sm)} scrapes a port the Service does not have`);
  }
}
r.done();
