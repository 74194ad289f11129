// The signed-in session: the token lives in sessionStorage (per tab), the tenant in localStorage.
// A tab opened without a session (a signal link opened in a new tab) borrows one from another
// open tab of this browser over a BroadcastChannel (same origin only): the token is never written
// to persistent storage, and once every tab is closed the next one signs in again.
import type { Info, Role, Token, UserInfo } from './types';

const KEY = 'fluo.session';
const TENANT_KEY = 'fluo.tenant';

export interface Session {
  token: string;
  expires_at: string;
  user: UserInfo;
  tenant: string;
}

let current: Session | null = load();
let info: Info | null = null;
let renewTimer: number | undefined;
const listeners = new Set<() => void>();

function usable(s: Session | null | undefined): s is Session {
  return Boolean(s && typeof s.token === 'string' && s.token && s.user && new Date(s.expires_at).getTime() > Date.now() + 5_000);
}

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return usable(s) ? s : null;
  } catch {
    return null;
  }
}

const tabs: BroadcastChannel | null = typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel('fluo.session');
tabs?.addEventListener('message', (e: MessageEvent) => {
  if ((e.data as { type?: string })?.type === 'need' && current) tabs.postMessage({ type: 'have', session: current });
});

/** Without a session, asks the other open tabs for theirs and waits up to `waitMs` for one. */
export function borrowSession(waitMs = 400): Promise<boolean> {
  if (current || !tabs) return Promise.resolve(Boolean(current));
  const channel = tabs;
  return new Promise((resolve) => {
    const onMessage = (e: MessageEvent) => {
      const msg = e.data as { type?: string; session?: Session };
      if (msg?.type !== 'have' || current || !usable(msg.session)) return;
      current = { token: msg.session.token, expires_at: msg.session.expires_at, user: msg.session.user, tenant: msg.session.tenant };
      sessionStorage.setItem(KEY, JSON.stringify(current));
      done();
    };
    const timer = window.setTimeout(() => done(), waitMs);
    function done(): void {
      window.clearTimeout(timer);
      channel.removeEventListener('message', onMessage);
      resolve(Boolean(current));
    }
    channel.addEventListener('message', onMessage);
    channel.postMessage({ type: 'need' });
  });
}

export function session(): Session | null {
  return current;
}

export function setSession(t: Token, tenant: string): void {
  current = { token: t.token, expires_at: t.expires_at, user: t.user, tenant };
  sessionStorage.setItem(KEY, JSON.stringify(current));
  localStorage.setItem(TENANT_KEY, tenant);
  listeners.forEach((f) => f());
}

export function renewed(t: Token): void {
  if (!current) return;
  current = { ...current, token: t.token, expires_at: t.expires_at, user: t.user ?? current.user };
  sessionStorage.setItem(KEY, JSON.stringify(current));
}

export function clearSession(): void {
  current = null;
  info = null;
  sessionStorage.removeItem(KEY);
  if (renewTimer !== undefined) window.clearTimeout(renewTimer);
  renewTimer = undefined;
  listeners.forEach((f) => f());
}

export function rememberedTenant(): string {
  return localStorage.getItem(TENANT_KEY) ?? '';
}

export function onSessionChange(f: () => void): void {
  listeners.add(f);
}

export function setInfo(i: Info | null): void {
  info = i;
}
export function getInfo(): Info | null {
  return info;
}

export function role(): Role {
  return current?.user.role ?? 'viewer';
}
export function canWrite(): boolean {
  const r = role();
  return r === 'admin' || r === 'editor';
}
export function isAdmin(): boolean {
  return role() === 'admin';
}
export const READ_ONLY_TITLE = 'Your role (viewer) can read but not change anything';

/** Calls `renew` a minute or two before the token expires (at least 10 s from now). */
export function scheduleRenew(renew: () => Promise<void>): void {
  if (renewTimer !== undefined) window.clearTimeout(renewTimer);
  if (!current) return;
  const left = new Date(current.expires_at).getTime() - Date.now();
  const delay = Math.max(10_000, Math.min(left - 120_000, left * 0.8));
  renewTimer = window.setTimeout(() => {
    renew().catch(() => undefined);
  }, delay);
}
