//! Identity hardening against `fluo serve` on loopback: times a client sends
//! are bounded (a far-future key expiry used to make every later key listing
//! panic), sign-in is bounded before any hashing and throttled per client, not
//! per account, sessions have an absolute lifetime, the data directory is
//! private, and tenants have quotas of keys and users.

mod common;

use common::Server;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";

/// One `POST /api/v1/auth/login` from the loopback address `source` (Linux
/// routes all of 127/8 to lo, so 127.0.0.2 is another client of 127.0.0.1).
fn login_from(api: SocketAddr, source: &str, body: &Value) -> (u16, Vec<(String, String)>, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0)).unwrap();
        socket.connect(api).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut stream = stream;
    let body = body.to_string();
    write!(
        stream,
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: {api}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn new_user(server: &Server, admin: &str, email: &str) -> (u16, Value) {
    server.api("POST", "/api/v1/users", Some(admin), Some(&json!({"email": email, "password": PASSWORD, "role": "viewer"})))
}

#[test]
fn far_future_times_are_refused_and_listing_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    for far in ["253402300800000", "18446744073709551615", "99999999999999999999999", "1969-12-31T23:59:59Z", "+5"] {
        let (status, body) =
            server.api("POST", "/api/v1/keys", Some(&admin), Some(&json!({"name": "far", "scopes": ["read"], "expires_at": far})));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{far}: {body}");
    }
    let (status, body) = server.api(
        "POST",
        "/api/v1/keys",
        Some(&admin),
        Some(&json!({"name": "last", "scopes": ["read"], "expires_at": "9999-12-31T23:59:59.999Z"})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expires_at"], "9999-12-31T23:59:59.999Z");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, keys) = server.api("GET", "/api/v1/keys", Some(&admin), None);
    assert_eq!(status, 200, "{keys}");
    assert!(keys["items"].as_array().unwrap().iter().any(|key| key["expires_at"] == "9999-12-31T23:59:59.999Z"));
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{id}"), Some(&admin), None).0, 204, "and it can be revoked");
    // Signal filters are bounded the same way.
    for query in ["since=18446744073709551615", "until=253402300800000", "since=1969-01-01T00:00:00Z"] {
        let (status, body) = server.api("GET", &format!("/api/v1/signals?{query}"), Some(&admin), None);
        assert_eq!(status, 400, "{query}: {body}");
    }
    assert_eq!(server.api("GET", "/api/v1/signals?until=253402300799999", Some(&admin), None).0, 200);
}

#[test]
fn sign_in_is_bounded_and_one_clients_guessing_does_not_lock_out_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--signin-concurrency", "1"]);
    let (tenant, admin) = server.tenant("acme");
    assert_eq!(new_user(&server, &admin, "ed@example.com").0, 201);
    let attempt = |password: &str| json!({"tenant": tenant, "email": "ed@example.com", "password": password});

    // Oversized fields: 400 at once, before any password check.
    let huge = "a".repeat(900_000);
    for body in [
        json!({"tenant": tenant, "email": huge, "password": "x"}),
        json!({"tenant": tenant, "email": "ed@example.com", "password": huge}),
        json!({"tenant": huge, "email": "ed@example.com", "password": "x"}),
    ] {
        let started = Instant::now();
        let (status, body) = server.api("POST", "/api/v1/auth/login", None, Some(&body));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // The attacker at 127.0.0.1 is slowed down; the owner at 127.0.0.2 is not.
    for _ in 0..5 {
        assert_eq!(login_from(server.api, "127.0.0.1", &attempt("wrong password!!")).0, 401);
    }
    let (status, headers, body) = login_from(server.api, "127.0.0.1", &attempt(PASSWORD));
    assert_eq!(status, 429, "{body}");
    assert!(headers.iter().any(|(name, _)| name == "retry-after"));
    let (status, _, body) = login_from(server.api, "127.0.0.2", &attempt(PASSWORD));
    assert_eq!(status, 200, "the right password works from another client during the slow-down: {body}");

    // One password check at a time: concurrent sign-ins beyond it get 503 with Retry-After.
    let mut busy = None;
    for _ in 0..5 {
        let api = server.api;
        let threads: Vec<_> = (0..12)
            .map(|index| {
                let body = json!({"tenant": tenant, "email": format!("nobody{index}@example.com"), "password": "whatever password"});
                std::thread::spawn(move || login_from(api, "127.0.0.3", &body))
            })
            .collect();
        let answers: Vec<_> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
        assert!(answers.iter().all(|(status, _, _)| matches!(status, 401 | 503)), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
        if let Some(answer) = answers.into_iter().find(|(status, _, _)| *status == 503) {
            busy = Some(answer);
            break;
        }
    }
    let (_, headers, body) = busy.expect("12 sign-ins at once with one check slot: some are refused");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(headers.iter().any(|(name, value)| name == "retry-after" && value == "1"));
}

#[test]
fn sessions_have_an_absolute_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-ttl", "15m", "--session-max-lifetime", "5m"]);
    let (tenant, admin) = server.tenant("acme");
    assert_eq!(new_user(&server, &admin, "ed@example.com").0, 201);
    let before = fluo::model::time::now_ms();
    let (status, session) =
        server.api("POST", "/api/v1/auth/login", None, Some(&json!({"tenant": tenant, "email": "ed@example.com", "password": PASSWORD})));
    assert_eq!(status, 200, "{session}");
    let expires = fluo::model::time::parse("expires_at", session["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires <= before + 5 * 60 * 1000 + 1000, "the token ends with the session, not 15 minutes on: {session}");
    let token = session["token"].as_str().unwrap();
    let (status, renewed) = server.api("POST", "/api/v1/auth/renew", Some(token), None);
    assert_eq!(status, 200, "{renewed}");
    let renewed_expires = fluo::model::time::parse("expires_at", renewed["expires_at"].as_str().unwrap()).unwrap();
    assert!(renewed_expires <= before + 5 * 60 * 1000 + 1000, "renewal does not extend the session: {renewed}");
    drop(server);

    // Out of range: refused at start.
    for (flag, value) in [
        ("--session-max-lifetime", "1m"),
        ("--session-max-lifetime", "31days"),
        ("--signin-concurrency", "0"),
        ("--max-keys-per-tenant", "0"),
        ("--streams-per-credential", "0"),
    ] {
        let output = std::process::Command::new(common::binary())
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", flag, value])
            .env("FLUO_OPERATOR_KEY", common::OPERATOR_KEY)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flag} {value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

#[test]
fn the_data_directory_is_created_private_and_a_loose_one_is_tightened() {
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("data");
    let server = Server::start(&fresh, &[]);
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
    drop(server);
    let loose = parent.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(&loose, &[]);
    assert_eq!(std::fs::metadata(&loose).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(server.log.lock().unwrap().iter().any(|line| line.contains("mode set to 0700")), "the change is logged");
}

#[test]
fn tenants_have_quotas_of_keys_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-keys-per-tenant", "3", "--max-users-per-tenant", "2"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    server.key(&admin, &["read"]);
    server.key(&admin, &["read"]);
    let (status, body) = server.api("POST", "/api/v1/keys", Some(&admin), Some(&json!({"name": "fourth", "scopes": ["read"]})));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("quota"), "{body}");
    server.key(&other, &["read"]);
    let (_, keys) = server.api("GET", "/api/v1/keys", Some(&admin), None);
    let id =
        keys["items"].as_array().unwrap().iter().find(|key| key["scopes"] == json!(["read"])).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{id}"), Some(&admin), None).0, 204);
    server.key(&admin, &["read"]);

    assert_eq!(new_user(&server, &admin, "a@example.com").0, 201);
    assert_eq!(new_user(&server, &admin, "b@example.com").0, 201);
    let (status, body) = new_user(&server, &admin, "c@example.com");
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("quota"), "{body}");
    assert_eq!(new_user(&server, &other, "c@example.com").0, 201);
}

/// Tenant names are unique (case-insensitive, trimmed) and never look like an
/// id; the operator lists tenants; users sign in with the tenant's name or id,
/// and a name shaped like another tenant's id cannot take that tenant's place.
#[test]
fn tenant_names_are_unique_listed_and_sign_in_takes_a_name_or_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (id, admin) = server.tenant("Acme Corp");
    for (name, status) in [(" acme corp ", 409), ("ACME CORP", 409), ("t_0123456789abcdef", 400)] {
        let (got, body) = server.api("POST", "/api/v1/tenants", Some(common::OPERATOR_KEY), Some(&json!({ "name": name })));
        assert_eq!(got, status, "{name:?}: {body}");
    }
    let (_, other_admin) = server.tenant("Globex");
    let (status, list) = server.api("GET", "/api/v1/tenants", Some(common::OPERATOR_KEY), None);
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|tenant| tenant["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"Acme Corp") && names.contains(&"Globex"), "{list}");
    assert!(list["items"].as_array().unwrap().iter().all(|tenant| tenant["created_at"].is_string() && tenant.get("admin_key").is_none()));
    for key in [&admin, &other_admin] {
        assert_eq!(server.api("GET", "/api/v1/tenants", Some(key), None).0, 403, "a tenant's admin does not list tenants");
    }

    assert_eq!(new_user(&server, &admin, "ana@acme.example").0, 201);
    for tenant in [id.as_str(), "Acme Corp", "acme corp", " ACME CORP "] {
        let body = json!({"tenant": tenant, "email": "ana@acme.example", "password": PASSWORD});
        let (status, answer) = server.api("POST", "/api/v1/auth/login", None, Some(&body));
        assert_eq!(status, 200, "{tenant:?}: {answer}");
        let (_, info) = server.api("GET", "/api/v1/info", answer["token"].as_str(), None);
        assert_eq!(info["tenant"], id.as_str(), "{info}");
    }
    let body = json!({"tenant": "Globex", "email": "ana@acme.example", "password": PASSWORD});
    assert_eq!(server.api("POST", "/api/v1/auth/login", None, Some(&body)).0, 401, "Ana is not Globex's user");
}
