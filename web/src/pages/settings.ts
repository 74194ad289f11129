// Settings (admins): API keys, users, notification channels (webhooks), their test send and delivery
// log, and the tenant's trace links and retention (which everyone may read).
import { api, errorMessage } from '../api';
import { h, mount } from '../dom';
import { fmtDate, fmtMinutes, fromLocalInput } from '../format';
import { TRACE_LINK_EXAMPLES, TRACE_LINK_PLACEHOLDERS } from '../links';
import type { Ctx } from '../router';
import { isAdmin, session } from '../session';
import { CHANNEL_KINDS, SEVERITIES, type ChannelKind, type Delivery, type KeyCreated, type KeyInfo, type RuleInfo, type TenantSettings, type UserInfo, type WebhookCreated, type WebhookInfo } from '../types';
import { confirmDialog, emptyState, errorBox, keyVal, loading, openDialog, pageHeader, secretBox, toast } from '../ui';

const SCOPES = ['ingest', 'read', 'write', 'admin'] as const;

function checkboxes(name: string, values: readonly string[], checked: string[] = []): { el: HTMLElement; values: () => string[] } {
  const boxes = values.map((v) => h('input', { type: 'checkbox', name, value: v, checked: checked.includes(v), id: `${name}-${v}` }));
  return {
    el: h('div', { class: 'checks' }, boxes.map((b, i) => h('label', { class: 'check', for: b.id }, b, values[i]))),
    values: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

function section(id: string, title: string, text: string, action: HTMLElement | null, body: HTMLElement): HTMLElement {
  return h(
    'section',
    { class: 'card settings-section', id, 'aria-labelledby': `${id}-title` },
    h('div', { class: 'section-head' }, h('div', null, h('h2', { id: `${id}-title` }, title), h('p', { class: 'muted small' }, text)), action),
    body,
  );
}

/** A button that, once the dialog is confirmed, DELETEs `path`, says `done` and calls `after`. */
function deleteButton(
  label: string,
  ariaLabel: string,
  confirm: { title: string; text: string; action: string },
  path: string,
  done: string,
  after: () => void,
): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'aria-label': ariaLabel }, label);
  button.addEventListener('click', async () => {
    if (!(await confirmDialog(confirm.title, confirm.text, confirm.action))) return;
    try {
      await api.del(path);
      toast(done);
      after();
    } catch (e) {
      toast(errorMessage(e), 'error');
    }
  });
  return button;
}

/**
 * Trace links and retention: an admin edits them (PUT /settings, the whole document), anyone
 * else reads them. `alive` tells whether the page is still shown.
 */
/** "90 min (1 h 30 min)": the number to type, and what it means when it is an hour or more. */
function minutesText(minutes: number): string {
  return minutes < 60 ? `${minutes} min` : `${minutes} min (${fmtMinutes(minutes)})`;
}

