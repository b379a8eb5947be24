/**
 * The architecture check (`npm run arch`): src/ imports go one way, down these layers.
 * A module may import its own folder and any layer below its own, never one above, and never a
 * sibling in its own layer (ws and http, identity and store do not import each other). With
 * no-circular on top, no two folders can import each other, directly or round a circle.
 * Type-only imports count (tsPreCompilationDeps). docs/architecture.md draws the result.
 */

/** Top first. Folders end in "/", single modules in ".ts". */
const LAYERS = [
  ["main.ts"],
  ["app.ts", "cli.ts"],
  ["open-storage.ts"],
  ["server.ts", "readiness.ts"],
  ["demo/"],
  ["ws/", "http/"],
  ["auth/"],
  ["jobs/"],
  ["bus/"],
  ["domain/"],
  ["identity/", "store/"],
  ["protocol/"],
  ["model/", "errors.ts", "config.ts", "config-fields.ts", "log.ts", "metrics.ts", "ids.ts", "healthcheck.ts"],
];

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const pathOf = (parts) => `^src/(${parts.map(esc).join("|")})`;

const layerRules = LAYERS.flatMap((layer, i) => {
  const above = LAYERS.slice(0, i).flat();
  const rules = [];
  if (above.length > 0) {
    rules.push({
      name: `layer-${layer.join("+")}-imports-up`,
      comment: `${layer.join(", ")} may only import layers below it`,
      severity: "error",
      from: { path: pathOf(layer) },
      to: { path: pathOf(above) },
    });
  }
  // The leaves are small single modules (healthcheck reads config); model/ and errors.ts are
  // held to importing nothing by their own rule below.
  if (i === LAYERS.length - 1) return rules;
  for (const part of layer) {
    const siblings = layer.filter((p) => p !== part);
    if (siblings.length === 0) continue;
    rules.push({
      name: `layer-${part}-imports-sibling`,
      comment: `${part} and ${siblings.join(", ")} share a layer: they do not import each other`,
      severity: "error",
      from: { path: pathOf([part]) },
      to: { path: pathOf(siblings) },
    });
  }
  return rules;
});

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "No module reaches itself through its imports (type-only imports included).",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "not-to-unresolvable",
      comment: "An import the check cannot resolve would escape it.",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true },
    },
    ...layerRules,
    {
      name: "shared-shapes-import-nothing",
      comment: "model/ and errors.ts sit below everyone who uses them, so they import nothing of src/.",
      severity: "error",
      from: { path: "^src/(model/|errors\\.ts)" },
      to: { path: "^src/", pathNot: "^src/model/" },
    },
    {
      name: "client-stays-in-client",
      comment: "The browser SDK is bundled alone: only client/, plus type-only from protocol/.",
      severity: "error",
      from: { path: "^src/client/" },
      to: { path: "^src/", pathNot: "^src/(client|protocol|model)/" },
    },
    {
      name: "client-types-only-from-protocol",
      comment: "Type-only imports vanish from the bundle; a value import would drag zod in.",
      severity: "error",
      from: { path: "^src/client/" },
      to: { path: "^src/(protocol|model)/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "only-demo-uses-client",
      comment: "The SDK is for browsers and Bun scripts; the service itself bundles it only for the demo.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(client|demo)/" },
      to: { path: "^src/client/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    includeOnly: "^src/",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".json"] },
  },
};
