import { startTestService } from "./service.ts";

/**
 * Run as a process of its own (tests/ops/lazy-driver.test.ts): starts the service on the
 * embedded default and prints how many of the MongoDB driver's modules are loaded, then how
 * many once GridFS's module is imported, which shows the count can see the driver.
 */

const driverModules = () =>
  Object.keys(require.cache).filter((k) => /node_modules\/(mongodb|bson)\//.test(k)).length;

const service = await startTestService();
const atStart = driverModules();
await service.stop();
await import("../../src/store/gridfs.ts");
console.log(JSON.stringify({ atStart, afterGridFs: driverModules() }));
