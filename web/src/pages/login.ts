import { ApiError, api, errorMessage } from '../api';
import { loadInfo, takeLoginMessage } from '../appstate';
import { h, mount } from '../dom';
import { type Ctx, navigate } from '../router';
import { rememberedTenant, setSession } from '../session';
import type { Token } from '../types';

export function loginPage(ctx: Ctx): void {
  const message = takeLoginMessage() || (ctx.query.get('expired') ? 'Your session has ended. Please sign in again.' : '');
  const tenant = h('input', { id: 'login-tenant', name: 'tenant', type: 'text', required: true, autocomplete: 'organization', spellcheck: 'false' });
  tenant.value = ctx.query.get('tenant') ?? rememberedTenant();
  const email = h('input', { id: 'login-email', name: 'email', type: 'email', required: true, autocomplete: 'username' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const status = h('div', { class: 'form-status', role: 'alert', 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  if (message) mount(status, h('div', { class: 'alert alert-info' }, message));

  const form = h(
    'form',
    { class: 'login-card', 'aria-labelledby': 'login-title', novalidate: true },
    h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'F'), 'FLUO'),
    h('h1', { id: 'login-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Trace rules and their signals, for your tenant.'),
    status,
    h('div', { class: 'field' }, h('label', { for: 'login-tenant' }, 'Tenant (name or ID)'), tenant),
    h('div', { class: 'field' }, h('label', { for: 'login-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const missing = [tenant, email, password].find((i) => !i.value.trim());
    if (missing) {
      mount(status, h('div', { class: 'alert alert-error' }, `Please fill in ${missing === tenant ? 'the tenant' : missing === email ? 'your email' : 'your password'}.`));
      missing.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    mount(status);
    try {
      const t = await api.post<Token>(
        '/auth/login',
        { tenant: tenant.value.trim(), email: email.value.trim(), password: password.value },
        { noAuthRedirect: true, token: '' },
      );
      setSession(t, tenant.value.trim());
      await loadInfo();
      const next = ctx.query.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/signals', { replace: true });
    } catch (e) {
      const text =
        e instanceof ApiError && e.status === 401
          ? 'Sign-in failed: the tenant, email or password is wrong.'
          : e instanceof ApiError && e.status === 429
            ? `Too many failed attempts. ${e.message}`
            : errorMessage(e);
      mount(status, h('div', { class: 'alert alert-error' }, text));
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  mount(ctx.root, h('div', { class: 'login-wrap' }, form, h('p', { class: 'muted small login-foot' }, 'No account? Ask your tenant administrator.')));
  (tenant.value ? email : tenant).focus();
}
