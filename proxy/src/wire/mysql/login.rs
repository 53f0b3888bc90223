//! [`BackendLogin`]: the proxy's own login to a MySQL/MariaDB backend, as a
//! small state machine that consumes server packets and returns packets to
//! send.
//!
//! It handles the greeting, the optional TLS upgrade (SSLRequest), the
//! HandshakeResponse41, AuthSwitchRequest, and caching_sha2_password's
//! AuthMoreData (fast-auth success, full authentication by cleartext over
//! TLS or by RSA with the server's public key). This module never does IO:
//! the relay reads and writes the socket and performs the TLS handshake.

use bytes::BytesMut;

use super::auth::{
    encrypt_password, AuthPlugin, AuthSwitchRequest, AUTH_MORE_DATA, AUTH_SWITCH_REQUEST,
    FAST_AUTH_SUCCESS, PERFORM_FULL_AUTHENTICATION, REQUEST_PUBLIC_KEY,
};
use super::error::CodecError;
use super::handshake::{
    backend_capabilities, mariadb_offer, HandshakeResponse41, HandshakeV10, SslRequest,
    CLIENT_LONG_PASSWORD, CLIENT_SSL,
};
use super::message::{ErrPacket, OkPacket};
use super::packet::Packet;

/// What the proxy needs to log in to a backend.
#[derive(Debug, Clone, Default)]
pub struct BackendLoginConfig {
    /// Backend user name.
    pub user: String,
    /// Backend password (plaintext; never leaves the proxy unencrypted
    /// except over TLS).
    pub password: String,
    /// Initial schema, if any.
    pub database: Option<String>,
    /// Collation id for the session: the client's, so the backend decodes
    /// the client's bytes the way the client meant them.
    pub charset: u8,
    /// The client leg's capabilities; the session flags among them are
    /// requested from the backend so both legs frame traffic alike.
    pub client_capabilities: u32,
    /// The client leg's MariaDB extended flags, requested likewise when the
    /// backend has them.
    pub client_mariadb_capabilities: u32,
    /// Upgrade the connection to TLS (required: refuse a backend without it).
    pub tls: bool,
    /// Connection attributes to send (e.g. the client's, plus the proxy's own).
    pub connect_attrs: Vec<(String, String)>,
    /// Largest packet the proxy will send.
    pub max_packet_size: u32,
    /// The backend's RSA public key in PEM, if configured; saves asking for
    /// it during full authentication without TLS.
    pub server_public_key: Option<String>,
}

/// What the relay does next for a [`BackendLogin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Send this packet, then read the next server packet.
    Send(Packet),
    /// Send this SSLRequest, perform the TLS handshake on the socket, then
    /// call [`BackendLogin::tls_established`].
    StartTls(Packet),
    /// Read the next server packet (nothing to send).
    Wait,
    /// Logged in. The OK packet is the server's last word of the login.
    Done(OkPacket),
}

/// Where the login stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the greeting.
    Greeting,
    /// SSLRequest sent; waiting for the relay's TLS handshake.
    Tls,
    /// Response sent; waiting for OK, ERR, a switch or more data.
    Auth,
    /// Asked for the server's public key; waiting for it.
    PublicKey,
    /// Logged in or failed.
    Finished,
}

/// The proxy's login to one backend connection. See the module docs.
///
/// ```text
/// let mut login = BackendLogin::new(config);
/// loop {
///     let packet = read_packet()?;                  // relay: socket + packet::decode
///     match login.receive(&packet)? {
///         LoginStep::Send(p) => write_packet(p),
///         LoginStep::StartTls(p) => { write_packet(p); upgrade(); write_packet(login.tls_established()?) }
///         LoginStep::Wait => {}
///         LoginStep::Done(ok) => break,
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct BackendLogin {
    /// What to log in with.
    config: BackendLoginConfig,
    /// Where the login stands.
    stage: Stage,
    /// The backend's greeting, once received.
    handshake: Option<HandshakeV10>,
    /// Capabilities sent to the backend.
    capabilities: u32,
    /// MariaDB extended flags sent to the backend.
    mariadb_capabilities: u32,
    /// The plugin in use (changes on AuthSwitchRequest).
    plugin: Option<AuthPlugin>,
    /// The salt in use (changes on AuthSwitchRequest).
    salt: Vec<u8>,
    /// Whether the connection is TLS now.
    tls_active: bool,
    /// Sequence id of the last packet sent or received.
    seq: u8,
}

