// CodeMirror 6 for rules: JavaScript, lint diagnostics from the server's compiler, completions from
// rule-sdk/fluo.d.ts and from the tenant's recent traces (span names, services, attribute keys).
import { EditorView, basicSetup } from 'codemirror';
import { EditorState, type Extension } from '@codemirror/state';
import { keymap } from '@codemirror/view';
import { indentWithTab } from '@codemirror/commands';
import { javascript, javascriptLanguage } from '@codemirror/lang-javascript';
import { linter, lintGutter, type Diagnostic } from '@codemirror/lint';
import type { Completion, CompletionContext, CompletionResult } from '@codemirror/autocomplete';
import { syntaxTree } from '@codemirror/language';
import dts from '../../rule-sdk/fluo.d.ts?raw';
import type { Vocabulary } from './types';

// ---- completions from the typings ----
interface Sdk { globals: Completion[]; members: Completion[]; fields: Completion[] }

function parseDts(text: string): Sdk {
  const globals: Completion[] = [];
  const members = new Map<string, Completion>();
  const fields: Completion[] = [];
  let doc = '';
  let inDoc = false;
  let iface: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('/**')) {
      inDoc = !line.endsWith('*/');
      doc = line.replace(/^\/\*\*/, '').replace(/\*\/$/, '').trim();
      continue;
    }
    if (inDoc) {
      if (line.endsWith('*/')) inDoc = false;
      doc += ' ' + line.replace(/^\*\/?/, '').replace(/\*\/$/, '').trim();
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^interface (\w+)/.exec(line))) {
      iface = m[1];
    } else if (line === '}') {
      iface = null;
    } else if ((m = /^declare (const|function) (\w+)(.*)$/.exec(line))) {
      globals.push({ label: m[2], type: m[1] === 'function' ? 'function' : 'variable', detail: m[3].replace(/;$/, '').slice(0, 80), info: doc.trim() || undefined, boost: 5 });
    } else if (iface && (m = /^(?:readonly\s+)?(\w+)(\??)(\(|:)(.*)$/.exec(line))) {
      const [, name, , kind, rest] = m;
      const c: Completion = { label: name, type: kind === '(' ? 'method' : 'property', detail: `${iface}${kind === '(' ? '(' + rest.split(')')[0] + ')' : ''}`.slice(0, 80), info: doc.trim() || undefined };
      if (iface === 'RuleSpec' || iface === 'WindowSpec' || iface === 'Violation' || iface === 'WindowSelection') {
        fields.push({ ...c, type: 'property', detail: `${iface} field` });
      }
      if (!members.has(name)) members.set(name, c);
    }
    if (!line.startsWith('/**')) doc = line.startsWith('*') ? doc : '';
  }
  const seen = new Set<string>();
  return { globals, members: [...members.values()], fields: fields.filter((f) => !seen.has(f.label) && seen.add(f.label)) };
}

const sdk = parseDts(dts);
let vocabulary: Vocabulary = { services: [], span_names: [], attribute_keys: [] };
export function setVocabulary(v: Vocabulary): void {
  vocabulary = v;
}

const CONSTANTS: Completion[] = [
  ...['critical', 'high', 'medium', 'low', 'info'].map((l) => ({ label: l, type: 'enum', detail: 'severity' })),
  ...['SERVER', 'CLIENT', 'INTERNAL', 'PRODUCER', 'CONSUMER'].map((l) => ({ label: l, type: 'enum', detail: 'span kind' })),
  ...['UNSET', 'OK', 'ERROR'].map((l) => ({ label: l, type: 'enum', detail: 'span status' })),
];

