// A small OTLP/JSON trace for the Test panel: a checkout that charges a card without a fraud check.
function hex(n: number): string {
  let s = '';
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function sampleTrace(): string {
  const traceId = hex(16);
  const root = hex(8);
  const t = BigInt(Date.now() - 60_000) * 1_000_000n;
  const ns = (ms: number) => String(t + BigInt(ms) * 1_000_000n);
  const svc = (name: string) => ({ attributes: [{ key: 'service.name', value: { stringValue: name } }] });
  const doc = {
    resourceSpans: [
      {
        resource: svc('checkout'),
        scopeSpans: [
          {
            spans: [
              { traceId, spanId: root, name: 'POST /checkout', kind: 2, startTimeUnixNano: ns(0), endTimeUnixNano: ns(120), attributes: [{ key: 'http.route', value: { stringValue: '/checkout' } }, { key: 'http.response.status_code', value: { intValue: '200' } }] },
            ],
          },
        ],
      },
      {
        resource: svc('payments'),
        scopeSpans: [
          {
            spans: [
              { traceId, spanId: hex(8), parentSpanId: root, name: 'payment.charge_card', kind: 3, startTimeUnixNano: ns(40), endTimeUnixNano: ns(90), attributes: [{ key: 'amount', value: { intValue: '4200' } }, { key: 'currency', value: { stringValue: 'EUR' } }] },
            ],
          },
        ],
      },
    ],
  };
  return JSON.stringify(doc, null, 2);
}
