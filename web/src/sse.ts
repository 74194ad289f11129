// Server-Sent Events over fetch(): EventSource cannot send an Authorization header.
import { session } from './session';

export interface SseEvent { event: string; data: string; id?: string }
export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface StreamOptions {
  path: string;
  onEvent: (e: SseEvent) => void;
  onState?: (s: StreamState, detail?: string) => void;
  onUnauthorized?: () => void;
}

/** Opens the stream and keeps it open (reconnecting with backoff) until the returned function is called. */
export function openStream(opts: StreamOptions): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let attempt = 0;
  let timer: number | undefined;

  const connect = async () => {
    if (stopped) return;
    opts.onState?.(attempt === 0 ? 'connecting' : 'reconnecting');
    controller = new AbortController();
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const token = session()?.token;
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      const res = await fetch(`/api/v1${opts.path}`, { headers, signal: controller.signal, cache: 'no-store' });
      if (res.status === 401) {
        stopped = true;
        opts.onState?.('closed', 'signed out');
        opts.onUnauthorized?.();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      attempt = 0;
      opts.onState?.('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let ev: SseEvent = { event: 'message', data: '' };
      let dataLines: string[] = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl: number;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
          if (line === '') {
            if (dataLines.length) {
              ev.data = dataLines.join('\n');
              try {
                opts.onEvent(ev);
              } catch (e) {
                console.error(e);
              }
            }
            ev = { event: 'message', data: '' };
            dataLines = [];
            continue;
          }
          if (line.startsWith(':')) continue; // keep-alive comment
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') ev.event = val;
          else if (field === 'data') dataLines.push(val);
          else if (field === 'id') ev.id = val;
        }
      }
      throw new Error('stream ended');
    } catch (e) {
      if (stopped) return;
      attempt++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempt - 1, 5));
      opts.onState?.('reconnecting', `${(e as Error).message}; retrying in ${Math.round(delay / 1000)} s`);
      timer = window.setTimeout(() => void connect(), delay);
    }
  };
  void connect();
  return () => {
    stopped = true;
    if (timer !== undefined) window.clearTimeout(timer);
    controller?.abort();
    opts.onState?.('closed');
  };
}
