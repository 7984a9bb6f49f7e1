// Static checks of deploy/docker/Dockerfile (parsed with the npm `dockerfile-ast`, the parser of
// VS Code's Docker support) and of .dockerignore; no Docker engine runs here.
//
// - multi-stage: a build stage and a final runtime stage, every FROM Debian 12 slim at a pinned
//   release tag (debian:12.N-slim, debian:12-slim, debian:bookworm[-YYYYMMDD]-slim, optionally with
//   a digest), the same image for both, never `latest` or untagged;
// - packages only from that image's Debian 12 sources: no added apt source, no other release
//   (`-t`, trixie, sid, backports...), no curl|sh, no other package manager; apt installs without
//   recommends; the runtime installs the pinned list build.sh wrote (name=version) and drops the
//   apt lists;
// - the build stage RUNs deploy/docker/build.sh (the recipe the `recipe` test runs), whose package
//   list is a subset of deploy/local/install-deps.sh's (the source of truth);
// - runtime: a numeric non-root USER created with that uid, exec-form ENTRYPOINT running the
//   gateway copied from the build stage, EXPOSE of 50051 and 9464, no secrets in ENV/ARG;
// - .dockerignore keeps .git, build trees and node_modules out of the context, and keeps the
//   sources in.
import fs from "node:fs";
import path from "node:path";
import { Report, fail, need, repo } from "./lib.mjs";

const r = new Report("dockerfile_check");
const dockerfilePath = path.join(repo, "deploy/docker/Dockerfile");
if (!fs.existsSync(dockerfilePath)) fail(`${dockerfilePath} does not exist`);
const mod = await need("dockerfile-ast");
const { DockerfileParser } = mod.DockerfileParser ? mod : mod.default;
const df = DockerfileParser.parse(fs.readFileSync(dockerfilePath, "utf8"));

const instructions = df.getInstructions();
const froms = df.getFROMs();
const expanded = (i) => i.getExpandedArguments().map((a) => a.getValue());

// Stages.
r.check(froms.length >= 2, `not multi-stage: ${froms.length} FROM`);
const debian12 = /^(docker\.io\/(library\/)?)?debian:(12(\.\d+)?|bookworm(-\d{8})?)-slim(@sha256:[0-9a-f]{64})?$/;
const images = froms.map((f) => expanded(f)[0]);
images.forEach((image, i) => {
  r.check(debian12.test(image), `FROM #${i + 1} is '${image}', not a pinned Debian 12 slim tag`);
  r.check(!/:latest\b/.test(image) && /:/.test(image), `FROM #${i + 1} '${image}' is untagged or latest`);
});
r.check(new Set(images).size === 1, `the stages start from different images: ${images.join(", ")}`);
const stageNames = froms.map((f) => f.getBuildStage());
r.check(stageNames[0] === "build", `the first stage is '${stageNames[0]}', expected 'build'`);
r.check(stageNames[stageNames.length - 1] === "runtime", "the final stage is not named 'runtime'");

// Instructions per stage.
const stages = [];
for (const i of instructions) {
  if (i.getKeyword() === "FROM") stages.push({ name: i.getBuildStage(), list: [] });
  else if (stages.length) stages[stages.length - 1].list.push(i);
}
const build = stages[0] ? stages[0].list : [];
const runtime = stages.length ? stages[stages.length - 1].list : [];
const runText = (list) => list.filter((i) => i.getKeyword() === "RUN").map((i) => i.getArgumentsContent() || "");
const allRuns = runText(instructions);

