// Getting started: point OpenTelemetry at this FLUO.
import { loadInfo } from '../appstate';
import { h, mount } from '../dom';
import type { Ctx } from '../router';
import { isAdmin, session } from '../session';
import type { KeyCreated } from '../types';
import { codeBlock, loading, pageHeader, secretBox } from '../ui';
import { openKeyDialog } from './settings';

export function startPage(ctx: Ctx): () => void {
  let alive = true;
  let key = '<ingest key>';
  const body = h('div', null, loading());
  mount(ctx.root, pageHeader('Getting started', 'Send traces from your services to FLUO, then write rules over them.'), body);

  const render = async () => {
    const info = await loadInfo();
    if (!alive) return;
    const host = location.hostname || 'localhost';
    const grpc = info?.otlp_grpc_port ?? 4317;
    const http = info?.otlp_http_port ?? 4318;
    const tenant = session()?.tenant ?? info?.tenant ?? '<tenant>';
    const hdrKey = key.startsWith('<') ? key : key;
    const env = `export OTEL_SERVICE_NAME=checkout
export OTEL_TRACES_EXPORTER=otlp
export OTEL_EXPORTER_OTLP_ENDPOINT=http://${host}:${http}
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20${hdrKey}`;
    const collector = `exporters:
  otlp/fluo:
    endpoint: ${host}:${grpc}
    tls:
      insecure: true
    headers:
      authorization: "Bearer ${hdrKey}"
  otlphttp/fluo:
    endpoint: http://${host}:${http}
    headers:
      authorization: "Bearer ${hdrKey}"

service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/fluo]   # or otlphttp/fluo`;
    const demo = `fluo demo --api ${location.origin} --otlp http://${host}:${http} \\
  --operator-key "$FLUO_OPERATOR_KEY" --traces 300 --rate 20`;
    const keyArea = h('div', { class: 'key-area' });
    if (!key.startsWith('<')) keyArea.appendChild(secretBox('ingest key', key));
    else if (isAdmin()) {
      const b = h('button', { type: 'button', class: 'btn btn-primary' }, 'Create an ingest key');
      b.addEventListener('click', () =>
        openKeyDialog(
          (k: KeyCreated) => {
            key = k.key;
            void render();
          },
          { name: `ingest-${new Date().toISOString().slice(0, 10)}`, scopes: ['ingest'] },
        ),
      );
      keyArea.append(b, h('span', { class: 'muted small' }, ' The snippets below are filled in with it.'));
    } else keyArea.appendChild(h('p', { class: 'muted small' }, 'Ask an administrator for an ingest key (scope "ingest") and put it where the snippets say <ingest key>.'));

    mount(
      body,
      h(
        'ol',
        { class: 'steps' },
        h(
          'li',
          { class: 'card' },
          h('h2', null, '1. Get an ingest key'),
          h('p', null, 'Exporters authenticate with an API key that can only send spans. Your tenant is ', h('code', null, tenant), info ? [' on FLUO ', h('code', null, info.version)] : null, '.'),
          keyArea,
        ),
        h(
          'li',
          { class: 'card' },
          h('h2', null, '2. Point an OpenTelemetry SDK at FLUO'),
          h('p', null, 'Any OpenTelemetry SDK reads these variables. OTLP/HTTP is on port ', h('code', null, String(http)), ', OTLP/gRPC on ', h('code', null, String(grpc)), '. The space in the header is written %20.'),
          codeBlock(env, 'Environment variables'),
        ),
        h(
          'li',
          { class: 'card' },
          h('h2', null, '3. Or forward from an OpenTelemetry Collector'),
          h('p', null, 'Add an exporter to the Collector that already receives your traces:'),
          codeBlock(collector, 'Collector configuration (otelcol.yaml)'),
        ),
        h(
          'li',
          { class: 'card' },
          h('h2', null, '4. See signals within a minute'),
          h('p', null, 'No service to instrument yet? The demo creates a tenant with six rules from the templates and sends realistic traces, some of which break them. It needs the operator key the server was started with.'),
          codeBlock(demo, 'Demo command'),
          h('p', null, 'Then write your own: ', h('a', { href: '/rules/templates' }, 'start from a template'), ' and watch the ', h('a', { href: '/signals' }, 'signals inbox'), '.'),
        ),
      ),
    );
  };
  void render();
  return () => {
    alive = false;
  };
}
