// PII access needs an audit log: a span that reads personal data is accompanied by an audit record.
export default rule({
  name: "pii-needs-audit-log",
  severity: "high",
  description: "reads of personal data are audited",
  when: trace.has(s => s.attributes["data.classification"] === "pii"),
  expect: trace.has(s => s.name === "audit.log"),
  message: ({ spans }) => `personal data read by ${spans[0].service || "a service"} without an audit log`,
});
