//! The rule templates a tenant can start from (`rule-sdk/templates/*.js`),
//! embedded in the binary: `fluo demo` installs them, and tests compile each.

/// One template: an id (also the rule name `fluo demo` gives it), a title and the source.
pub struct Template {
    pub id: &'static str,
    pub title: &'static str,
    pub source: &'static str,
}

pub const TEMPLATES: &[Template] = &[
    Template {
        id: "payments-fraud-check",
        title: "Payments need a fraud check",
        source: include_str!("../../rule-sdk/templates/payments-fraud-check.js"),
    },
    Template {
        id: "pii-needs-audit-log",
        title: "PII access needs an audit log",
        source: include_str!("../../rule-sdk/templates/pii-needs-audit-log.js"),
    },
    Template {
        id: "server-errors-logged",
        title: "5xx answers must be logged",
        source: include_str!("../../rule-sdk/templates/server-errors-logged.js"),
    },
    Template {
        id: "admin-needs-admin-check",
        title: "Admin endpoints need an admin check",
        source: include_str!("../../rule-sdk/templates/admin-needs-admin-check.js"),
    },
    Template { id: "retry-storm", title: "Retry storms", source: include_str!("../../rule-sdk/templates/retry-storm.js") },
    Template {
        id: "auth-concurrency",
        title: "Concurrency limit (window rule)",
        source: include_str!("../../rule-sdk/templates/auth-concurrency.js"),
    },
];
