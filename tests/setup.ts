import { afterAll } from "bun:test";
import { killChildServices } from "./helpers/service.ts";

// Preloaded by bunfig.toml: an afterAll here runs after every test file, whatever happened in it.
afterAll(() => {
  killChildServices();
});
