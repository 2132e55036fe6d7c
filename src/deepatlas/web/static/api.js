// Reading the atlas' JSON with relative URLs (so the static site works from any folder), and the
// few writes the live server allows, each carrying the session's token.

const cache = new Map();
let session = null;

export async function getSession() {
  if (!session) {
    try {
      session = await getJSON("api/session.json", { fresh: true });
    } catch {
      session = { live: false };
    }
  }
  return session;
}

export const live = () => Boolean(session && session.live);

export class HttpError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function parse(res) {
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!res.ok) {
    let detail = body && body.detail !== undefined ? body.detail : body || res.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new HttpError(res.status, detail);
  }
  return body;
}

// Catalogue files never change while the page is open; runs, jobs and progress do (`fresh`).
export async function getJSON(url, { fresh = false } = {}) {
  if (!fresh && cache.has(url)) return cache.get(url);
  const promise = fetch(url, { cache: fresh ? "no-store" : "default" }).then(parse);
  if (!fresh) {
    cache.set(url, promise);
    promise.catch(() => cache.delete(url));
  }
  return promise;
}

export async function send(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-Deepatlas-Token": session?.token ?? "" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return parse(res);
}