function traceLinksSection(alive: () => boolean): HTMLElement {
  const admin = isAdmin();
  const body = h('div', null, loading());
  const placeholders = TRACE_LINK_PLACEHOLDERS.map((p) => `{${p}}`);

  function examples(use?: (template: string) => void): HTMLElement {
    return h(
      'ul',
      { class: 'link-examples', 'aria-label': 'Example templates' },
      TRACE_LINK_EXAMPLES.map((e) =>
        h(
          'li',
          null,
          h('span', { class: 'small strong' }, e.backend, ': '),
          h('code', { class: 'small wrap' }, e.template),
          use ? [' ', h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': `Use the ${e.backend} example`, onclick: () => use(e.template) }, 'Use')] : null,
        ),
      ),
    );
  }

  function readOnly(st: TenantSettings): void {
    mount(
      body,
      keyVal([
        ['Trace link template', st.trace_link_template ? h('code', { class: 'wrap', id: 'trace-link-template' }, st.trace_link_template) : h('span', { class: 'muted' }, 'not set: signals link only within FLUO')],
        ['Trace retention', `${fmtMinutes(st.effective_trace_retention_minutes)}${st.trace_retention_minutes === null ? " (the server's default)" : ''}`],
      ]),
      h('p', { class: 'muted small' }, 'Only administrators can change these.'),
    );
  }

  function form(st: TenantSettings): void {
    const template = h('input', { id: 'st-template', type: 'text', inputmode: 'url', maxlength: 2048, spellcheck: 'false', autocomplete: 'off', placeholder: TRACE_LINK_EXAMPLES[0].template, 'aria-describedby': 'st-template-hint' });
    template.value = st.trace_link_template ?? '';
    const retention = h('input', { id: 'st-retention', type: 'number', min: 1, max: st.max_trace_retention_minutes, step: 1, placeholder: `default: ${st.default_trace_retention_minutes}`, 'aria-describedby': 'st-retention-hint' });
    retention.value = st.trace_retention_minutes === null ? '' : String(st.trace_retention_minutes);
    const err = h('div', { id: 'st-error', 'aria-live': 'assertive' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');
    const f = h(
      'form',
      { class: 'stack', novalidate: true, 'aria-label': 'Trace links and retention' },
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'st-template' }, 'Trace link template'),
        template,
        h(
          'div',
          { class: 'hint', id: 'st-template-hint' },
          h('p', null, 'An http(s) URL of your trace backend with ', h('code', null, '{trace_id}'), '; it may also use ', placeholders.slice(1).map((p, i) => [i ? ', ' : '', h('code', null, p)]), '. Times are Unix milliseconds (_ms) or seconds (_s). Empty: no link out.'),
          examples((t) => {
            template.value = t;
            template.focus();
          }),
        ),
      ),
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'st-retention' }, 'Trace retention (minutes)'),
        retention,
        h('span', { class: 'hint', id: 'st-retention-hint' }, `How long evaluated traces are kept for backtests and the console. Empty: the server's default, ${minutesText(st.default_trace_retention_minutes)}; at most ${minutesText(st.max_trace_retention_minutes)}. Now: ${fmtMinutes(st.effective_trace_retention_minutes)}.`),
      ),
      err,
      h('div', { class: 'row' }, save),
    );
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      mount(err);
      const minutes = retention.value.trim();
      if (minutes && !/^\d+$/.test(minutes)) {
        mount(err, h('div', { class: 'alert alert-error', role: 'alert' }, 'The retention is a whole number of minutes.'));
        retention.focus();
        return;
      }
      save.disabled = true;
      try {
        const next = await api.put<TenantSettings>('/settings', {
          trace_link_template: template.value.trim() || null,
          trace_retention_minutes: minutes ? Number(minutes) : null,
        });
        if (!alive()) return;
        toast('Trace link and retention saved');
        form(next);
      } catch (e) {
        mount(err, h('div', { class: 'alert alert-error', role: 'alert' }, errorMessage(e)));
        template.setAttribute('aria-invalid', String(/template/i.test(errorMessage(e))));
        retention.setAttribute('aria-invalid', String(/retention/i.test(errorMessage(e))));
      } finally {
        save.disabled = false;
      }
    });
    mount(body, f);
  }

  async function load(): Promise<void> {
    try {
      const st = await api.get<TenantSettings>('/settings');
      if (!alive()) return;
      if (admin) form(st);
      else readOnly(st);
    } catch (e) {
      if (alive()) mount(body, errorBox(e, () => void load()));
    }
  }
  void load();
  return section(
    'links',
    'Trace links and retention',
    'Where your own trace backend shows a trace (a signal links to it, notifications carry it), and how long FLUO keeps evaluated traces.',
    null,
    body,
  );
}

