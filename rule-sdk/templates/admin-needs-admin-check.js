// Admin endpoints need an admin check: a request to /admin/… is authorized as an administrator.
export default rule({
  name: "admin-needs-admin-check",
  severity: "critical",
  when: trace.has(s => s.kind === "SERVER" && String(s.attributes["http.route"] || "").startsWith("/admin")),
  expect: trace.has(s => s.name === "authz.check_admin"),
  message: "admin endpoint served without an admin check",
});