// Where packages come from.
const foreign = [
  [/(^|\s)(-t|--target-release)(\s|=)/, "an apt target release"],
  [/Default-Release/, "an apt default release"],
  [/\b(trixie|forky|sid|unstable|testing|bullseye|buster|backports|experimental)\b/, "another Debian release"],
  [/sources\.list|\/etc\/apt\/sources|add-apt-repository|apt-key|\/etc\/apt\/keyrings/, "an added apt source"],
  [/\b(curl|wget)\b[^|]*\|\s*(ba)?sh/, "a downloaded script"],
  [/\b(pip3?|npm|gem|go|cargo)\s+install\b/, "another package manager"],
  [/apt-get\s+(dist-)?upgrade/, "an upgrade of the base image outside the pinned lists"],
];
for (const run of allRuns) {
  for (const [re, what] of foreign) r.check(!re.test(run), `a RUN uses ${what}: ${run.trim()}`);
  if (/apt-get\s+install/.test(run)) {
    r.check(/--no-install-recommends/.test(run), `apt-get install without --no-install-recommends: ${run.trim()}`);
  }
}
r.check(!instructions.some((i) => i.getKeyword() === "ADD" && /https?:\/\//.test(i.getArgumentsContent() || "")),
  "ADD downloads from a URL");

// The build stage runs the recipe.
r.check(runText(build).some((t) => /(^|\s|\/)deploy\/docker\/build\.sh(\s|$)/.test(t)),
  "the build stage does not RUN deploy/docker/build.sh");
r.check(build.some((i) => i.getKeyword() === "COPY"), "the build stage copies no sources");

// build.sh's packages are install-deps.sh's (the source of truth for build dependencies).
function packageArray(file, name) {
  const text = fs.readFileSync(path.join(repo, file), "utf8");
  const m = new RegExp(`(^|\\n)\\s*${name}=\\(([^)]*)\\)`).exec(text);
  if (!m) return null;
  return m[2].split("\n").map((l) => l.replace(/#.*/, "")).join(" ").split(/\s+/).filter(Boolean);
}
const recipePackages = packageArray("deploy/docker/build.sh", "build_packages");
const sourceOfTruth = packageArray("deploy/local/install-deps.sh", "packages");
if (r.check(recipePackages && recipePackages.length > 0, "deploy/docker/build.sh has no build_packages=(...) list") &&
  r.check(sourceOfTruth && sourceOfTruth.length > 0, "deploy/local/install-deps.sh has no packages=(...) list")) {
  const extra = recipePackages.filter((p) => !sourceOfTruth.includes(p));
  r.check(extra.length === 0, `build.sh installs packages deploy/local/install-deps.sh does not list: ${extra.join(" ")}`);
}

// The runtime installs exactly the pinned list from the build stage.
const runtimeRuns = runText(runtime);
r.check(runtime.some((i) => i.getKeyword() === "COPY" &&
  (i.getFlags() || []).some((f) => f.getName() === "from" && f.getValue() === "build") &&
  /runtime-packages\.txt/.test(i.getArgumentsContent() || "")),
"the runtime stage does not COPY runtime-packages.txt from the build stage");
r.check(runtimeRuns.some((t) => /runtime-packages\.txt/.test(t) && /apt-get\s+install/.test(t)),
  "the runtime stage does not apt-get install the pinned runtime-packages.txt");
r.check(runtimeRuns.some((t) => /rm -rf \/var\/lib\/apt\/lists/.test(t)), "the runtime stage keeps the apt lists");
for (const command of runtimeRuns.flatMap((t) => t.split(/&&|;|\|\|/))) {
  const m = /apt-get\s+install\s+(.*)$/s.exec(command);
  if (!m) continue;
  const names = m[1].split(/\s+/).filter((w) => w && !w.startsWith("-") && w !== "\\");
  r.check(names.length === 0 && /xargs[^]*runtime-packages\.txt/.test(command),
    `the runtime stage installs packages outside the pinned list: ${command.trim()}`);
}

// User, entrypoint, ports.
const users = runtime.filter((i) => i.getKeyword() === "USER");
const user = users.length ? users[users.length - 1].getArgumentsContent().trim() : "";
const um = /^(\d+)(?::(\d+))?$/.exec(user);
r.check(um, `the runtime USER is '${user || "(none)"}', not numeric uid[:gid]`);
if (um) {
  r.check(Number(um[1]) !== 0 && (um[2] === undefined || Number(um[2]) !== 0), `USER ${user} is root`);
  r.check(runtimeRuns.some((t) => new RegExp(`useradd[^&;]*--uid ${um[1]}\\b`).test(t)),
    `no useradd --uid ${um[1]} (the image's /etc/passwd should name the user)`);
}
const entrypoints = runtime.filter((i) => i.getKeyword() === "ENTRYPOINT");
const ep = entrypoints[entrypoints.length - 1];
if (r.check(ep, "no ENTRYPOINT in the runtime stage")) {
  const raw = (ep.getArgumentsContent() || "").trim();
  let argv = null;
  try {
    argv = JSON.parse(raw);
  } catch {
    argv = null;
  }
  r.check(Array.isArray(argv) && argv.length > 0, `ENTRYPOINT is not exec form (a JSON array): ${raw}`);
  if (Array.isArray(argv)) {
    r.check(argv[0] === "/usr/local/bin/audiences-gateway", `ENTRYPOINT runs ${argv[0]}, not the gateway`);
  }
}
const cmds = runtime.filter((i) => i.getKeyword() === "CMD");
for (const c of cmds) {
  r.check(/^\s*\[/.test(c.getArgumentsContent() || ""), "CMD is not exec form");
}
r.check(runtime.some((i) => i.getKeyword() === "COPY" &&
  (i.getFlags() || []).some((f) => f.getName() === "from" && f.getValue() === "build") &&
  /\/usr\/local\/bin/.test(i.getArgumentsContent() || "")),
"the runtime stage does not COPY the programs from the build stage");
const exposed = runtime.filter((i) => i.getKeyword() === "EXPOSE").flatMap((i) => expanded(i))
  .map((p) => p.replace(/\/tcp$/, ""));
for (const port of ["50051", "9464"]) r.check(exposed.includes(port), `EXPOSE lacks ${port}`);
for (const i of instructions.filter((x) => ["ENV", "ARG"].includes(x.getKeyword()))) {
  r.check(!/(TOKEN|SECRET|PASSWORD)/i.test(i.getArgumentsContent() || ""),
    `${i.getKeyword()} carries a secret: ${i.getArgumentsContent()}`);
}

// .dockerignore: Docker's rules (Go filepath.Match plus `**`, `!` exceptions, a match on a parent
// directory excludes what is under it).
const ignorePath = path.join(repo, ".dockerignore");
if (r.check(fs.existsSync(ignorePath), ".dockerignore is missing at the repository root")) {
  const rules = fs.readFileSync(ignorePath, "utf8").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ""));
      const re = pattern.split("/").map((seg) => seg === "**" ? "(?:.*)" : seg
        .replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")).join("/")
        .replace(/\(\?:\.\*\)\//g, "(?:.*/)?");
      return { negate, re: new RegExp(`^${re}$`) };
    });
  const excluded = (p) => {
    let out = false;
    for (const { negate, re } of rules) {
      const parts = p.split("/");
      const hit = parts.some((_, i) => re.test(parts.slice(0, i + 1).join("/")));
      if (hit) out = !negate;
    }
    return out;
  };
  for (const p of [".git/HEAD", "build/CMakeCache.txt", "build-ct/service/audiences-gateway",
    "build-docker/stage/runtime-packages.txt", "tests/deploy/node_modules/yaml/package.json",
    "tests/lint/node_modules/@bufbuild/buf/bin/buf", "node_modules/x/index.js"]) {
    r.check(excluded(p), `.dockerignore lets ${p} into the build context`);
  }
  for (const p of ["CMakeLists.txt", "deploy/docker/build.sh", "deploy/local/install-deps.sh",
    "service/main.cc", "proto/segment/audiences/v1/audiences.proto", "client/CMakeLists.txt",
    "tests/CMakeLists.txt", "tests/sim/CMakeLists.txt", "tests/sim/main.cc"]) {
    r.check(!excluded(p), `.dockerignore keeps ${p} (which the build needs) out of the context`);
  }
}
r.done();
