import { expect } from "bun:test";
import { mintToken } from "./tokens.ts";

/** Uploading and downloading attachments the way a client does, over real HTTP. */

export interface UploadAnswer {
  id: string;
  name: string;
  size: number;
  mime: string;
  sha256: string;
}

export async function upload(
  url: string,
  userId: number | undefined,
  conversationId: string,
  bytes: Uint8Array<ArrayBuffer>,
  opts: { name?: string; multipart?: boolean; type?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (userId !== undefined) headers.Authorization = `Bearer ${await mintToken(userId)}`;
  const target = `${url}/attachments?conversation_id=${conversationId}`;
  if (opts.multipart) {
    const form = new FormData();
    form.set(
      "file",
      new Blob([bytes], { type: opts.type ?? "application/octet-stream" }),
      opts.name ?? "file",
    );
    return fetch(target, { method: "POST", body: form, headers });
  }
  headers["Content-Type"] = opts.type ?? "application/octet-stream";
  if (opts.name !== undefined) headers["X-Filename"] = encodeURIComponent(opts.name);
  return fetch(target, { method: "POST", body: bytes, headers });
}

/** Uploads and expects a 201; returns the answer. */
export async function uploaded(
  url: string,
  userId: number,
  conversationId: string,
  bytes: Uint8Array<ArrayBuffer>,
  opts: { name?: string; multipart?: boolean; type?: string } = {},
): Promise<UploadAnswer> {
  const res = await upload(url, userId, conversationId, bytes, opts);
  const body = await res.text();
  expect({ status: res.status, body }).toMatchObject({ status: 201 });
  return JSON.parse(body) as UploadAnswer;
}

export async function download(
  url: string,
  userId: number | undefined,
  id: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const h: Record<string, string> = { ...headers };
  if (userId !== undefined) h.Authorization = `Bearer ${await mintToken(userId)}`;
  return fetch(`${url}/attachments/${id}`, { headers: h });
}

export async function downloadedBytes(url: string, userId: number, id: string): Promise<Uint8Array> {
  const res = await download(url, userId, id);
  if (res.status !== 200) throw new Error(`GET /attachments/${id}: ${res.status} ${await res.text()}`);
  return new Uint8Array(await res.arrayBuffer());
}