function stringCompletions(ctx: CompletionContext): CompletionResult | null {
  const node = syntaxTree(ctx.state).resolveInner(ctx.pos, -1);
  if (node.name !== 'String' && node.name !== 'TemplateString') return null;
  const from = node.from + 1;
  if (ctx.pos < from) return null;
  const before = ctx.state.sliceDoc(Math.max(0, node.from - 40), node.from);
  const attrContext = /attributes\s*\[\s*$/.test(before) || /groupBy\([^,]*,\s*$/.test(before);
  const options: Completion[] = [];
  if (attrContext) {
    options.push(...vocabulary.attribute_keys.map((k) => ({ label: k, type: 'property', detail: 'attribute key', boost: 2 })));
  } else {
    options.push(...vocabulary.span_names.map((k) => ({ label: k, type: 'text', detail: 'span name', boost: 2 })));
    options.push(...vocabulary.services.map((k) => ({ label: k, type: 'namespace', detail: 'service', boost: 1 })));
    options.push(...vocabulary.attribute_keys.map((k) => ({ label: k, type: 'property', detail: 'attribute key' })));
    options.push(...CONSTANTS);
  }
  if (options.length === 0) return null;
  return { from, options, validFor: /^[^"'`]*$/ };
}

function sdkCompletions(ctx: CompletionContext): CompletionResult | null {
  const node = syntaxTree(ctx.state).resolveInner(ctx.pos, -1);
  if (['String', 'TemplateString', 'LineComment', 'BlockComment'].includes(node.name)) return null;
  const member = ctx.matchBefore(/\.\w*$/);
  if (member) return { from: member.from + 1, options: sdk.members, validFor: /^\w*$/ };
  const word = ctx.matchBefore(/\w+$/);
  if (!word && !ctx.explicit) return null;
  return { from: word?.from ?? ctx.pos, options: [...sdk.globals, ...sdk.fields], validFor: /^\w*$/ };
}

// ---- diagnostics ----
export interface CompileProblem { message: string; line?: number; column?: number }
export type Compiler = (source: string, signal: AbortSignal) => Promise<CompileProblem | null>;

function toDiagnostic(view: EditorView, p: CompileProblem): Diagnostic {
  const doc = view.state.doc;
  const lineNo = Math.min(Math.max(p.line ?? 1, 1), doc.lines);
  const line = doc.line(lineNo);
  let from = p.column ? Math.min(line.from + p.column - 1, line.to) : line.from;
  let to = line.to;
  if (p.column) {
    const rest = line.text.slice(from - line.from);
    const word = /^\w+|^\S/.exec(rest);
    to = word ? from + word[0].length : Math.min(from + 1, line.to);
  }
  if (from === to && line.from < line.to) from = Math.max(line.from, to - 1);
  return { from, to, severity: 'error', message: p.message, source: 'fluo compiler' };
}

// CodeMirror's style-mod writes a <style> element into a Document, which `style-src 'self'` blocks;
// in a shadow root it uses a constructable stylesheet (adoptedStyleSheets), which CSP allows. So every
// editor lives in an open shadow root, and its look comes from EditorView.theme (same mechanism).
export function shadowMount(host: HTMLElement): { root: ShadowRoot; parent: HTMLElement } {
  const root = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
  const parent = document.createElement('div');
  root.replaceChildren(parent);
  return { root, parent };
}

const MONO = "ui-monospace, SFMono-Regular, 'SF Mono', Menlo, Consolas, 'Liberation Mono', monospace";
export const editorTheme = EditorView.theme({
  '&': { fontSize: '13px', backgroundColor: '#fff', color: '#1f2328' },
  '.cm-scroller': { fontFamily: MONO, lineHeight: '1.5' },
  '&.cm-focused': { outline: 'none', boxShadow: 'inset 0 0 0 2px rgba(59, 91, 219, 0.45)' },
  '.cm-gutters': { backgroundColor: '#f6f7f9', borderRight: '1px solid #dee2e6', color: '#8b939c' },
  '.cm-activeLineGutter': { backgroundColor: '#edf2ff' },
  '.cm-tooltip': { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", fontSize: '12.5px' },
  '.cm-tooltip-lint': { maxWidth: '520px' },
  '.cm-completionDetail': { color: '#6b7280', fontStyle: 'normal', marginLeft: '10px' },
  '.cm-completionInfo': { maxWidth: '360px', whiteSpace: 'normal' },
});
const ruleEditorSize = EditorView.theme({
  '&': { minHeight: '380px', maxHeight: '68vh' },
  '.cm-scroller': { overflow: 'auto', minHeight: '380px' },
});

export interface RuleEditorOptions {
  parent: HTMLElement;
  doc: string;
  readOnly: boolean;
  compile?: Compiler;
  onChange?: (doc: string) => void;
  label: string;
}

export function ruleEditor(opts: RuleEditorOptions): EditorView {
  const ext: Extension[] = [
    basicSetup,
    editorTheme,
    ruleEditorSize,
    EditorView.lineWrapping,
    keymap.of([indentWithTab]),
    javascript(),
    javascriptLanguage.data.of({ autocomplete: sdkCompletions }),
    javascriptLanguage.data.of({ autocomplete: stringCompletions }),
    EditorView.contentAttributes.of({ 'aria-label': opts.label }),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) opts.onChange?.(u.state.doc.toString());
    }),
    lintGutter(),
  ];
  if (opts.readOnly) ext.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  if (opts.compile) {
    const compile = opts.compile;
    let controller: AbortController | null = null;
    ext.push(
      linter(
        async (view) => {
          controller?.abort();
          controller = new AbortController();
          const source = view.state.doc.toString();
          try {
            const p = await compile(source, controller.signal);
            return p ? [toDiagnostic(view, p)] : [];
          } catch {
            return [];
          }
        },
        { delay: 600 },
      ),
    );
  }
  const { root, parent } = shadowMount(opts.parent);
  return new EditorView({ doc: opts.doc, extensions: ext, parent, root });
}

export function setDoc(view: EditorView, doc: string): void {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: doc } });
}
