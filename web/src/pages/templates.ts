import { h, mount } from '../dom';
import type { Ctx } from '../router';
import { navigate } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { loadTemplates, templateSummary } from '../templates';
import { errorBox, loading, pageHeader } from '../ui';

export function templatesPage(ctx: Ctx): () => void {
  let alive = true;
  const body = h('div', null, loading('Loading templates…'));
  mount(
    ctx.root,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/rules' }, 'Rules'), ' / ', h('span', { 'aria-current': 'page' }, 'Templates')),
    pageHeader('Rule templates', 'Proven starting points. "Use" opens the editor with the template; nothing is saved until you save.'),
    body,
  );
  loadTemplates()
    .then((items) => {
      if (!alive) return;
      mount(
        body,
        h(
          'ul',
          { class: 'cards', role: 'list' },
          items.map((t) => {
            const use = h('button', { type: 'button', class: 'btn btn-primary', 'aria-label': `Use template: ${t.title}` }, 'Use');
            if (!canWrite()) {
              use.disabled = true;
              use.title = READ_ONLY_TITLE;
            }
            use.addEventListener('click', () => navigate(`/rules/new?template=${encodeURIComponent(t.id)}`));
            const form = /export default window\(/.test(t.source) ? 'window' : 'trace';
            return h(
              'li',
              { class: 'card template-card' },
              h('div', { class: 'template-head' }, h('h2', null, t.title), h('span', { class: 'tag' }, form)),
              h('p', { class: 'muted' }, templateSummary(t)),
              h('pre', { class: 'code code-preview', tabindex: 0, 'aria-label': `Source of ${t.title}` }, h('code', null, t.source.split('\n').slice(1).join('\n').trim())),
              h('div', { class: 'row' }, use, h('span', { class: 'muted small mono' }, t.id)),
            );
          }),
        ),
      );
    })
    .catch((e) => alive && mount(body, errorBox(e)));
  return () => {
    alive = false;
  };
}
