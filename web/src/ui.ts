// Shared pieces: badges, dialogs, toasts, copy buttons, empty/loading/error states.
import { errorMessage } from './api';
import { h, type Child } from './dom';
import { READ_ONLY_TITLE, canWrite } from './session';
import { STATUS_LABEL, type Status } from './types';

export function sevBadge(sev: string): HTMLElement {
  return h('span', { class: `badge sev sev-${sev}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), sev);
}

export function statusBadge(st: Status | string): HTMLElement {
  return h('span', { class: `badge status st-${st}` }, STATUS_LABEL[st as Status] ?? st);
}

export function pageHeader(title: string, subtitle?: Child, actions?: Child): HTMLElement {
  return h(
    'header',
    { class: 'page-header' },
    h('div', { class: 'page-title' }, h('h1', null, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    actions ? h('div', { class: 'page-actions' }, actions) : null,
  );
}

export function loading(text = 'Loading…'): HTMLElement {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function errorBox(e: unknown, retry?: () => void): HTMLElement {
  return h(
    'div',
    { class: 'alert alert-error', role: 'alert' },
    h('strong', null, 'Error: '),
    errorMessage(e),
    retry ? h('button', { class: 'btn btn-small', type: 'button', onclick: retry }, 'Retry') : null,
  );
}

export function emptyState(title: string, text: Child, action?: Child): HTMLElement {
  return h(
    'div',
    { class: 'empty' },
    h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, '◌'),
    h('h2', null, title),
    h('p', { class: 'muted' }, text),
    action ?? null,
  );
}

/** A button that is disabled, with an explanation, for read-only roles. */
export function writeButton(label: Child, attrs: Record<string, unknown>): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs }, label);
  if (!canWrite()) {
    b.disabled = true;
    b.title = READ_ONLY_TITLE;
  }
  return b;
}

// ---- toasts ----
let toastRegion: HTMLElement | null = null;
export function toast(text: string, kind: 'ok' | 'error' | 'info' = 'ok'): void {
  if (!toastRegion) {
    toastRegion = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toastRegion);
  }
  const t = h('div', { class: `toast toast-${kind}` }, text);
  toastRegion.appendChild(t);
  window.setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// ---- dialogs (native <dialog>: modal, focus stays inside, Escape closes) ----
export interface DialogHandle {
  dialog: HTMLDialogElement;
  close: () => void;
}

export function openDialog(
  title: string,
  body: Child,
  opts: { wide?: boolean; onClose?: () => void; initialFocus?: string } = {},
): DialogHandle {
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const dialog = h(
    'dialog',
    { class: `dialog${opts.wide ? ' dialog-wide' : ''}`, 'aria-labelledby': titleId },
    h(
      'div',
      { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Close dialog', onclick: () => close() }, '✕'),
    ),
    h('div', { class: 'dialog-body' }, body),
  );
  let closed = false;
  const previous = document.activeElement as HTMLElement | null;
  const close = () => {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    opts.onClose?.();
    previous?.focus?.();
  };
  dialog.addEventListener('close', close);
  document.body.appendChild(dialog);
  dialog.showModal();
  const focus = opts.initialFocus ? dialog.querySelector<HTMLElement>(opts.initialFocus) : null;
  (focus ?? dialog.querySelector<HTMLElement>('input, textarea, select, .dialog-body button'))?.focus();
  return { dialog, close };
}

export function confirmDialog(title: string, text: Child, confirmLabel: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    let answered = false;
    const ok = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirmLabel);
    const form = h(
      'form',
      { method: 'dialog', class: 'stack' },
      h('p', null, text),
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'),
        ok,
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      answered = true;
      resolve(true);
      d.close();
    });
    const d = openDialog(title, form, { onClose: () => (answered ? undefined : resolve(false)) });
    ok.focus();
  });
}

/** Asks for an optional (or required) one-line text, e.g. a note or a version message. */
export function promptDialog(
  title: string,
  label: string,
  opts: { confirmLabel: string; required?: boolean; value?: string; hint?: string; multiline?: boolean },
): Promise<string | null> {
  return new Promise((resolve) => {
    let answered = false;
    const id = `p-${Math.random().toString(36).slice(2)}`;
    const input = opts.multiline
      ? h('textarea', { id, rows: 3, required: opts.required ?? false })
      : h('input', { id, type: 'text', required: opts.required ?? false, autocomplete: 'off' });
    input.value = opts.value ?? '';
    const form = h(
      'form',
      { class: 'stack' },
      h('label', { for: id }, label),
      input,
      opts.hint ? h('p', { class: 'muted small' }, opts.hint) : null,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary' }, opts.confirmLabel),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      answered = true;
      resolve(input.value.trim());
      d.close();
    });
    const d = openDialog(title, form, { onClose: () => (answered ? undefined : resolve(null)) });
    input.focus();
  });
}

// ---- copying ----
export async function copyText(text: string, fallbackSelect?: HTMLElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackSelect) {
      const range = document.createRange();
      range.selectNodeContents(fallbackSelect);
      const sel = window.getSelection();
      sel?.removeAllRanges();
      sel?.addRange(range);
    }
    return false;
  }
}

export function copyButton(getText: () => string, target?: () => HTMLElement | undefined, label = 'Copy'): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn btn-small' }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(getText(), target?.());
    b.textContent = ok ? 'Copied' : 'Selected — press Ctrl+C';
    window.setTimeout(() => (b.textContent = label), 2000);
  });
  return b;
}

export function codeBlock(text: string, label: string): HTMLElement {
  const pre = h('pre', { class: 'code', tabindex: 0, 'aria-label': label }, h('code', null, text));
  return h('div', { class: 'code-wrap' }, h('div', { class: 'code-bar' }, h('span', { class: 'muted small' }, label), copyButton(() => text, () => pre)), pre);
}

/** A secret shown once, with a copy button and a warning. */
export function secretBox(what: string, secret: string): HTMLElement {
  const code = h('code', { class: 'secret-value', tabindex: 0 }, secret);
  return h(
    'div',
    { class: 'secret-box', role: 'region', 'aria-label': `New ${what}` },
    h('p', { class: 'secret-warning' }, h('strong', null, 'Copy this now. '), `The ${what} is shown only once; FLUO stores only its hash.`),
    h('div', { class: 'secret-row' }, code, copyButton(() => secret, () => code)),
  );
}

export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
}

export function keyVal(rows: [string, Child][]): HTMLElement {
  return h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}