impl BackendLogin {
    /// A login that waits for the backend's greeting.
    pub fn new(config: BackendLoginConfig) -> Self {
        Self {
            config,
            stage: Stage::Greeting,
            handshake: None,
            capabilities: 0,
            mariadb_capabilities: 0,
            plugin: None,
            salt: Vec::new(),
            tls_active: false,
            seq: 0,
        }
    }

    /// The backend's greeting (server version, connection id for KILL, capabilities).
    pub fn server_handshake(&self) -> Option<&HandshakeV10> {
        self.handshake.as_ref()
    }

    /// The capabilities the proxy sent the backend: the session's flags.
    pub fn capabilities(&self) -> u32 {
        self.capabilities
    }

    /// The MariaDB extended flags the proxy sent the backend.
    pub fn mariadb_capabilities(&self) -> u32 {
        self.mariadb_capabilities
    }

    /// Feeds the next server packet.
    pub fn receive(&mut self, packet: &Packet) -> Result<LoginStep, CodecError> {
        self.seq = packet.seq;
        let payload = &packet.payload[..];
        if payload.first() == Some(&0xFF) && self.stage != Stage::Finished {
            self.stage = Stage::Finished;
            return Err(CodecError::LoginRejected(ErrPacket::parse(payload)?));
        }
        match self.stage {
            Stage::Greeting => self.greeting(payload),
            Stage::Auth => self.auth_reply(payload),
            Stage::PublicKey => match payload.split_first() {
                Some((&AUTH_MORE_DATA, pem)) => {
                    let pem = String::from_utf8_lossy(pem).into_owned();
                    self.send_encrypted(&pem)
                }
                _ => Err(self.fail("waiting for the server's RSA public key", payload)),
            },
            Stage::Tls => Err(self.fail("waiting for the TLS handshake", payload)),
            Stage::Finished => Err(self.fail("the login was over", payload)),
        }
    }

    /// Call after the TLS handshake that followed [`LoginStep::StartTls`];
    /// returns the HandshakeResponse41 to send over TLS.
    pub fn tls_established(&mut self) -> Result<LoginStep, CodecError> {
        if self.stage != Stage::Tls {
            return Err(CodecError::Unexpected {
                state: "no TLS upgrade was pending",
                first_byte: 0,
            });
        }
        self.tls_active = true;
        self.stage = Stage::Auth;
        Ok(LoginStep::Send(self.response()))
    }

    fn greeting(&mut self, payload: &[u8]) -> Result<LoginStep, CodecError> {
        let hs = HandshakeV10::parse(payload)?;
        if self.config.tls && hs.capabilities & CLIENT_SSL == 0 {
            self.stage = Stage::Finished;
            return Err(CodecError::TlsUnavailable);
        }
        self.capabilities = backend_capabilities(
            self.config.client_capabilities,
            hs.capabilities,
            self.config.database.is_some(),
            self.config.tls,
        );
        self.mariadb_capabilities = self.config.client_mariadb_capabilities
            & mariadb_offer(hs.capabilities, hs.mariadb_capabilities);
        if self.mariadb_capabilities != 0 {
            // Cleared CLIENT_MYSQL: the server reads the extended bytes.
            self.capabilities &= !CLIENT_LONG_PASSWORD;
        }
        // An unknown plugin gets a native scramble; the server then switches.
        self.plugin = Some(
            AuthPlugin::from_name(&hs.auth_plugin_name).unwrap_or(AuthPlugin::MysqlNativePassword),
        );
        self.salt = hs.auth_plugin_data.clone();
        self.handshake = Some(hs);
        if self.config.tls {
            self.stage = Stage::Tls;
            let request = SslRequest {
                capabilities: self.capabilities,
                max_packet_size: self.config.max_packet_size,
                charset: self.config.charset,
                mariadb_capabilities: self.mariadb_capabilities,
            };
            return Ok(LoginStep::StartTls(self.packet(|out| request.encode(out))));
        }
        self.stage = Stage::Auth;
        Ok(LoginStep::Send(self.response()))
    }

    fn response(&mut self) -> Packet {
        let plugin = self.plugin.unwrap_or(AuthPlugin::MysqlNativePassword);
        let response = HandshakeResponse41 {
            capabilities: self.capabilities,
            max_packet_size: self.config.max_packet_size,
            charset: self.config.charset,
            mariadb_capabilities: self.mariadb_capabilities,
            username: self.config.user.clone(),
            auth_response: plugin.scramble(self.config.password.as_bytes(), &self.salt),
            database: self.config.database.clone(),
            auth_plugin_name: Some(plugin.name().to_string()),
            connect_attrs: self.config.connect_attrs.clone(),
            zstd_level: None,
        };
        self.packet(|out| response.encode(out))
    }

