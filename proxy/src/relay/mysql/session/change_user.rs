//! COM_CHANGE_USER: the new user proves its password to the proxy, then
//! the proxy logs in to the backend as that user's backend login on a fresh
//! connection.

use bytes::BytesMut;
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::backend;
use super::{count_bytes, malformed, quit, Session, SessionEnd};
use crate::state::KillTarget;
use crate::wire::mysql::auth::{AuthPlugin, AuthStep, ServerAuth};
use crate::wire::mysql::login::BackendLoginConfig;
use crate::wire::mysql::message::ErrPacket;
use crate::wire::mysql::packet::{self, Packet};

impl Session {
    /// Authenticates the new user against the proxy's users, then logs in
    /// to the backend as that user's backend login on a fresh connection,
    /// which replaces the old one (as COM_CHANGE_USER resets the session).
    pub(super) async fn on_change_user(&mut self, payload: BytesMut) -> Result<(), SessionEnd> {
        let mut change = match crate::wire::mysql::handshake::parse_change_user(
            &payload,
            self.info.capabilities,
        ) {
            Ok(c) => c,
            Err(e) => return Err(malformed(&e, self.seq)),
        };
        if change.charset == 0 {
            change.charset = self.info.charset;
        }
        let snapshot = self.shared.snapshot_full();
        let config = &snapshot.config;
        let user = config.user(&change.username).cloned();
        let (plugin, password) = match &user {
            Some(u) => (super::super::plugin_of(u), super::super::mysql_password(u)),
            None => (AuthPlugin::CachingSha2Password, None),
        };
        let secure = self.client.is_tls();
        let mut auth = ServerAuth::new(self.info.salt, plugin, password, secure)
            .strict(true)
            .force_full_auth(config.mysql.caching_sha2_full_auth);
        let mut step = auth.start(&change, 0);
        let (packets, ok_seq) = loop {
            match step {
                AuthStep::Send(p) => {
                    let mut out = BytesMut::new();
                    p.encode(&mut out);
                    self.client.write_all(&out).await?;
                    let reply = self.client_packet().await?;
                    let keys = super::super::keys_for(&auth, secure, &reply.payload).await;
                    step = auth.next(reply.seq, &reply.payload, keys);
                }
                AuthStep::Accepted { packets, ok_seq } => break (packets, ok_seq),
                AuthStep::Rejected { err_seq, .. } => {
                    metrics::counter!(names::AUTH_FAILURES_TOTAL, "protocol" => "mysql", "reason" => "change_user").increment(1);
                    let err = ErrPacket::access_denied(
                        &change.username,
                        &self.info.host,
                        !change.auth_response.is_empty(),
                    );
                    self.send_err(&err, err_seq);
                    self.flush().await?;
                    return Err(SessionEnd::ChangeUser(format!(
                        "access denied for `{}`",
                        change.username
                    )));
                }
            }
        };
        let err_seq = packets.first().map_or(ok_seq, |p| p.seq);
        let user = user.expect("an unknown user is always rejected");
        let Some(backend) = config.backends.get(&self.info.backend_name) else {
            return Err(SessionEnd::Backend {
                message: format!(
                    "switchyard: backend `{}` is no longer configured",
                    self.info.backend_name
                ),
                seq: err_seq,
            });
        };
        let (backend_user, backend_password) = super::super::credentials(&user, backend);
        let login = BackendLoginConfig {
            user: backend_user.to_string(),
            password: backend_password.to_string(),
            database: change.database.clone().or_else(|| backend.database.clone()),
            charset: change.charset,
            client_capabilities: self.info.capabilities,
            client_mariadb_capabilities: self.info.mariadb_capabilities,
            tls: false,
            connect_attrs: super::super::session_attrs(&change.connect_attrs, self.info.proxy_id),
            max_packet_size: self.info.max_packet_size.max(1 << 24),
            server_public_key: None,
        };
        let name = self.info.backend_name.clone();
        let fresh = match backend::connect(
            &name,
            backend,
            snapshot.backend_tls(&name),
            login,
            config.limits.connect_timeout,
            self.max_payload,
        )
        .await
        {
            Ok(conn) => conn,
            Err(backend::BackendError::Rejected { err, .. }) => {
                self.send_err(&err, err_seq);
                self.flush().await?;
                return Err(SessionEnd::ChangeUser(err.message));
            }
            Err(e) => {
                return Err(SessionEnd::Backend {
                    message: format!("switchyard: {e}"),
                    seq: err_seq,
                })
            }
        };
        let mut old = std::mem::replace(&mut self.own, fresh);
        quit(&mut old).await;
        if let Some(mut s) = self.second.take() {
            quit(&mut s).await;
        }
        self.statements.clear();
        self.shared.mysql_threads.insert(
            self.info.proxy_id,
            KillTarget {
                backend: name,
                thread_id: self.own.thread_id,
            },
        );
        self.info.user = user.name.clone();
        self.info.backend_user = user.backend_user.clone();
        self.info.database = change.database.unwrap_or_default();
        self.info.charset = change.charset;
        self.mark_as_proxy().await?;
        for p in packets {
            p.encode(&mut self.client_out);
        }
        self.send_ok(None, ok_seq);
        self.flush().await
    }

    /// Reads one logical packet from the client (during COM_CHANGE_USER).
    async fn client_packet(&mut self) -> Result<Packet, SessionEnd> {
        loop {
            match packet::decode(&mut self.client_inbox, self.max_payload) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(malformed(&e, 1)),
            }
            match self.client.read_buf(&mut self.client_inbox).await {
                Ok(0) => return Err(SessionEnd::ClientClosed),
                Ok(n) => count_bytes("client_to_server", n),
                Err(e) => return Err(SessionEnd::Io(e)),
            }
        }
    }
}
