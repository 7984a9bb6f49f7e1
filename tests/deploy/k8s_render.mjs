// `kubectl kustomize` renders the base, the base with each component and every overlay, and each
// holds what it must: one gateway Deployment and its Service, ConfigMap, PodDisruptionBudget,
// NetworkPolicy; the dev overlay its segment-sim, one replica and no autoscaler; the redis overlay
// its Redis and several replicas.
import { Report, id, kubectl, renderAll } from "./lib.mjs";

const r = new Report("k8s_render");
const k = kubectl();
console.log(`kubectl ${k.client}, kustomize ${k.kustomize}`);

const rendered = await renderAll();
const expect = {
  base: ["ServiceAccount/audiences-gateway", "Deployment/audiences-gateway",
    "Service/audiences-gateway", "Service/audiences-gateway-headless",
    "PodDisruptionBudget/audiences-gateway", "HorizontalPodAutoscaler/audiences-gateway",
    "NetworkPolicy/audiences-gateway"],
  "base+components/servicemonitor": ["Deployment/audiences-gateway",
    "ServiceMonitor/audiences-gateway"],
  "overlays/dev": ["Deployment/audiences-gateway", "Deployment/segment-sim", "Service/segment-sim",
    "NetworkPolicy/segment-sim", "PodDisruptionBudget/audiences-gateway"],
  "overlays/redis": ["Deployment/audiences-gateway", "Deployment/audiences-gateway-redis",
    "Service/audiences-gateway-redis", "NetworkPolicy/audiences-gateway-redis",
    "HorizontalPodAutoscaler/audiences-gateway"],
};
r.check(rendered.some((t) => t.name === "overlays/dev"), "no overlays/dev");
r.check(rendered.some((t) => t.name === "overlays/redis"), "no overlays/redis");
r.check(rendered.some((t) => t.name === "base+components/servicemonitor"),
  "no components/servicemonitor");

for (const t of rendered) {
  const ids = t.objects.map(id);
  console.log(`${t.name}: ${ids.join(", ")}`);
  r.check(t.objects.length > 0, `${t.name}: renders nothing`);
  const seen = new Set();
  for (const i of ids) {
    r.check(!seen.has(i), `${t.name}: ${i} rendered twice`);
    seen.add(i);
  }
  for (const want of expect[t.name] || expect.base) {
    r.check(ids.includes(want), `${t.name}: no ${want}`);
  }
  const configMaps = t.objects.filter((o) => o.kind === "ConfigMap" &&
    o.metadata.name.startsWith("audiences-gateway-config"));
  r.check(configMaps.length === 1 && configMaps[0].data && "config.yaml" in configMaps[0].data,
    `${t.name}: expected one audiences-gateway-config ConfigMap holding config.yaml`);
  const gw = t.objects.find((o) => o.kind === "Deployment" && o.metadata.name === "audiences-gateway");
  const hpa = t.objects.find((o) => o.kind === "HorizontalPodAutoscaler");
  if (t.name === "overlays/dev") {
    r.check(gw && gw.spec.replicas === 1, `${t.name}: the gateway should run one replica`);
    r.check(!hpa, `${t.name}: no HorizontalPodAutoscaler expected`);
  } else if (t.name === "overlays/redis") {
    r.check(gw && gw.spec.replicas >= 2, `${t.name}: the gateway should run several replicas`);
  } else {
    r.check(gw && gw.spec.replicas === 2, `${t.name}: the gateway should run 2 replicas`);
  }
  if (gw && hpa) {
    r.check(hpa.spec.minReplicas === gw.spec.replicas,
      `${t.name}: HPA minReplicas ${hpa.spec.minReplicas} != Deployment replicas ${gw.spec.replicas}`);
    r.check(hpa.spec.maxReplicas > hpa.spec.minReplicas, `${t.name}: HPA cannot scale`);
  }
}
r.done();
