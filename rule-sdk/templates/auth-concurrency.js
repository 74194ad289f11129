// Concurrency limit: the auth service never serves more than 50 requests at once (across traces).
export default window({
  name: "auth-concurrency",
  severity: "high",
  select: { service: "auth", kind: "server" },
  length: "10s",
  grace: "2s",
  check(spans) {
    const c = concurrency(spans);
    if (c.peak > 50) {
      return { message: `auth served ${c.peak} concurrent requests (limit 50)`, spans: c.spans.slice(0, 20), attributes: { peak: c.peak, at: c.at } };
    }
  },
});
