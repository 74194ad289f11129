// History-API routing: /rules, /rules/:id, /signals/:id …; links with href="/…" are intercepted.

export interface Ctx {
  root: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  path: string;
}
export type Page = (ctx: Ctx) => void | (() => void);

interface Route {
  re: RegExp;
  keys: string[];
  page: Page;
  title: string;
  auth: 'public' | 'user' | 'admin';
  nav?: string;
}

const routes: Route[] = [];
let renderer: (route: Route | null, ctx: Omit<Ctx, 'root'>) => void = () => undefined;

export function route(pattern: string, title: string, page: Page, auth: Route['auth'] = 'user', nav?: string): void {
  const keys: string[] = [];
  const re = new RegExp(
    '^' + pattern.replace(/\/:([a-z]+)/g, (_m, k: string) => {
      keys.push(k);
      return '/([^/]+)';
    }) + '/?$',
  );
  routes.push({ re, keys, page, title, auth, nav: nav ?? pattern });
}

export function match(path: string): { route: Route; params: Record<string, string> } | null {
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { route: r, params };
    }
  }
  return null;
}

export function onRender(f: typeof renderer): void {
  renderer = f;
}

export function render(): void {
  const path = location.pathname;
  const m = match(path);
  renderer(m?.route ?? null, { params: m?.params ?? {}, query: new URLSearchParams(location.search), path });
}

let leaveGuard: (() => boolean) | null = null;

/** A page with unsaved work sets a guard: in-app navigation asks it first (false: stay). */
export function setLeaveGuard(guard: () => boolean): void {
  leaveGuard = guard;
}
export function clearLeaveGuard(guard: () => boolean): void {
  if (leaveGuard === guard) leaveGuard = null;
}

export function navigate(url: string, opts: { replace?: boolean } = {}): void {
  if (leaveGuard && !leaveGuard()) return;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

/** Updates the query string without re-rendering (filters kept in the URL). */
export function setQuery(params: URLSearchParams): void {
  const q = params.toString();
  history.replaceState(null, '', location.pathname + (q ? `?${q}` : ''));
}

export function startRouter(): void {
  window.addEventListener('popstate', render);
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/')) return;
    ev.preventDefault();
    navigate(href);
  });
  render();
}

export type { Route };
