// The signed-in session: the token lives in sessionStorage (per tab), the tenant id in localStorage.
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

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (!s.token || new Date(s.expires_at).getTime() <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
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
