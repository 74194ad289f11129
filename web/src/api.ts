// fetch() with the session token; every API error becomes an ApiError carrying error.message.
import { clearSession, renewed, scheduleRenew, session } from './session';
import type { Token } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let onUnauthorized: (message: string) => void = () => undefined;
export function setUnauthorizedHandler(f: (message: string) => void): void {
  onUnauthorized = f;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Do not treat a 401 as "session over" (sign-in). */
  noAuthRedirect?: boolean;
  token?: string;
}

export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = opts.token ?? session()?.token;
  // Signed out meanwhile (e.g. a parallel request got 401): do not send a burst of doomed requests.
  if (!token && path !== '/auth/login') throw new ApiError(401, 'unauthenticated', 'You are signed out.');
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
      credentials: 'omit',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The FLUO server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; line?: number; column?: number } } | undefined)?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? 'http_' + res.status,
      err?.message ?? `${res.status} ${res.statusText || 'error'}`,
      err?.line ?? undefined,
      err?.column ?? undefined,
    );
    if (res.status === 401 && !opts.noAuthRedirect && session()) {
      clearSession();
      onUnauthorized('Your session has ended. Please sign in again.');
    }
    throw e;
  }
  return data as T;
}

/** The session is over (a 401 outside fetch(), e.g. on the event stream): back to sign-in. */
export function sessionEnded(): void {
  if (!session()) return;
  clearSession();
  onUnauthorized('Your session has ended. Please sign in again.');
}

export const api = {
  get: <T>(path: string, opts?: RequestOptions) => request<T>('GET', path, undefined, opts),
  post: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('POST', path, body ?? {}, opts),
  put: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('PUT', path, body ?? {}, opts),
  del: (path: string, opts?: RequestOptions) => request<void>('DELETE', path, undefined, opts),
};

/** Query string from an object, leaving out empty values. */
export function qs(params: Record<string, string | number | null | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

export async function renewSession(): Promise<void> {
  try {
    const t = await request<Token>('POST', '/auth/renew', {});
    renewed(t);
    scheduleRenew(renewSession);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // handled: back to sign-in
    // A network blip: try again in 20 s while the token still lives.
    window.setTimeout(() => void renewSession(), 20_000);
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
