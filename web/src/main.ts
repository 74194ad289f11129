import './styles.css';
import { api, renewSession, setUnauthorizedHandler } from './api';
import { setLoginMessage } from './appstate';
import { h, mount } from './dom';
import { type Ctx, type Page, navigate, onRender, route, startRouter } from './router';
import { borrowSession, clearSession, isAdmin, scheduleRenew, session } from './session';
import { loginPage } from './pages/login';
import { rulesPage } from './pages/rules';
import { templatesPage } from './pages/templates';
import { signalsPage } from './pages/signals';
import { signalPage } from './pages/signal';
import { settingsPage } from './pages/settings';
import { startPage } from './pages/start';
import { emptyState, errorBox, loading } from './ui';

/** The editor (CodeMirror) loads on first use, keeping the first page light. */
const editorPage: Page = (ctx) => {
  let dead = false;
  let cleanup: (() => void) | void;
  mount(ctx.root, loading('Loading the editor…'));
  import('./pages/editor')
    .then((m) => {
      if (!dead) cleanup = m.editorPage(ctx);
    })
    .catch((e) => mount(ctx.root, errorBox(e)));
  return () => {
    dead = true;
    if (typeof cleanup === 'function') cleanup();
  };
};

route('/login', 'Sign in', loginPage, 'public');
route('/', 'Signals', (ctx) => void navigate('/signals' + (ctx.query.toString() ? `?${ctx.query}` : ''), { replace: true }));
route('/signals', 'Signals', signalsPage, 'user', '/signals');
route('/signals/:id', 'Signal', signalPage, 'user', '/signals');
route('/rules', 'Rules', rulesPage, 'user', '/rules');
route('/rules/templates', 'Rule templates', templatesPage, 'user', '/rules');
route('/rules/new', 'New rule', editorPage, 'user', '/rules');
route('/rules/:id', 'Rule', editorPage, 'user', '/rules');
route('/start', 'Getting started', startPage, 'user', '/start');
route('/settings', 'Settings', settingsPage, 'user', '/settings');

const app = document.getElementById('app')!;
let cleanup: (() => void) | void;
setUnauthorizedHandler((message) => {
  setLoginMessage(message);
  const back = location.pathname.startsWith('/login') ? '' : location.pathname + location.search;
  navigate('/login' + (back ? `?next=${encodeURIComponent(back)}` : ''), { replace: true });
});

async function signOut(): Promise<void> {
  try {
    await api.post('/auth/logout', {}, { noAuthRedirect: true });
  } catch {
    /* the session ends here either way */
  }
  clearSession();
  setLoginMessage('You are signed out.');
  navigate('/login', { replace: true });
}

const NAV: [string, string, string][] = [
  ['/signals', 'Signals', '⚑'],
  ['/rules', 'Rules', '⌘'],
  ['/start', 'Getting started', '➜'],
  ['/settings', 'Settings', '⚙'],
];

let shell: { main: HTMLElement; nav: HTMLElement; setActive: (nav: string) => void } | null = null;

function buildShell(): NonNullable<typeof shell> {
  const s = session()!;
  const main = h('main', { id: 'main', tabindex: -1 });
  const links = NAV.filter(([href]) => href !== '/settings' || isAdmin()).map(([href, label, icon]) =>
    h('a', { href, class: 'nav-link', 'data-nav': href }, h('span', { class: 'nav-icon', 'aria-hidden': 'true' }, icon), label),
  );
  const menuBtn = h('button', { type: 'button', class: 'menu-btn', 'aria-expanded': 'false', 'aria-controls': 'sidenav' }, h('span', { 'aria-hidden': 'true' }, '☰'), h('span', { class: 'sr-only' }, 'Menu'));
  const nav = h(
    'nav',
    { class: 'sidebar', id: 'sidenav', 'aria-label': 'Main' },
    h('a', { href: '/signals', class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'F'), 'FLUO'),
    h('div', { class: 'nav-links' }, links),
    h(
      'div',
      { class: 'account' },
      h('div', { class: 'account-row' }, h('span', { class: 'muted small' }, 'Tenant'), h('code', { class: 'small', title: s.tenant }, s.tenant)),
      h('div', { class: 'account-row' }, h('span', { class: 'account-email', title: s.user.email }, s.user.email)),
      h('div', { class: 'account-row' }, h('span', { class: `badge role role-${s.user.role}`, 'aria-label': `Role: ${s.user.role}` }, s.user.role)),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => void signOut() }, 'Sign out'),
    ),
  );
  menuBtn.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    menuBtn.setAttribute('aria-expanded', String(open));
  });
  nav.addEventListener('click', (ev) => {
    if ((ev.target as Element).closest('a')) {
      nav.classList.remove('open');
      menuBtn.setAttribute('aria-expanded', 'false');
    }
  });
  const topbar = h('header', { class: 'topbar' }, menuBtn, h('a', { href: '/signals', class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'F'), 'FLUO'), h('span', { class: `badge role role-${s.user.role}` }, s.user.role));
  mount(app, h('a', { class: 'skip-link', href: '#main' }, 'Skip to content'), h('div', { class: 'shell' }, topbar, nav, main));
  return {
    main,
    nav,
    setActive: (navKey: string) => {
      for (const a of links) {
        const on = a.dataset.nav === navKey;
        a.classList.toggle('active', on);
        if (on) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
      }
    },
  };
}

let shellFor = '';

onRender((r, c) => {
  if (typeof cleanup === 'function') {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
  }
  cleanup = undefined;
  const s = session();
  if (r && r.auth !== 'public' && !s) {
    const next = location.pathname + location.search;
    navigate('/login' + (next && next !== '/' ? `?next=${encodeURIComponent(next)}` : ''), { replace: true });
    return;
  }
  if (!r || r.auth === 'public' || !s) {
    shell = null;
    shellFor = '';
    const root = h('div', { class: 'public' });
    mount(app, root);
    document.title = `${r?.title ?? 'Not found'} · FLUO`;
    if (r) cleanup = r.page({ ...c, root });
    else mount(root, emptyState('Page not found', 'There is nothing at this address.', h('a', { href: '/signals', class: 'btn' }, 'Go to signals')));
    return;
  }
  const who = `${s.tenant}/${s.user.id}/${s.user.role}`;
  if (!shell || shellFor !== who) {
    shell = buildShell();
    shellFor = who;
    scheduleRenew(renewSession);
  }
  shell.setActive(r.nav ?? '');
  const root = h('div', { class: 'page' });
  mount(shell.main, root);
  document.title = `${r.title} · FLUO`;
  const ctx: Ctx = { ...c, root };
  cleanup = r.page(ctx);
  shell.main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});

// A tab opened without a session first asks the other tabs for theirs (session.ts).
void borrowSession().then(() => startRouter());