export function settingsPage(ctx: Ctx): () => void {
  let alive = true;
  if (!isAdmin()) {
    mount(
      ctx.root,
      pageHeader('Settings'),
      traceLinksSection(() => alive),
      emptyState('Administrators only', `API keys, users and webhooks are managed by the tenant's administrators. You are signed in as ${session()?.user.role ?? 'a viewer'}.`, h('a', { href: '/start', class: 'btn' }, 'Getting started')),
    );
    return () => {
      alive = false;
    };
  }
  const keysBody = h('div', null, loading());
  const usersBody = h('div', null, loading());
  const hooksBody = h('div', null, loading());

  const newKey = h('button', { type: 'button', class: 'btn btn-primary' }, 'Create API key');
  const newUser = h('button', { type: 'button', class: 'btn btn-primary' }, 'Add user');
  const newHook = h('button', { type: 'button', class: 'btn btn-primary' }, 'Add channel');

  mount(
    ctx.root,
    pageHeader('Settings', 'Credentials, people and notifications of this tenant.', h('nav', { class: 'row', 'aria-label': 'Sections' }, h('a', { href: '#keys', class: 'btn btn-ghost btn-small' }, 'API keys'), h('a', { href: '#users', class: 'btn btn-ghost btn-small' }, 'Users'), h('a', { href: '#webhooks', class: 'btn btn-ghost btn-small' }, 'Notifications'), h('a', { href: '#links', class: 'btn btn-ghost btn-small' }, 'Trace links'))),
    section('keys', 'API keys', 'For OpenTelemetry exporters (ingest) and automation (read, write, admin). Secrets are shown once.', newKey, keysBody),
    section('users', 'Users', 'People who sign in to this console. Admin: everything; editor: rules and signals; viewer: read only.', newUser, usersBody),
    section('webhooks', 'Notifications', 'Group events (new, regressed, status changes, rates, reminders) go to your chat, paging and alerting tools, each with a link to the group.', newHook, hooksBody),
    traceLinksSection(() => alive),
  );
  // The in-page section links must not go through the router.
  for (const a of ctx.root.querySelectorAll<HTMLAnchorElement>('a[href^="#"]')) {
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      const t = document.getElementById(a.getAttribute('href')!.slice(1));
      t?.scrollIntoView({ behavior: 'smooth' });
      t?.querySelector<HTMLElement>('h2')?.setAttribute('tabindex', '-1');
      t?.querySelector<HTMLElement>('h2')?.focus({ preventScroll: true });
    });
  }

  // ---- keys ----
  async function loadKeys(): Promise<void> {
    try {
      const { items } = await api.get<{ items: KeyInfo[] }>('/keys');
      if (!alive) return;
      items.sort((a, b) => b.created_at.localeCompare(a.created_at));
      mount(
        keysBody,
        items.length
          ? h(
              'div',
              { class: 'table-scroll' },
              h(
                'table',
                { class: 'table stack-mobile' },
                h('caption', { class: 'sr-only' }, 'API keys'),
                h('thead', null, h('tr', null, ['Name', 'Scopes', 'Created', 'Expires', 'Last used', ''].map((c) => h('th', { scope: 'col' }, c)))),
                h(
                  'tbody',
                  null,
                  items.map((k) => {
                    const expired = k.expires_at && Date.parse(k.expires_at) < Date.now();
                    const revoke = deleteButton(
                      'Revoke',
                      `Revoke key ${k.name}`,
                      { title: `Revoke “${k.name}”?`, text: 'Anything using this key is refused from its next request on. This cannot be undone.', action: 'Revoke key' },
                      `/keys/${encodeURIComponent(k.id)}`,
                      `Revoked “${k.name}”`,
                      () => void loadKeys(),
                    );
                    return h(
                      'tr',
                      null,
                      h('th', { scope: 'row', 'data-label': 'Name' }, k.name, h('div', { class: 'muted small mono' }, k.id)),
                      h('td', { 'data-label': 'Scopes' }, k.scopes.map((s) => h('span', { class: 'tag' }, s))),
                      h('td', { 'data-label': 'Created', class: 'small' }, fmtDate(k.created_at)),
                      h('td', { 'data-label': 'Expires', class: `small${expired ? ' text-danger' : ''}` }, k.expires_at ? `${fmtDate(k.expires_at)}${expired ? ' (expired)' : ''}` : 'never'),
                      h('td', { 'data-label': 'Last used', class: 'small' }, k.last_used_at ? fmtDate(k.last_used_at) : 'never'),
                      h('td', { 'data-label': 'Actions' }, revoke),
                    );
                  }),
                ),
              ),
            )
          : emptyState('No API keys', 'Create an ingest key for your OpenTelemetry Collector or SDKs.'),
      );
    } catch (e) {
      if (alive) mount(keysBody, errorBox(e, () => void loadKeys()));
    }
  }

  newKey.addEventListener('click', () => openKeyDialog(() => void loadKeys()));

  // ---- users ----
  async function loadUsers(): Promise<void> {
    try {
      const { items } = await api.get<{ items: UserInfo[] }>('/users');
      if (!alive) return;
      const me = session()?.user.id;
      mount(
        usersBody,
        items.length
          ? h(
              'div',
              { class: 'table-scroll' },
              h(
                'table',
                { class: 'table stack-mobile' },
                h('caption', { class: 'sr-only' }, 'Users'),
                h('thead', null, h('tr', null, ['Email', 'Role', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)))),
                h(
                  'tbody',
                  null,
                  items.map((u) => {
                    const del = deleteButton(
                      'Delete',
                      `Delete user ${u.email}`,
                      { title: `Delete ${u.email}?`, text: 'Their sessions stop working at once.', action: 'Delete user' },
                      `/users/${encodeURIComponent(u.id)}`,
                      `Deleted ${u.email}`,
                      () => void loadUsers(),
                    );
                    if (u.id === me) {
                      del.disabled = true;
                      del.title = 'You cannot delete yourself';
                    }
                    return h(
                      'tr',
                      null,
                      h('th', { scope: 'row', 'data-label': 'Email' }, u.email, u.id === me ? h('span', { class: 'muted small' }, ' (you)') : null),
                      h('td', { 'data-label': 'Role' }, h('span', { class: `badge role role-${u.role}` }, u.role)),
                      h('td', { 'data-label': 'Created', class: 'small' }, fmtDate(u.created_at)),
                      h('td', { 'data-label': 'Actions' }, del),
                    );
                  }),
                ),
              ),
            )
          : emptyState('No users', 'Add the people who work on rules and signals.'),
      );
    } catch (e) {
      if (alive) mount(usersBody, errorBox(e, () => void loadUsers()));
    }
  }

  newUser.addEventListener('click', () => {
    const email = h('input', { id: 'nu-email', type: 'email', required: true, autocomplete: 'off' });
    const password = h('input', { id: 'nu-password', type: 'password', required: true, minlength: 12, autocomplete: 'new-password' });
    const role = h('select', { id: 'nu-role' }, ['viewer', 'editor', 'admin'].map((r) => h('option', { value: r }, r)));
    const err = h('div', { role: 'alert' });
    const form = h(
      'form',
      { class: 'stack' },
      h('div', { class: 'field' }, h('label', { for: 'nu-email' }, 'Email'), email),
      h('div', { class: 'field' }, h('label', { for: 'nu-password' }, 'Initial password'), password, h('span', { class: 'hint' }, 'At least 12 characters. Share it safely.')),
      h('div', { class: 'field' }, h('label', { for: 'nu-role' }, 'Role'), role),
      err,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'), h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add user')),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const u = await api.post<UserInfo>('/users', { email: email.value.trim(), password: password.value, role: role.value });
        toast(`Added ${u.email} (${u.role})`);
        d.close();
        void loadUsers();
      } catch (e) {
        mount(err, h('div', { class: 'alert alert-error' }, errorMessage(e)));
      }
    });
    const d = openDialog('Add user', form);
  });

  // ---- webhooks ----
  let rules: RuleInfo[] = [];
  async function loadHooks(): Promise<void> {
    try {
      const [{ items }, rs] = await Promise.all([api.get<{ items: WebhookInfo[] }>('/webhooks'), api.get<{ items: RuleInfo[] }>('/rules').catch(() => ({ items: [] as RuleInfo[] }))]);
      if (!alive) return;
      rules = rs.items;
      const ruleName = (id: string) => rules.find((r) => r.id === id || r.name === id)?.name ?? id;
      mount(
        hooksBody,
        items.length
          ? h(
              'ul',
              { class: 'hook-list' },
              items.map((w) => {
                const log = h('div', { class: 'deliveries' });
                const logBtn = h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false' }, 'Delivery log');
                const testBtn = h('button', { type: 'button', class: 'btn btn-small' }, 'Send test');
                testBtn.addEventListener('click', async () => {
                  testBtn.disabled = true;
                  try {
                    const d = await api.post<Delivery>(`/webhooks/${encodeURIComponent(w.id)}/test`, {});
                    toast(d.delivered ? `Test delivered to ${w.name || w.url}` : `Test not delivered: ${d.error ?? 'not delivered'}`, d.delivered ? 'ok' : 'error');
                    if (logBtn.getAttribute('aria-expanded') === 'true') await showLog();
                  } catch (e) {
                    toast(errorMessage(e), 'error');
                  } finally {
                    testBtn.disabled = false;
                  }
                });
                logBtn.addEventListener('click', async () => {
                  if (logBtn.getAttribute('aria-expanded') === 'true') {
                    mount(log);
                    logBtn.setAttribute('aria-expanded', 'false');
                    return;
                  }
                  logBtn.setAttribute('aria-expanded', 'true');
                  await showLog();
                });
                async function showLog(): Promise<void> {
                  mount(log, loading());
                  try {
                    const { items: ds } = await api.get<{ items: Delivery[] }>(`/webhooks/${encodeURIComponent(w.id)}/deliveries`);
                    mount(
                      log,
                      ds.length
                        ? h(
                            'table',
                            { class: 'table table-compact stack-mobile' },
                            h('caption', { class: 'sr-only' }, `Deliveries to ${w.url}`),
                            h('thead', null, h('tr', null, ['When', 'Signal', 'Attempt', 'Result'].map((c) => h('th', { scope: 'col' }, c)))),
                            h(
                              'tbody',
                              null,
                              ds.map((d) =>
                                h(
                                  'tr',
                                  null,
                                  h('td', { 'data-label': 'When', class: 'small' }, fmtDate(d.at)),
                                  h('td', { 'data-label': 'Signal' }, d.signal_id === 'test' ? h('span', { class: 'muted small' }, 'test send') : h('a', { href: `/signals/${encodeURIComponent(d.signal_id)}`, class: 'mono small' }, d.signal_id)),
                                  h('td', { 'data-label': 'Attempt' }, String(d.attempt)),
                                  h('td', { 'data-label': 'Result' }, h('span', { class: `badge ${d.delivered ? 'badge-ok' : 'badge-danger'}` }, d.delivered ? 'delivered' : 'not delivered'), d.error ? h('div', { class: 'muted small' }, d.error) : null),
                                ),
                              ),
                            ),
                          )
                        : h('p', { class: 'muted small' }, 'No deliveries yet.'),
                    );
                  } catch (e) {
                    mount(log, errorBox(e));
                  }
                }
                const del = deleteButton(
                  'Delete',
                  `Delete webhook ${w.url}`,
                  { title: 'Delete this webhook?', text: `${w.url} stops receiving signals.`, action: 'Delete webhook' },
                  `/webhooks/${encodeURIComponent(w.id)}`,
                  'Webhook deleted',
                  () => void loadHooks(),
                );
                return h(
                  'li',
                  { class: 'hook' },
                  h(
                    'div',
                    { class: 'hook-head' },
                    h(
                      'div',
                      null,
                      h('div', null, h('span', { class: 'badge' }, CHANNEL_KINDS.find((k) => k.kind === w.kind)?.label ?? w.kind), ' ', w.name ? h('strong', null, w.name) : null),
                      h('code', { class: 'small' }, w.url),
                      h(
                        'div',
                        { class: 'muted small' },
                        `Severities: ${w.severities.length ? w.severities.join(', ') : 'all'} · Rules: ${w.rules.length ? w.rules.map(ruleName).join(', ') : 'all'} · Services: ${w.services.length ? w.services.join(', ') : 'all'}` +
                          (w.labels && Object.keys(w.labels).length ? ` · Labels: ${Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(', ')}` : '') +
                          (w.throttle_minutes ? ` · at most once per ${w.throttle_minutes} min per group` : '') +
                          (w.repeat_minutes ? ` · reminders every ${w.repeat_minutes} min` : '') +
                          (w.header_names.length ? ` · headers: ${w.header_names.join(', ')}` : '') +
                          ` · created ${fmtDate(w.created_at)}`,
                      ),
                    ),
                    h('div', { class: 'row' }, testBtn, logBtn, del),
                  ),
                  log,
                );
              }),
            )
          : emptyState('No channels', 'Send group events to Slack, PagerDuty, Alertmanager or your own endpoint.'),
      );
    } catch (e) {
      if (alive) mount(hooksBody, errorBox(e, () => void loadHooks()));
    }
  }

  newHook.addEventListener('click', () => {
    const kind = h('select', { id: 'nh-kind' }, CHANNEL_KINDS.map((k) => h('option', { value: k.kind }, k.label)));
    const name = h('input', { id: 'nh-name', type: 'text', maxlength: 100, placeholder: 'payments on-call', autocomplete: 'off' });
    const url = h('input', { id: 'nh-url', type: 'url', required: true, placeholder: CHANNEL_KINDS[0].placeholder, autocomplete: 'off' });
    const routingKey = h('input', { id: 'nh-routing-key', type: 'password', maxlength: 128, autocomplete: 'off' });
    const routingField = h('div', { class: 'field', hidden: true }, h('label', { for: 'nh-routing-key' }, 'PagerDuty routing key'), routingKey, h('span', { class: 'hint' }, 'The integration key of an Events API v2 integration; stored, never shown again.'));
    const services = h('input', { id: 'nh-services', type: 'text', placeholder: 'payments, checkout', autocomplete: 'off' });
    const labels = h('input', { id: 'nh-labels', type: 'text', placeholder: 'team=payments, tier=1', autocomplete: 'off', spellcheck: 'false' });
    const throttle = h('input', { id: 'nh-throttle', type: 'number', min: 1, max: 10080, placeholder: 'none' });
    const repeat = h('input', { id: 'nh-repeat', type: 'number', min: 1, max: 10080, placeholder: 'none' });
    const headers = h('textarea', { id: 'nh-headers', rows: 2, placeholder: 'x-api-key: …', autocomplete: 'off', spellcheck: 'false' });
    kind.addEventListener('change', () => {
      const k = CHANNEL_KINDS.find((c) => c.kind === kind.value) ?? CHANNEL_KINDS[0];
      url.placeholder = k.placeholder;
      routingField.hidden = k.kind !== 'pagerduty';
      routingKey.required = k.kind === 'pagerduty';
      if (k.kind === 'alertmanager' && !repeat.value) repeat.value = '60';
    });
    const sev = checkboxes('nh-sev', SEVERITIES);
    const ruleBoxes = checkboxes('nh-rule', rules.map((r) => r.name));
    const err = h('div', { role: 'alert' });
    const body = h('div');
    const form = h(
      'form',
      { class: 'stack' },
      h('div', { class: 'field' }, h('label', { for: 'nh-kind' }, 'Kind'), kind),
      h('div', { class: 'field' }, h('label', { for: 'nh-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'nh-url' }, 'URL'), url, h('span', { class: 'hint' }, 'https:// or http://; for Alertmanager its base URL.')),
      routingField,
      h('fieldset', null, h('legend', null, 'Severities (none checked: all)'), sev.el),
      h('div', { class: 'field' }, h('label', { for: 'nh-services' }, 'Services'), services, h('span', { class: 'hint' }, 'Comma-separated; empty: every service.')),
      h('div', { class: 'field' }, h('label', { for: 'nh-labels' }, 'Rule labels'), labels, h('span', { class: 'hint' }, 'name=text, comma-separated: only groups whose rule has all of them (rule({labels})); empty: any rule.')),
      h('div', { class: 'field' }, h('label', { for: 'nh-throttle' }, 'Throttle (minutes)'), throttle, h('span', { class: 'hint' }, 'At most one "fires" notification per group in this time; status changes always go.')),
      h('div', { class: 'field' }, h('label', { for: 'nh-repeat' }, 'Remind every (minutes)'), repeat, h('span', { class: 'hint' }, 'While a group stays open. Alertmanager: keep it below 180.')),
      h('div', { class: 'field' }, h('label', { for: 'nh-headers' }, 'Request headers'), headers, h('span', { class: 'hint' }, 'One "name: value" per line (an API key, a bearer token); stored, never shown again.')),
      rules.length ? h('fieldset', null, h('legend', null, 'Rules (none checked: all)'), ruleBoxes.el) : null,
      err,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'), h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add channel')),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const names = ruleBoxes.values();
        const k = kind.value as ChannelKind;
        const minutes = (input: HTMLInputElement) => (input.value ? Number(input.value) : undefined);
        const w = await api.post<WebhookCreated>('/webhooks', {
          url: url.value.trim(),
          kind: k,
          name: name.value.trim(),
          severities: sev.values(),
          rules: rules.filter((r) => names.includes(r.name)).map((r) => r.id),
          services: services.value.split(',').map((s) => s.trim()).filter(Boolean),
          labels: pairs(labels.value, ',', '='),
          routing_key: k === 'pagerduty' ? routingKey.value.trim() : undefined,
          throttle_minutes: minutes(throttle),
          repeat_minutes: minutes(repeat),
          headers: pairs(headers.value, '\n', ':'),
        });
        mount(body, secretBox('signing secret', w.secret), h('p', { class: 'muted small' }, 'Verify x-fluo-signature = sha256=HMAC(secret, "{x-fluo-timestamp}.{body}").'), h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => d.close() }, 'Done')));
        body.querySelector<HTMLElement>('.secret-value')?.focus();
        void loadHooks();
      } catch (e) {
        mount(err, h('div', { class: 'alert alert-error' }, errorMessage(e)));
      }
    });
    body.appendChild(form);
    const d = openDialog('Add notification channel', body);
  });

  void loadKeys();
  void loadUsers();
  void loadHooks();
  return () => {
    alive = false;
  };
}

