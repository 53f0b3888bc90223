//! Client authentication at the proxy: SCRAM-SHA-256 (plaintext and
//! verifier passwords), md5, trust, unknown users, and TLS.

use std::sync::Arc;

use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::wire::pg::auth::ScramVerifier;
use tokio_postgres::error::SqlState;

use crate::common::{self, base_yaml};

/// Asserts a login failed with `code` and a message containing `text`;
/// returns the server's error for further checks.
fn login_error(
    result: Result<tokio_postgres::Client, tokio_postgres::Error>,
    code: &SqlState,
    text: &str,
) -> tokio_postgres::error::DbError {
    let err = match result {
        Ok(_) => panic!("login succeeded, expected {code:?}"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected a server error, got {err:?}"))
        .clone();
    assert_eq!(db.code(), code, "{db:?}");
    assert!(
        db.message().contains(text),
        "message {:?} lacks {text:?}",
        db.message()
    );
    db
}

async fn one(client: &tokio_postgres::Client) -> i32 {
    client.query_one("SELECT 1", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn scram_user_logs_in_and_a_wrong_password_is_refused() {
    let db = common::create_db("auth_scram").await;
    let proxy = common::start_default().await;
    let client = proxy
        .try_connect("app", "app", &db)
        .await
        .expect("scram login");
    assert_eq!(one(&client).await, 1);
    // The backend session runs as the backend's user, in the asked database.
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db);

    let db_err = login_error(
        proxy.try_connect("app", "wrong", &db).await,
        &SqlState::INVALID_PASSWORD,
        "password authentication failed for user \"app\"",
    );
    assert_eq!(db_err.severity(), "FATAL");
    common::drop_db(&db).await;
}

#[tokio::test]
async fn md5_user_logs_in_and_a_wrong_password_is_refused() {
    let db = common::create_db("auth_md5").await;
    let proxy = common::start_default().await;
    let client = proxy
        .try_connect("app_md5", "app", &db)
        .await
        .expect("md5 login");
    assert_eq!(one(&client).await, 1);
    login_error(
        proxy.try_connect("app_md5", "nope", &db).await,
        &SqlState::INVALID_PASSWORD,
        "password authentication failed for user \"app_md5\"",
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn trust_user_logs_in_without_a_password() {
    let db = common::create_db("auth_trust").await;
    let proxy = common::start_default().await;
    // No password at all: the client would fail if one were asked for.
    let mut config = tokio_postgres::Config::new();
    config
        .host(proxy.addr.ip().to_string())
        .port(proxy.addr.port())
        .user("app_trust")
        .dbname(&db);
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("trust login");
    tokio::spawn(conn);
    assert_eq!(one(&client).await, 1);
    // Whatever password the client has, trust does not ask for it.
    let client = proxy
        .try_connect("app_trust", "anything", &db)
        .await
        .expect("trust login");
    assert_eq!(one(&client).await, 1);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn unknown_user_is_refused_with_a_hint() {
    let db = common::create_db("auth_unknown").await;
    let proxy = common::start_default().await;
    let db_err = login_error(
        proxy.try_connect("mallory", "x", &db).await,
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "\"mallory\"",
    );
    let hint = db_err.hint().expect("a hint on how to fix it");
    assert!(hint.contains("users:"), "{hint}");
    common::drop_db(&db).await;
}

/// A proxy whose users carry SCRAM verifiers instead of passwords.
async fn verifier_proxy(users: &[(&str, String)]) -> common::Proxy {
    let mut lines = String::new();
    for (name, verifier) in users {
        lines.push_str(&format!(
            "  - {{ name: {name}, password: \"{verifier}\" }}\n"
        ));
    }
    let yaml = base_yaml().replace("users:\n", &format!("users:\n{lines}"));
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

#[tokio::test]
async fn scram_verifier_as_password_checks_the_real_password() {
    let db = common::create_db("auth_verifier").await;

    // One verifier as PostgreSQL itself stores it...
    let role = format!("sy_verifier_{}", rand::random::<u32>());
    let admin = common::direct(&db).await;
    admin
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} PASSWORD 'pg-secret'"
        ))
        .await
        .unwrap();
    let from_pg: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    assert!(from_pg.starts_with("SCRAM-SHA-256$4096:"), "{from_pg}");

    // ...and one the proxy derives, which prints in the same form.
    let derived =
        ScramVerifier::from_password(b"own-secret", b"0123456789abcdef", 4096).to_string();
    let parts: Vec<&str> = derived.split(['$', ':']).collect();
    assert_eq!(parts.len(), 5, "{derived}");
    assert_eq!((parts[0], parts[1]), ("SCRAM-SHA-256", "4096"), "{derived}");

    let proxy = verifier_proxy(&[("vpg", from_pg), ("vown", derived)]).await;
    for (user, right) in [("vpg", "pg-secret"), ("vown", "own-secret")] {
        let client = proxy
            .try_connect(user, right, &db)
            .await
            .unwrap_or_else(|e| panic!("{user} with its password: {e:?}"));
        assert_eq!(one(&client).await, 1);
        login_error(
            proxy.try_connect(user, "not-it", &db).await,
            &SqlState::INVALID_PASSWORD,
            &format!("password authentication failed for user \"{user}\""),
        );
    }
    common::drop_db(&db).await;
}

/// Accepts any server certificate: the test's certificate is self-signed.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

async fn connect_tls(dsn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(dsn, tls_connector()).await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test]
async fn tls_is_offered_and_plaintext_still_works() {
    let db = common::create_db("auth_tls").await;
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        "{}tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        base_yaml(),
        cert.display(),
        key.display()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;

    // sslmode=require fails unless the proxy really switched to TLS.
    for user in ["app", "app_md5"] {
        let dsn = format!("{} sslmode=require", proxy.dsn(user, "app", &db));
        let client = connect_tls(&dsn)
            .await
            .unwrap_or_else(|e| panic!("TLS login as {user}: {e:?}"));
        assert_eq!(one(&client).await, 1);
        let row = client
            .query_one("SELECT $1::text", &[&"over tls"])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "over tls");
    }
    let wrong = connect_tls(&format!("{} sslmode=require", proxy.dsn("app", "bad", &db))).await;
    login_error(
        wrong,
        &SqlState::INVALID_PASSWORD,
        "password authentication failed",
    );

    // TLS is optional: a plaintext client is still served.
    let plain = proxy
        .try_connect("app", "app", &db)
        .await
        .expect("plaintext login");
    assert_eq!(one(&plain).await, 1);

    // And a proxy without `tls:` declines, so sslmode=require fails.
    let no_tls = common::start_default().await;
    let refused = connect_tls(&format!(
        "{} sslmode=require",
        no_tls.dsn("app", "app", &db)
    ))
    .await;
    assert!(
        refused.is_err(),
        "sslmode=require must fail against a proxy without TLS"
    );
    common::drop_db(&db).await;
}

/// Roles the real server authenticates by password (the rest of the test
/// server trusts 127.0.0.1), so the proxy's own backend login is exercised
/// with SCRAM-SHA-256 and md5. Idempotent: the roles and the two pg_hba
/// lines are added once and kept.
async fn ensure_password_roles() {
    let admin = common::direct("postgres").await;
    admin
        .batch_execute(
            "DO $$BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchyard_scram') THEN CREATE ROLE switchyard_scram LOGIN; END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchyard_md5') THEN CREATE ROLE switchyard_md5 LOGIN; END IF;
             END$$;
             SET password_encryption = 'scram-sha-256'; ALTER ROLE switchyard_scram PASSWORD 'scram-secret';
             SET password_encryption = 'md5'; ALTER ROLE switchyard_md5 PASSWORD 'md5-secret';",
        )
        .await
        .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let text = std::fs::read_to_string(&hba)
        .unwrap_or_else(|e| panic!("read {hba}: {e} (run the tests as root)"));
    if !text.contains("switchyard_scram") {
        let lines = "# switchyard tests: the proxy's backend login against real password auth\n\
                     host all switchyard_scram 127.0.0.1/32 scram-sha-256\n\
                     host all switchyard_md5 127.0.0.1/32 md5\n";
        std::fs::write(&hba, format!("{lines}{text}"))
            .unwrap_or_else(|e| panic!("write {hba}: {e}"));
        admin
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
    }
    // The reload is asynchronous: wait until the server asks for a password.
    common::eventually(
        common::DEADLINE,
        "the server to demand passwords from switchyard_scram",
        || async {
            tokio_postgres::connect(
                "host=127.0.0.1 port=5432 user=switchyard_scram dbname=postgres",
                tokio_postgres::NoTls,
            )
            .await
            .is_err()
            .then_some(())
        },
    )
    .await;
}

fn password_backend_yaml(user: &str, password: &str) -> String {
    base_yaml().replace(
        "pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\" }",
        &format!("pg: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: {user}, password: \"{password}\" }}"),
    )
}

#[tokio::test]
async fn backend_login_uses_scram_and_md5_with_configured_credentials() {
    ensure_password_roles().await;
    let db = common::create_db("auth_backend").await;
    for (user, password) in [
        ("switchyard_scram", "scram-secret"),
        ("switchyard_md5", "md5-secret"),
    ] {
        let proxy = common::start(
            &password_backend_yaml(user, password),
            Arc::new(MigrationRouter::default()),
        )
        .await;
        let client = proxy.connect(&db).await;
        let who: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);

        // A wrong backend password: the client gets the server's refusal,
        // once, and the proxy goes on serving.
        let proxy = common::start(
            &password_backend_yaml(user, "wrong"),
            Arc::new(MigrationRouter::default()),
        )
        .await;
        let err = proxy
            .try_connect("app", "app", &db)
            .await
            .expect_err("backend refuses the login");
        let db_err = err.as_db_error().expect("a server error, relayed");
        assert_eq!(db_err.code(), &SqlState::INVALID_PASSWORD);
        assert!(db_err.message().contains(user), "{}", db_err.message());
    }
    common::drop_db(&db).await;
}
