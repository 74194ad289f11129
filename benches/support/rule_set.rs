//! The rule set both benchmarks run: ten rules of the kinds tenants write.

/// Ten rules of the kinds tenants write; `variant` renames the spans they look
/// for so that 50 rules are 50 distinct rules.
pub fn rule_set(count: usize) -> Vec<String> {
    let templates = [
        "export default trace.has('payment.charge_card{v}').and(trace.missing('payment.fraud_check{v}'));",
        "trace.has(s => s.name === 'GET /api/users{v}').and(trace.missing(s => s.name === 'auth.verify{v}'))",
        "export default trace.count(s => s.name === 'db.query{v}').gt(25);",
        "export default trace.where(s => s.service === 'payments{v}').has(s => s.status === 'ERROR');",
        "export default trace.has('lock.acquire{v}').followedBy(trace.has('lock.release{v}')).not();",
        "export default trace.has('login.failed{v}').and(trace.has('account.locked{v}')).within('5s');",
        "export default function (t) {\n  return t.filter(s => s.kind === 'SERVER' && s.attributes['http.status_code{v}'] >= 500)\n    .map(s => ({ message: '5xx on ' + s.name, severity: 'high', spans: [s] }));\n}",
        "export default rule({ name: 'pii{v}', severity: 'critical', when: trace.has(s => s.attributes['pii.accessed{v}'] === true), expect: trace.has('audit.log{v}') });",
        "export default rule({ name: 'no-bypass{v}', when: trace.has('payment.charge_card{v}'), never: trace.has('payment.bypass{v}') });",
        "export default t => t.spans.some(s => s.duration > 5000 && s.name === 'slow{v}') ? { message: 'slow span' } : false;",
    ];
    (0..count)
        .map(|i| {
            templates[i % templates.len()]
                .replace("{v}", &if i < templates.len() { String::new() } else { format!(".{}", i / templates.len()) })
        })
        .collect()
}
