// 5xx must be logged: a server answer with status 500 or above comes with an error report.
export default rule({
  name: "server-errors-logged",
  severity: "medium",
  when: trace.has(s => s.kind === "SERVER" && s.attributes["http.response.status_code"] >= 500),
  expect: trace.has(s => s.name === "log.error"),
  message: "a 5xx answer left no error log",
  // One signal per route, however many services and span names answer on it.
  group: ["http.route"],
});
