import { expect, test } from "bun:test";
import { createAuthenticate } from "../../src/auth/authenticate.ts";
import { createFailedAuthGuard } from "../../src/auth/failed-auth.ts";
import { AppError } from "../../src/errors.ts";
import { createDirectoryIdentity } from "../../src/identity/directory.ts";
import { createTokenVerifier } from "../../src/identity/token.ts";

/** Which address a refused token is counted against, and how often the address is read. */

const identity = createDirectoryIdentity(
  { users: [{ id: 1, email: "", is_mentor: true, first_name: "", last_name: "" }], lessons: [] },
  createTokenVerifier({ secret: "a-secret-of-at-least-32-characters!!", clockToleranceS: 0 })!,
);
const req = new Request("http://127.0.0.1/ws?lesson_id=1");

const status = (f: () => void): number | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as AppError).status;
  }
};

/** A failed-login budget of one, and a request whose address reads as 10.0.0.9 (counted). */
const setup = () => {
  const guard = createFailedAuthGuard(1);
  const counter = { reads: 0 };
  const authenticate = createAuthenticate({
    identity,
    authFailures: guard,
    clientIp: () => {
      counter.reads++;
      return "10.0.0.9";
    },
  });
  return { guard, counter, authenticate };
};

test("an address the caller read already is used as is: no second read, and the failure counts there", async () => {
  const { guard, counter, authenticate } = setup();
  const refused = await authenticate(req, { queryToken: "forged", ip: "10.0.0.1" }).catch((e) => e);
  expect(refused).toBeInstanceOf(AppError);
  expect((refused as AppError).status).toBe(401);
  expect(counter.reads).toBe(0);
  expect(status(() => guard.check("10.0.0.1"))).toBe(429);
  expect(status(() => guard.check("10.0.0.9"))).toBeUndefined();
});

test("without one, the address is read from the request once", async () => {
  const { guard, counter, authenticate } = setup();
  const refused = await authenticate(req, { queryToken: "forged" }).catch((e) => e);
  expect((refused as AppError).status).toBe(401);
  expect(counter.reads).toBe(1);
  expect(status(() => guard.check("10.0.0.9"))).toBe(429);
});
