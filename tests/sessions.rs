//! Users and sessions against `fluo serve` on loopback: sign-in, renewal,
//! logout, forged and expired tokens, roles, and a configured JWT key.

mod common;

use common::{FRAUD_RULE, Server};
use serde_json::json;

fn jwt(claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[test]
fn users_sessions_and_forged_tokens() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (tenant, admin) = server.tenant("acme");
    let (other_tenant, other_admin) = server.tenant("globex");
    let key_file = dir.path().join("jwt.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let new_user = |email: &str, password: &str, role: &str| {
        server.api("POST", "/api/v1/users", Some(&admin), Some(&json!({"email": email, "password": password, "role": role})))
    };
    let (status, editor) = new_user("Ed@Example.com", "correct horse battery", "editor");
    assert_eq!(status, 201, "{editor}");
    assert_eq!(editor["email"], "ed@example.com");
    assert_eq!(new_user("ed@example.com", "another long password", "viewer").0, 409);
    assert_eq!(new_user("short@example.com", "short", "viewer").0, 400);
    assert_eq!(new_user("x@example.com", "long enough password", "root").0, 400);
    assert_eq!(new_user("vi@example.com", "viewer password 1", "viewer").0, 201);
    let (_, users) = server.api("GET", "/api/v1/users", Some(&admin), None);
    assert_eq!(users["items"].as_array().unwrap().len(), 2);
    assert!(!users.to_string().contains("argon2"), "no password hash in any response");

    let login = |email: &str, password: &str, tenant: &str| {
        server.api("POST", "/api/v1/auth/login", None, Some(&json!({"tenant": tenant, "email": email, "password": password})))
    };
    assert_eq!(login("ed@example.com", "wrong password!!", &tenant).0, 401);
    assert_eq!(login("nobody@example.com", "correct horse battery", &tenant).0, 401);
    assert_eq!(login("ed@example.com", "correct horse battery", &other_tenant).0, 401, "users belong to one tenant");
    let (status, session) = login("ed@example.com", "correct horse battery", &tenant);
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(session["user"]["role"], "editor");

    // Roles: an editor reads and writes rules but cannot manage keys; a viewer only reads.
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&token), None).0, 200);
    assert_eq!(server.api("POST", "/api/v1/rules", Some(&token), Some(&json!({"name": "fraud", "source": FRAUD_RULE}))).0, 201);
    assert_eq!(server.api("GET", "/api/v1/keys", Some(&token), None).0, 403);
    let (_, viewer) = login("vi@example.com", "viewer password 1", &tenant);
    let viewer = viewer["token"].as_str().unwrap().to_string();
    assert_eq!(server.api("GET", "/api/v1/rules", Some(&viewer), None).0, 200);
    assert_eq!(server.api("POST", "/api/v1/rules", Some(&viewer), Some(&json!({"name": "x", "source": FRAUD_RULE}))).0, 403);
    // The tenant comes from the token: another tenant's rule is not found.
    let other_rule = server.rule(&other_admin, "theirs", FRAUD_RULE);
    assert_eq!(server.api("GET", &format!("/api/v1/rules/{}", other_rule["id"].as_str().unwrap()), Some(&token), None).0, 404);

    // Forged tokens.
    let secret = std::fs::read(&key_file).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    let mut tampered = token.clone();
    tampered.push('x');
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&tampered), None).0, 401, "bad signature");
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&jwt(&claims, b"some other key of 32 bytes......")), None).0, 401, "wrong key");
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_u64().unwrap() - 10);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&jwt(&expired, &secret)), None).0, 401, "expired");
    let mut promoted = claims.clone();
    promoted["role"] = json!("admin");
    assert_eq!(server.api("GET", "/api/v1/keys", Some(&jwt(&promoted, &secret)), None).0, 200, "control: the real key signs valid tokens");
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(promoted.to_string());
    assert_eq!(server.api("GET", "/api/v1/keys", Some(&format!("{none_header}.{body}.")), None).0, 401, "alg none");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &promoted,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert_eq!(server.api("GET", "/api/v1/keys", Some(&hs512), None).0, 401, "the algorithm is pinned");

    // Renew, then log out: both tokens of the session stop working.
    let (status, renewed) = server.api("POST", "/api/v1/auth/renew", Some(&token), None);
    assert_eq!(status, 200);
    let renewed = renewed["token"].as_str().unwrap().to_string();
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&renewed), None).0, 200);
    assert_eq!(server.api("POST", "/api/v1/auth/logout", Some(&renewed), None).0, 204);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&token), None).0, 401);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&renewed), None).0, 401);

    // A deleted user's session ends.
    let viewer_id =
        users["items"].as_array().unwrap().iter().find(|user| user["role"] == "viewer").unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(server.api("DELETE", &format!("/api/v1/users/{viewer_id}"), Some(&other_admin), None).0, 404);
    assert_eq!(server.api("DELETE", &format!("/api/v1/users/{viewer_id}"), Some(&admin), None).0, 204);
    assert_eq!(server.api("GET", "/api/v1/rules", Some(&viewer), None).0, 401);

    // Repeated failures slow sign-in down, even with the right password.
    for _ in 0..5 {
        assert_eq!(login("ed@example.com", "wrong password!!", &tenant).0, 401);
    }
    let (status, body) = login("ed@example.com", "correct horse battery", &tenant);
    assert_eq!(status, 429, "{body}");
}

/// A webhook receiver on loopback: answers 500 to the first request, 200 after; records what it got.
#[test]
fn a_configured_jwt_key_signs_sessions_and_a_loose_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("session.key");
    let secret = b"a configured 40-byte session signing key";
    std::fs::write(&key_file, secret).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = std::process::Command::new(common::binary())
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--jwt-key-file")
        .arg(&key_file)
        .env("FLUO_OPERATOR_KEY", common::OPERATOR_KEY)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("readable by others"), "{}", String::from_utf8_lossy(&refused.stderr));

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key_arg = key_file.to_str().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--jwt-key-file", key_arg]);
    let (tenant, admin) = server.tenant("acme");
    let credentials = json!({"tenant": tenant, "email": "ed@example.com", "password": "correct horse battery"});
    let mut user = credentials.clone();
    user.as_object_mut().unwrap().remove("tenant");
    user["role"] = "viewer".into();
    assert_eq!(server.api("POST", "/api/v1/users", Some(&admin), Some(&user)).0, 201);
    let (status, login) = server.api("POST", "/api/v1/auth/login", None, Some(&credentials));
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_string();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &jsonwebtoken::DecodingKey::from_secret(secret), &validation)
        .expect("the token is signed with the configured key");
    assert!(!dir.path().join("data/jwt.key").exists(), "no generated key beside a configured one");
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&token), None).0, 200);
    drop(server);

    std::fs::write(&key_file, b"another key, rotated by the operator!!!!").unwrap();
    let server = Server::start(&dir.path().join("data"), &["--jwt-key-file", key_arg]);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&token), None).0, 401, "rotating the key ends old sessions");
    let (status, _) = server.api("POST", "/api/v1/auth/login", None, Some(&credentials));
    assert_eq!(status, 200);
}
