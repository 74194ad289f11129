// Retry storms: more than 5 retried calls to one peer inside a single trace; one signal per peer.
export default function retryStorm(trace) {
  const retries = groupBy(trace.spans.filter(s => s.kind === "CLIENT" && s.attributes["http.request.resend_count"] > 0), "server.address");
  return Object.entries(retries)
    .filter(([, calls]) => calls.length > 5)
    .map(([peer, calls]) => ({ message: `${calls.length} retries to ${peer} in one request`, severity: "high", spans: calls, group: peer }));
}