/** The key creation dialog (also used by Getting started, preset to an ingest key). */
export function openKeyDialog(onCreated: (k: KeyCreated) => void, preset: { name?: string; scopes?: string[] } = {}): void {
  const name = h('input', { id: 'nk-name', type: 'text', required: true, autocomplete: 'off', placeholder: 'collector-prod' });
  name.value = preset.name ?? '';
  const scopes = checkboxes('nk-scope', SCOPES, preset.scopes ?? ['ingest']);
  const expires = h('input', { id: 'nk-expires', type: 'datetime-local' });
  const err = h('div', { role: 'alert' });
  const body = h('div');
  const form = h(
    'form',
    { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'nk-name' }, 'Name'), name),
    h('fieldset', null, h('legend', null, 'Scopes'), scopes.el, h('span', { class: 'hint' }, 'ingest: send OTLP only · read · write · admin (implies all)')),
    h('div', { class: 'field' }, h('label', { for: 'nk-expires' }, 'Expires (optional)'), expires),
    err,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'), h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create key')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const sc = scopes.values();
    if (!name.value.trim() || sc.length === 0) {
      mount(err, h('div', { class: 'alert alert-error' }, !name.value.trim() ? 'Give the key a name.' : 'Pick at least one scope.'));
      return;
    }
    try {
      const k = await api.post<KeyCreated>('/keys', { name: name.value.trim(), scopes: sc, expires_at: fromLocalInput(expires.value) ?? undefined });
      mount(
        body,
        h('p', null, 'Key ', h('strong', null, k.name), ' created with scopes ', k.scopes.join(', '), '.'),
        secretBox('API key', k.key),
        h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => d.close() }, 'Done')),
      );
      body.querySelector<HTMLElement>('.secret-value')?.focus();
      onCreated(k);
    } catch (e) {
      mount(err, h('div', { class: 'alert alert-error' }, errorMessage(e)));
    }
  });
  body.appendChild(form);
  const d = openDialog('Create API key', body);
}

/** `name<kv>value` items separated by `items` (a name without `kv` gets an empty value, which the server refuses with its reason). */
function pairs(text: string, items: string, kv: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(items)
      .map((item) => item.trim())
      .filter(Boolean)
      .map((item) => {
        const at = item.indexOf(kv);
        return at < 0 ? [item, ''] : [item.slice(0, at).trim(), item.slice(at + 1).trim()];
      }),
  );
}
