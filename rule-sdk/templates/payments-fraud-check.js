// Payments need a fraud check: every card charge in a trace is preceded by a fraud check.
export default rule({
  name: "payments-fraud-check",
  severity: "critical",
  description: "every card charge is fraud-checked first",
  labels: { team: "payments" },
  when: trace.has(s => s.name === "payment.charge_card"),
  expect: trace.has(s => s.name === "payment.fraud_check"),
  message: "payment charged without a fraud check",
});
