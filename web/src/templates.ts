// Rule templates: GET /api/v1/rules/templates, or the copies bundled from rule-sdk/templates/ when
// the server does not have that endpoint.
import { api } from './api';
import type { Template } from './types';

const bundled = import.meta.glob('../../rule-sdk/templates/*.js', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;

function titleOf(source: string, id: string): string {
  const first = source.split('\n')[0] ?? '';
  const m = /^\/\/\s*([^:]+)/.exec(first);
  return m ? m[1].trim() : id;
}

export function bundledTemplates(): Template[] {
  return Object.entries(bundled)
    .map(([path, source]) => {
      const id = path.split('/').pop()!.replace(/\.js$/, '');
      return { id, title: titleOf(source, id), source };
    })
    .sort((a, b) => a.title.localeCompare(b.title));
}

let cache: Template[] | null = null;
export async function loadTemplates(): Promise<Template[]> {
  if (cache) return cache;
  try {
    const r = await api.get<{ items: Template[] }>('/rules/templates');
    cache = r.items;
  } catch {
    cache = bundledTemplates();
  }
  return cache;
}

/** The template's one-line summary (after the title in its first comment). */
export function templateSummary(t: Template): string {
  const first = t.source.split('\n')[0] ?? '';
  const m = /^\/\/[^:]*:\s*(.+)$/.exec(first);
  return m ? m[1].trim() : '';
}
