import { api } from './api';
import { getInfo, setInfo } from './session';
import type { Info } from './types';

let loginMessage = '';
export function setLoginMessage(m: string): void {
  loginMessage = m;
}
export function takeLoginMessage(): string {
  const m = loginMessage;
  loginMessage = '';
  return m;
}

let pending: Promise<Info | null> | null = null;
/** /api/v1/info once per session (ports, principal); null if the server lacks it. */
export function loadInfo(): Promise<Info | null> {
  const have = getInfo();
  if (have) return Promise.resolve(have);
  if (!pending) {
    pending = api
      .get<Info>('/info')
      .then((i) => {
        setInfo(i);
        return i;
      })
      .catch(() => null)
      .finally(() => (pending = null));
  }
  return pending;
}