    fn auth_reply(&mut self, payload: &[u8]) -> Result<LoginStep, CodecError> {
        match payload.first() {
            Some(0x00) => {
                self.stage = Stage::Finished;
                Ok(LoginStep::Done(OkPacket::parse(
                    payload,
                    self.capabilities,
                )?))
            }
            Some(&AUTH_SWITCH_REQUEST) => {
                let switch = AuthSwitchRequest::parse(payload)?;
                let plugin = AuthPlugin::from_name(&switch.plugin)
                    .ok_or_else(|| CodecError::UnsupportedAuthPlugin(switch.plugin.clone()))?;
                self.plugin = Some(plugin);
                self.salt = switch.data;
                let scramble = plugin.scramble(self.config.password.as_bytes(), &self.salt);
                Ok(LoginStep::Send(
                    self.packet(|out| out.extend_from_slice(&scramble)),
                ))
            }
            Some(&AUTH_MORE_DATA) if self.plugin == Some(AuthPlugin::CachingSha2Password) => {
                match payload.get(1) {
                    Some(&FAST_AUTH_SUCCESS) => Ok(LoginStep::Wait),
                    Some(&PERFORM_FULL_AUTHENTICATION) => self.full_auth(),
                    _ => Err(self.fail("waiting for caching_sha2_password's next step", payload)),
                }
            }
            _ => Err(self.fail("waiting for the login's result", payload)),
        }
    }

    fn full_auth(&mut self) -> Result<LoginStep, CodecError> {
        if self.tls_active {
            let mut password = self.config.password.as_bytes().to_vec();
            password.push(0);
            return Ok(LoginStep::Send(
                self.packet(|out| out.extend_from_slice(&password)),
            ));
        }
        if let Some(pem) = self.config.server_public_key.clone() {
            return self.send_encrypted(&pem);
        }
        self.stage = Stage::PublicKey;
        Ok(LoginStep::Send(self.packet(|out| {
            out.extend_from_slice(&[REQUEST_PUBLIC_KEY])
        })))
    }

    fn send_encrypted(&mut self, pem: &str) -> Result<LoginStep, CodecError> {
        let ciphertext = encrypt_password(self.config.password.as_bytes(), &self.salt, pem)?;
        self.stage = Stage::Auth;
        Ok(LoginStep::Send(
            self.packet(|out| out.extend_from_slice(&ciphertext)),
        ))
    }

    /// The next outgoing packet, with the sequence id after the last one.
    fn packet(&mut self, build: impl FnOnce(&mut BytesMut)) -> Packet {
        self.seq = self.seq.wrapping_add(1);
        let mut payload = BytesMut::new();
        build(&mut payload);
        Packet {
            seq: self.seq,
            payload,
        }
    }

