/**
 * A free loopback TCP port: the kernel picks one, the listener is released, the port returned.
 * Another process may take it before the caller binds; callers that spawn a server on it should
 * say which port failed (FerretDB's helper retries once on "address already in use").
 */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}
