import { afterAll } from "bun:test";
import { killClusterNodes } from "./helpers/redis-cluster.ts";
import { killChildServices } from "./helpers/service.ts";

// Preloaded by bunfig.toml: an afterAll here runs after every test file, whatever happened in it.
afterAll(() => {
  killChildServices();
  killClusterNodes();
});