    fn fail(&mut self, state: &'static str, payload: &[u8]) -> CodecError {
        self.stage = Stage::Finished;
        CodecError::unexpected(state, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mysql::auth::{
        tests::keys, AuthStep, ServerAuth, CACHING_SHA2_PASSWORD, MYSQL_NATIVE_PASSWORD,
    };
    use crate::wire::mysql::handshake::{
        client_offer, parse_client_hello, ClientHello, CLIENT_CONNECT_WITH_DB,
        CLIENT_DEPRECATE_EOF, DEFAULT_BACKEND_CAPABILITIES, MARIADB_CLIENT_CACHE_METADATA,
        SESSION_CAPABILITIES,
    };

    const SALT: [u8; 20] = *b"ABCDEFGHIJKLMNOPQRST";

    fn greeting(plugin: &str, tls: bool) -> Packet {
        let hs = HandshakeV10 {
            server_version: "8.0.36".into(),
            connection_id: 9,
            auth_plugin_data: SALT.to_vec(),
            capabilities: client_offer(DEFAULT_BACKEND_CAPABILITIES, tls),
            mariadb_capabilities: 0,
            charset: 255,
            status: 2,
            auth_plugin_name: plugin.into(),
        };
        let mut payload = BytesMut::new();
        hs.encode(&mut payload);
        Packet { seq: 0, payload }
    }

    fn config(tls: bool) -> BackendLoginConfig {
        BackendLoginConfig {
            user: "app_rw".into(),
            password: "s3cret".into(),
            database: Some("shop".into()),
            charset: 45,
            client_capabilities: CLIENT_DEPRECATE_EOF,
            client_mariadb_capabilities: MARIADB_CLIENT_CACHE_METADATA,
            tls,
            connect_attrs: vec![("_proxy".into(), "switchyard".into())],
            max_packet_size: 1 << 24,
            server_public_key: None,
        }
    }

    fn ok_packet(seq: u8) -> Packet {
        let mut payload = BytesMut::new();
        OkPacket::default().encode(0, &mut payload);
        Packet { seq, payload }
    }

    fn sent(step: LoginStep) -> Packet {
        match step {
            LoginStep::Send(p) | LoginStep::StartTls(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    fn response_of(packet: &Packet) -> HandshakeResponse41 {
        match parse_client_hello(&packet.payload).unwrap() {
            ClientHello::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Runs the login against the proxy's own server side, which checks the
    /// scramble with the real password.
    #[test]
    fn logs_in_to_a_native_password_server() {
        let mut login = BackendLogin::new(config(false));
        let response = sent(
            login
                .receive(&greeting(MYSQL_NATIVE_PASSWORD, false))
                .unwrap(),
        );
        assert_eq!(response.seq, 1);
        let hello = response_of(&response);
        assert_eq!(hello.username, "app_rw");
        assert_eq!(hello.database.as_deref(), Some("shop"));
        assert_eq!(hello.charset, 45);
        assert_ne!(hello.capabilities & CLIENT_CONNECT_WITH_DB, 0);
        assert_eq!(
            hello.capabilities & SESSION_CAPABILITIES,
            CLIENT_DEPRECATE_EOF
        );
        let mut server = ServerAuth::new(
            SALT,
            AuthPlugin::MysqlNativePassword,
            Some(b"s3cret".to_vec()),
            false,
        );
        let AuthStep::Accepted { ok_seq, .. } = server.start(&hello, response.seq) else {
            panic!("rejected")
        };
        assert_eq!(
            login.receive(&ok_packet(ok_seq)).unwrap(),
            LoginStep::Done(OkPacket::default())
        );
        assert_eq!(login.server_handshake().unwrap().connection_id, 9);
    }

    /// The client's MariaDB extended flags go to a MariaDB backend that has
    /// them (with CLIENT_MYSQL cleared so it reads them), and never to a
    /// MySQL server, which would not.
    #[test]
    fn asks_for_mariadb_extended_flags_only_where_announced() {
        for (extended, expected) in [
            (
                MARIADB_CLIENT_CACHE_METADATA | 1,
                MARIADB_CLIENT_CACHE_METADATA,
            ),
            (0, 0),
        ] {
            let mut hs =
                HandshakeV10::parse(&greeting(MYSQL_NATIVE_PASSWORD, false).payload).unwrap();
            if extended != 0 {
                hs.capabilities &= !CLIENT_LONG_PASSWORD;
                hs.mariadb_capabilities = extended;
            }
            let mut payload = BytesMut::new();
            hs.encode(&mut payload);
            let mut login = BackendLogin::new(config(false));
            let hello = response_of(&sent(login.receive(&Packet { seq: 0, payload }).unwrap()));
            assert_eq!(hello.mariadb_capabilities, expected);
            assert_eq!(login.mariadb_capabilities(), expected);
            assert_eq!(
                hello.capabilities & CLIENT_LONG_PASSWORD == 0,
                expected != 0
            );
        }
    }

    #[test]
    fn caching_sha2_fast_path() {
        let mut login = BackendLogin::new(config(false));
        let response = sent(
            login
                .receive(&greeting(CACHING_SHA2_PASSWORD, false))
                .unwrap(),
        );
        let mut server = ServerAuth::new(
            SALT,
            AuthPlugin::CachingSha2Password,
            Some(b"s3cret".to_vec()),
            false,
        );
        let AuthStep::Accepted { packets, ok_seq } = server.start(&response_of(&response), 1)
        else {
            panic!("rejected")
        };
        assert_eq!(login.receive(&packets[0]).unwrap(), LoginStep::Wait);
        assert!(matches!(
            login.receive(&ok_packet(ok_seq)).unwrap(),
            LoginStep::Done(_)
        ));
    }

    #[test]
    fn caching_sha2_full_auth_with_rsa_key_request() {
        let keys = keys();
        let mut login = BackendLogin::new(config(false));
        let response = sent(
            login
                .receive(&greeting(CACHING_SHA2_PASSWORD, false))
                .unwrap(),
        );
        let mut server = ServerAuth::new(
            SALT,
            AuthPlugin::CachingSha2Password,
            Some(b"s3cret".to_vec()),
            false,
        )
        .force_full_auth(true);
        let AuthStep::Send(more) = server.start(&response_of(&response), response.seq) else {
            panic!()
        };
        let request = sent(login.receive(&more).unwrap());
        assert_eq!(&request.payload[..], &[REQUEST_PUBLIC_KEY]);
        let AuthStep::Send(key) = server.next(request.seq, &request.payload, Some(keys)) else {
            panic!()
        };
        let encrypted = sent(login.receive(&key).unwrap());
        let step = server.next(encrypted.seq, &encrypted.payload, Some(keys));
        assert_eq!(
            step,
            AuthStep::Accepted {
                packets: vec![],
                ok_seq: 6
            }
        );
        assert!(matches!(
            login.receive(&ok_packet(6)).unwrap(),
            LoginStep::Done(_)
        ));
    }

    #[test]
    fn caching_sha2_full_auth_with_a_configured_key_and_over_tls() {
        let keys = keys();
        let mut cfg = config(false);
        cfg.server_public_key = Some(keys.public_pem().to_string());
        let mut login = BackendLogin::new(cfg);
        sent(
            login
                .receive(&greeting(CACHING_SHA2_PASSWORD, false))
                .unwrap(),
        );
        let encrypted = sent(login.receive(&Packet::new(2, &[1, 4])).unwrap());
        assert_eq!(encrypted.seq, 3);
        assert_eq!(
            keys.decrypt_password(&encrypted.payload, &SALT).unwrap(),
            b"s3cret"
        );

        let mut login = BackendLogin::new(config(true));
        let ssl = login
            .receive(&greeting(CACHING_SHA2_PASSWORD, true))
            .unwrap();
        let LoginStep::StartTls(ssl) = ssl else {
            panic!("expected StartTls")
        };
        assert_eq!(ssl.seq, 1);
        assert!(matches!(
            parse_client_hello(&ssl.payload).unwrap(),
            ClientHello::SslRequest(_)
        ));
        assert!(login.receive(&Packet::new(2, &[0])).is_err());

        let mut login = BackendLogin::new(config(true));
        login
            .receive(&greeting(CACHING_SHA2_PASSWORD, true))
            .unwrap();
        let response = sent(login.tls_established().unwrap());
        assert_eq!(response.seq, 2);
        let cleartext = sent(login.receive(&Packet::new(3, &[1, 4])).unwrap());
        assert_eq!(
            (&cleartext.payload[..], cleartext.seq),
            (&b"s3cret\0"[..], 4)
        );
    }

    #[test]
    fn follows_an_auth_switch() {
        let mut login = BackendLogin::new(config(false));
        sent(
            login
                .receive(&greeting("auth_gssapi_client", false))
                .unwrap(),
        );
        let mut payload = BytesMut::new();
        let new_salt = b"0123456789abcdefghij".to_vec();
        AuthSwitchRequest {
            plugin: MYSQL_NATIVE_PASSWORD.into(),
            data: new_salt.clone(),
        }
        .encode(&mut payload);
        let reply = sent(login.receive(&Packet { seq: 2, payload }).unwrap());
        assert_eq!(reply.seq, 3);
        assert!(crate::wire::mysql::auth::verify_native(
            &reply.payload,
            b"s3cret",
            &new_salt
        ));

        let mut payload = BytesMut::new();
        AuthSwitchRequest {
            plugin: "client_ed25519".into(),
            data: new_salt,
        }
        .encode(&mut payload);
        let mut login = BackendLogin::new(config(false));
        sent(
            login
                .receive(&greeting(MYSQL_NATIVE_PASSWORD, false))
                .unwrap(),
        );
        assert_eq!(
            login.receive(&Packet { seq: 2, payload }),
            Err(CodecError::UnsupportedAuthPlugin("client_ed25519".into()))
        );
    }

    #[test]
    fn reports_errors_and_missing_tls() {
        let mut login = BackendLogin::new(config(false));
        let mut payload = BytesMut::new();
        ErrPacket::new(1040, "08004", "Too many connections").encode(&mut payload);
        let err = login.receive(&Packet { seq: 0, payload }).unwrap_err();
        assert!(matches!(err, CodecError::LoginRejected(ref e) if e.code == 1040));
        assert!(err.to_string().contains("Too many connections"));

        let mut login = BackendLogin::new(config(true));
        assert_eq!(
            login.receive(&greeting(MYSQL_NATIVE_PASSWORD, false)),
            Err(CodecError::TlsUnavailable)
        );
    }
}
