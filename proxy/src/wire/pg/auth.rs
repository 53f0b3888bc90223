//! PostgreSQL authentication, both directions, as pure state machines.
//!
//! The proxy terminates client authentication itself (SCRAM-SHA-256 by
//! default, md5 or cleartext when configured) and then logs in to the backend
//! with the configured credentials. This module holds the logic for both:
//!
//! - [`PasswordSecret`]: what the configuration says a user's password is
//!   (plaintext, a `pg_authid`-style SCRAM verifier, or an md5 hash).
//! - [`ScramServer`]: the server side of SCRAM-SHA-256 (RFC 5802/7677 as
//!   PostgreSQL speaks it, without channel binding).
//! - [`md5_salt`], [`md5_verify`], [`verify_cleartext`]: the older methods.
//! - [`AuthRequest`] and [`BackendAuth`]: the client side, answering a
//!   backend's Authentication requests.
//!
//! It never does IO: callers pass in message bodies and send out the bytes
//! they get back. Randomness (salts, nonces) comes from the thread RNG.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use rand::Rng as _;
use sha2::Sha256;

/// Everything that can go wrong while authenticating a client or logging in
/// to a backend. Messages are shown to operators (and some to clients), so
/// each one says what happened and, where there is one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A configured `SCRAM-SHA-256$...` string could not be read.
    #[error("The configured SCRAM verifier is malformed: {0}. Expected `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`, as stored in pg_authid.")]
    MalformedVerifier(String),
    /// SCRAM needs the password or a SCRAM verifier; an md5 hash cannot be turned into either.
    #[error("Cannot authenticate with SCRAM-SHA-256 because the user's password is configured as an md5 hash. Configure the plaintext password or a SCRAM verifier instead.")]
    Md5SecretForScram,
    /// md5 needs md5(password || user); a SCRAM verifier cannot be turned into it.
    #[error("Cannot authenticate with md5 because the user's password is configured as a SCRAM verifier. Configure the plaintext password or an md5 hash instead, or use SCRAM-SHA-256.")]
    ScramSecretForMd5,
    /// The client picked a SASL mechanism the proxy did not offer.
    #[error("The client chose SASL mechanism `{0}`, but the proxy only offers SCRAM-SHA-256.")]
    UnsupportedMechanism(String),
    /// The client insisted on channel binding (`p=`), which the proxy never offers.
    #[error("The client requires SCRAM channel binding, which the proxy does not support. Connect with channel_binding=disable or prefer.")]
    ChannelBindingRequired,
    /// A client's SCRAM message did not follow RFC 5802.
    #[error("The client's SCRAM message is malformed: {0}.")]
    MalformedScram(String),
    /// The client's `c=` attribute does not repeat its own GS2 header.
    #[error(
        "The client's SCRAM channel-binding data does not match the header of its first message."
    )]
    ChannelBindingMismatch,
    /// The client's final message carries a nonce other than the one agreed.
    #[error("The client's SCRAM final message carries the wrong nonce.")]
    NonceMismatch,
    /// The proof or hash the client sent does not match the configured secret.
    #[error("Password authentication failed: the password is wrong.")]
    WrongPassword,
    /// A message arrived that the exchange was not expecting at this point.
    #[error("Authentication message out of order: {0}.")]
    OutOfOrder(&'static str),
    /// The client's md5 PasswordMessage was not `md5` followed by 32 hex digits.
    #[error("The client's md5 password response is malformed: expected `md5` followed by 32 hex digits.")]
    MalformedMd5Response,
    /// The backend wants a password and none is configured for its user.
    #[error("The backend asked for a password, but backend user `{user}` has none configured. Set the backend's password in the configuration.")]
    NoBackendPassword {
        /// The backend user we were logging in as.
        user: String,
    },
    /// The backend offered SASL mechanisms, none of which we speak.
    #[error("The backend offered SASL mechanisms {offered:?}, but the proxy only speaks SCRAM-SHA-256. Allow scram-sha-256 for the proxy's user in the backend's pg_hba.conf.")]
    BackendMechanisms {
        /// The mechanism names the backend listed.
        offered: Vec<String>,
    },
    /// The backend asked for an authentication method we do not implement.
    #[error("The backend asked for authentication method {code} ({name}), which the proxy does not support. Use scram-sha-256, md5 or password for the proxy's user in the backend's pg_hba.conf.")]
    BackendMethodUnsupported {
        /// The Authentication message code.
        code: i32,
        /// The method's name, for humans.
        name: &'static str,
    },
    /// The backend's SCRAM messages were invalid, or it failed to prove it knows the password.
    #[error("SCRAM login to the backend failed: {0}. Check the backend's password in the configuration.")]
    BackendScram(String),
    /// An Authentication ('R') message body could not be parsed.
    #[error("The backend's Authentication message is malformed: {0}.")]
    MalformedRequest(String),
    /// The configured backend password cannot be put into a PasswordMessage.
    #[error("The backend's password cannot be sent: {0}. Check the backend's password in the configuration.")]
    Encode(String),
}

type HmacSha256 = Hmac<Sha256>;

/// The only SASL mechanism the proxy advertises to clients.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Iterations for verifiers the proxy derives from a plaintext password;
/// PostgreSQL's default `scram_iterations`.
const PLAIN_ITERATIONS: u32 = 4096;

/// Salt length for verifiers the proxy derives; PostgreSQL uses 16 bytes.
const SALT_LEN: usize = 16;

/// Random bytes in the server's part of the nonce; PostgreSQL uses 18, which
/// base64-encodes to 24 characters without padding.
const SERVER_NONCE_LEN: usize = 18;

/// A user's password as the configuration gives it.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSecret {
    /// The password itself.
    Plain(String),
    /// A SCRAM-SHA-256 verifier, as PostgreSQL stores in `pg_authid`.
    Scram(ScramVerifier),
    /// The 32 lowercase hex digits of md5(password || username), without the
    /// `md5` prefix PostgreSQL stores in front of them.
    Md5(String),
}

impl PasswordSecret {
    /// Reads a configured password: `SCRAM-SHA-256$...` is a verifier, `md5`
    /// followed by 32 hex digits is an md5 hash, anything else is plaintext
    /// (the same rule PostgreSQL applies to `CREATE ROLE ... PASSWORD`).
    pub fn parse(configured: &str) -> Result<PasswordSecret, AuthError> {
        if configured.starts_with(ScramVerifier::PREFIX) {
            return ScramVerifier::parse(configured).map(PasswordSecret::Scram);
        }
        if let Some(hex) = configured.strip_prefix("md5") {
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(PasswordSecret::Md5(hex.to_ascii_lowercase()));
            }
        }
        Ok(PasswordSecret::Plain(configured.to_owned()))
    }
}

// Hand-written so that a secret never lands in a log through `{:?}`.
impl fmt::Debug for PasswordSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSecret::Plain(_) => f.write_str("Plain(<redacted>)"),
            PasswordSecret::Scram(v) => write!(f, "Scram({v:?})"),
            PasswordSecret::Md5(_) => f.write_str("Md5(<redacted>)"),
        }
    }
}

/// A SCRAM-SHA-256 verifier: what a server needs to check a client's proof
/// and to prove itself, without knowing the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iteration count the client must use.
    iterations: u32,
    /// PBKDF2 salt the client must use.
    salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")): checks the client's proof.
    stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key"): signs the server's final message.
    server_key: [u8; 32],
}

impl ScramVerifier {
    /// How a verifier string starts in `pg_authid`.
    const PREFIX: &'static str = "SCRAM-SHA-256$";

    /// Derives a verifier from a password, e.g. to print one for the
    /// configuration. The password is SASLprep-normalised first, as clients
    /// and PostgreSQL do; like PostgreSQL, a password SASLprep rejects is
    /// used as raw bytes.
    pub fn from_password(password: &[u8], salt: &[u8], iterations: u32) -> ScramVerifier {
        let prepared = std::str::from_utf8(password)
            .ok()
            .and_then(|p| stringprep::saslprep(p).ok());
        let password = prepared.as_deref().map_or(password, str::as_bytes);
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha2::Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(configured: &str) -> Result<ScramVerifier, AuthError> {
        let bad = |what: &str| AuthError::MalformedVerifier(what.to_owned());
        let rest = configured
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| bad("it does not start with `SCRAM-SHA-256$`"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or_else(|| bad("the `$` between the parameters and the keys is missing"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or_else(|| bad("the `:` between the iteration count and the salt is missing"))?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| bad("the iteration count is not a positive integer"))?;
        let salt = BASE64
            .decode(salt)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("the salt is not non-empty base64"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| bad("the `:` between StoredKey and ServerKey is missing"))?;
        let key = |text: &str, what: &str| -> Result<[u8; 32], AuthError> {
            BASE64
                .decode(text)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or_else(|| bad(&format!("{what} is not 32 bytes of base64")))
        };
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored_key, "StoredKey")?,
            server_key: key(server_key, "ServerKey")?,
        })
    }
}

/// Prints the `pg_authid` form, which [`ScramVerifier::parse`] reads back.
impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}:{}${}:{}",
            Self::PREFIX,
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

// The keys let anyone impersonate the server, so they stay out of logs.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The server side of one SCRAM-SHA-256 exchange with one client.
///
/// Call [`ScramServer::client_first`] with the SASLInitialResponse, send the
/// result as AuthenticationSASLContinue; call [`ScramServer::client_final`]
/// with the SASLResponse, send the result as AuthenticationSASLFinal. Any
/// error ends the exchange; a new connection needs a new `ScramServer`.
pub struct ScramServer {
    /// Salt, iterations and keys for this exchange.
    verifier: ScramVerifier,
    /// Where the exchange stands.
    state: ScramState,
}

/// Progress of a [`ScramServer`].
enum ScramState {
    /// Waiting for the client-first-message.
    Initial,
    /// Sent server-first-message; waiting for the client-final-message.
    SentServerFirst {
        /// The GS2 header (`n,,` or `y,,`), which `c=` must repeat.
        gs2_header: String,
        /// client-first-message-bare, part of the AuthMessage.
        client_first_bare: String,
        /// server-first-message, part of the AuthMessage.
        server_first: String,
        /// Client nonce followed by ours; `r=` must repeat it.
        nonce: String,
    },
    /// Finished, successfully or not; nothing more is accepted.
    Done,
}

impl ScramServer {
    /// The only SASL mechanism the proxy advertises (same as [`MECHANISM`]).
    pub const MECHANISM: &'static str = MECHANISM;

    /// Prepares an exchange for a user with this secret. For a plaintext
    /// password a fresh salt is drawn each time, so nothing derived from the
    /// password is ever reused between connections.
    pub fn new(secret: &PasswordSecret) -> Result<ScramServer, AuthError> {
        let verifier = match secret {
            PasswordSecret::Plain(password) => {
                let salt: [u8; SALT_LEN] = rand::rng().random();
                ScramVerifier::from_password(password.as_bytes(), &salt, PLAIN_ITERATIONS)
            }
            PasswordSecret::Scram(verifier) => verifier.clone(),
            PasswordSecret::Md5(_) => return Err(AuthError::Md5SecretForScram),
        };
        Ok(ScramServer {
            verifier,
            state: ScramState::Initial,
        })
    }

    /// Takes the mechanism and data of the client's SASLInitialResponse and
    /// returns the server-first-message.
    pub fn client_first(&mut self, mechanism: &str, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(
            std::mem::replace(&mut self.state, ScramState::Done),
            ScramState::Initial
        ) {
            return Err(AuthError::OutOfOrder(
                "the client sent a second SCRAM first message",
            ));
        }
        if mechanism != Self::MECHANISM {
            return Err(AuthError::UnsupportedMechanism(mechanism.to_owned()));
        }
        let message = utf8(message)?;
        let (gs2_header, client_first_bare) = split_gs2_header(message)?;
        let client_nonce = parse_client_first_bare(client_first_bare)?;

        let server_nonce: [u8; SERVER_NONCE_LEN] = rand::rng().random();
        let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = ScramState::SentServerFirst {
            gs2_header: gs2_header.to_owned(),
            client_first_bare: client_first_bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// Takes the client's SASLResponse (client-final-message), checks its
    /// proof and returns the server-final-message (`v=<ServerSignature>`).
    pub fn client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let ScramState::SentServerFirst {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, ScramState::Done)
        else {
            return Err(AuthError::OutOfOrder(
                "the client sent a SCRAM final message before its first message",
            ));
        };
        let message = utf8(message)?;
        let fin = parse_client_final(message)?;

        if BASE64.decode(fin.channel_binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if fin.nonce != nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof: [u8; 32] = BASE64
            .decode(fin.proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| malformed("the proof `p=` is not 32 bytes of base64"))?;

        let auth_message = [
            client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            fin.without_proof.as_bytes(),
        ];
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and the
        // client knows the password exactly when H(ClientKey) = StoredKey.
        let signature = hmac(&self.verifier.stored_key, &auth_message);
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(signature) {
            *k ^= s;
        }
        let stored_key = sha2::Sha256::digest(client_key);
        if !ct_eq::<Sha256>(stored_key, self.verifier.stored_key.into()) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, &auth_message);
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ScramState::Initial => "Initial",
            ScramState::SentServerFirst { .. } => "SentServerFirst",
            ScramState::Done => "Done",
        };
        f.debug_struct("ScramServer")
            .field("verifier", &self.verifier)
            .field("state", &state)
            .finish()
    }
}

/// The attributes of a client-final-message the server looks at.
struct ClientFinal<'a> {
    /// `c=`: base64 of the GS2 header (no channel-binding data here).
    channel_binding: &'a str,
    /// `r=`: the combined nonce.
    nonce: &'a str,
    /// `p=`: base64 ClientProof.
    proof: &'a str,
    /// Everything before `,p=`, which is part of the AuthMessage.
    without_proof: &'a str,
}

/// Splits `gs2-header client-first-message-bare`, accepting only the headers
/// that mean "no channel binding".
fn split_gs2_header(message: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = message.splitn(3, ',');
    let (flag, authzid, bare) = match (parts.next(), parts.next(), parts.next()) {
        (Some(f), Some(a), Some(b)) => (f, a, b),
        _ => return Err(malformed("the GS2 header is incomplete")),
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(AuthError::ChannelBindingRequired),
        _ => {
            return Err(malformed(
                "the GS2 channel-binding flag is not `n`, `y` or `p=`",
            ))
        }
    }
    // PostgreSQL does not support authorization identities either.
    if !authzid.is_empty() {
        return Err(malformed(
            "authorization identities (`a=`) are not supported",
        ));
    }
    let header_len = flag.len() + authzid.len() + 2;
    Ok((&message[..header_len], bare))
}

/// Reads `n=<user>,r=<nonce>[,ext...]` and returns the nonce. The user name
/// is ignored: PostgreSQL clients leave it empty and send the startup user.
fn parse_client_first_bare(bare: &str) -> Result<&str, AuthError> {
    if bare.starts_with("m=") {
        return Err(malformed("mandatory extensions (`m=`) are not supported"));
    }
    let mut attrs = bare.split(',');
    if !attrs.next().is_some_and(|a| a.starts_with("n=")) {
        return Err(malformed("the first message does not start with `n=`"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("the first message has no nonce `r=`"))?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(malformed(
            "the client nonce is empty or not printable ASCII",
        ));
    }
    Ok(nonce)
}

/// Reads `c=<cbind>,r=<nonce>[,ext...],p=<proof>`.
fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, AuthError> {
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("the final message has no proof `p=`"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed("the final message does not start with `c=`"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("the final message has no nonce `r=` after `c=`"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

fn malformed(what: &str) -> AuthError {
    AuthError::MalformedScram(what.to_owned())
}

fn utf8(message: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(message).map_err(|_| malformed("it is not valid UTF-8"))
}

/// HMAC-SHA-256 of the concatenated `parts`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Compares two digests in constant time, so a timing difference never
/// tells an attacker how many leading bytes of a guess were right.
fn ct_eq<D: hmac::digest::OutputSizeUser>(a: Output<D>, b: Output<D>) -> bool {
    CtOutput::<D>::new(a) == CtOutput::<D>::new(b)
}

/// A fresh random salt for one AuthenticationMD5Password request.
pub fn md5_salt() -> [u8; 4] {
    rand::rng().random()
}

/// Checks a client's answer to AuthenticationMD5Password. `response` is the
/// PasswordMessage body: `md5` and 32 hex digits, with or without its NUL.
/// With an [`PasswordSecret::Md5`] secret, `user` is already baked into the
/// hash, so the hash must have been made for this same user name.
pub fn md5_verify(
    secret: &PasswordSecret,
    user: &str,
    salt: [u8; 4],
    response: &[u8],
) -> Result<(), AuthError> {
    let inner_hex = match secret {
        PasswordSecret::Plain(password) => md5_hex(&[password.as_bytes(), user.as_bytes()]),
        PasswordSecret::Md5(hex) => hex.clone(),
        PasswordSecret::Scram(_) => return Err(AuthError::ScramSecretForMd5),
    };
    let response = response.strip_suffix(b"\0").unwrap_or(response);
    let sent = response
        .strip_prefix(b"md5")
        .and_then(hex_decode::<16>)
        .ok_or(AuthError::MalformedMd5Response)?;
    let expected = Md5::new()
        .chain_update(inner_hex)
        .chain_update(salt)
        .finalize();
    if ct_eq::<Md5>(expected, sent.into()) {
        Ok(())
    } else {
        Err(AuthError::WrongPassword)
    }
}

/// Checks a cleartext password (the PasswordMessage body, with or without its
/// NUL) against any kind of secret.
pub fn verify_cleartext(
    secret: &PasswordSecret,
    user: &str,
    password: &[u8],
) -> Result<(), AuthError> {
    let password = password.strip_suffix(b"\0").unwrap_or(password);
    let matches = match secret {
        // Hashing both sides first makes the comparison fixed-length, so it
        // can be constant-time without leaking the password's length.
        PasswordSecret::Plain(expected) => ct_eq::<Sha256>(
            sha2::Sha256::digest(password),
            sha2::Sha256::digest(expected.as_bytes()),
        ),
        PasswordSecret::Md5(hex) => {
            let expected = hex_decode::<16>(hex.as_bytes()).ok_or(AuthError::WrongPassword)?;
            let actual = Md5::new()
                .chain_update(password)
                .chain_update(user.as_bytes())
                .finalize();
            ct_eq::<Md5>(actual, expected.into())
        }
        PasswordSecret::Scram(v) => {
            let derived = ScramVerifier::from_password(password, &v.salt, v.iterations);
            ct_eq::<Sha256>(derived.stored_key.into(), v.stored_key.into())
        }
    };
    if matches {
        Ok(())
    } else {
        Err(AuthError::WrongPassword)
    }
}

/// Lowercase hex of the MD5 of the concatenated `parts`.
fn md5_hex(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part);
    }
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes exactly `N` bytes of hex (either case); `None` on anything else.
fn hex_decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = u8::try_from(nibble(pair[0])? * 16 + nibble(pair[1])?).ok()?;
    }
    Some(out)
}

/// One backend Authentication ('R') message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    /// AuthenticationOk (0): logged in.
    Ok,
    /// AuthenticationCleartextPassword (3).
    Cleartext,
    /// AuthenticationMD5Password (5).
    Md5 {
        /// Salt to hash the password with.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10).
    Sasl {
        /// Mechanisms the backend offers, in its order of preference.
        mechanisms: Vec<&'a str>,
    },
    /// AuthenticationSASLContinue (11): the server-first-message.
    SaslContinue(&'a [u8]),
    /// AuthenticationSASLFinal (12): the server-final-message.
    SaslFinal(&'a [u8]),
    /// Any other code (Kerberos, GSSAPI, SSPI, ...), which we cannot answer.
    Unsupported(i32),
}

impl<'a> AuthRequest<'a> {
    /// Parses an 'R' message body: the bytes after the 5-byte header, an
    /// int32 code followed by the code's data.
    pub fn parse(body: &'a [u8]) -> Result<AuthRequest<'a>, AuthError> {
        let bad = |what: &str| AuthError::MalformedRequest(what.to_owned());
        let (code, data) = body
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("it is shorter than its 4-byte code"))?;
        let code = i32::from_be_bytes(*code);
        let no_data = |request| {
            if data.is_empty() {
                Ok(request)
            } else {
                Err(bad(&format!("code {code} carries unexpected data")))
            }
        };
        match code {
            0 => no_data(AuthRequest::Ok),
            3 => no_data(AuthRequest::Cleartext),
            5 => <[u8; 4]>::try_from(data)
                .map(|salt| AuthRequest::Md5 { salt })
                .map_err(|_| bad("the md5 salt is not 4 bytes")),
            10 => parse_mechanisms(data).map(|mechanisms| AuthRequest::Sasl { mechanisms }),
            11 => Ok(AuthRequest::SaslContinue(data)),
            12 => Ok(AuthRequest::SaslFinal(data)),
            other => Ok(AuthRequest::Unsupported(other)),
        }
    }
}

/// Reads the NUL-terminated mechanism names of AuthenticationSASL, which end
/// with an empty name.
fn parse_mechanisms(mut data: &[u8]) -> Result<Vec<&str>, AuthError> {
    let bad = |what: &str| AuthError::MalformedRequest(what.to_owned());
    let mut mechanisms = Vec::new();
    loop {
        let nul = data
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("the SASL mechanism list is not terminated"))?;
        let (name, rest) = (&data[..nul], &data[nul + 1..]);
        if name.is_empty() {
            if !rest.is_empty() {
                return Err(bad("data follows the SASL mechanism list"));
            }
            return Ok(mechanisms);
        }
        let name =
            std::str::from_utf8(name).map_err(|_| bad("a SASL mechanism name is not UTF-8"))?;
        mechanisms.push(name);
        data = rest;
    }
}

/// Human name of an Authentication code we do not implement, for errors.
fn method_name(code: i32) -> &'static str {
    match code {
        2 => "Kerberos V5",
        6 => "SCM credentials",
        7 => "GSSAPI",
        8 => "GSSAPI continue",
        9 => "SSPI",
        _ => "unknown",
    }
}

/// The proxy's side of logging in to a backend: answers each Authentication
/// request with the frontend message to send.
pub struct BackendAuth {
    /// The backend user we log in as; md5 hashes include it.
    user: String,
    /// The backend user's password; empty means none is configured.
    password: String,
    /// Where a SCRAM exchange stands, if one has started.
    scram: BackendScram,
}

/// Progress of a SCRAM login to a backend.
enum BackendScram {
    /// No SCRAM exchange has started.
    Idle,
    /// Sent client-first; waiting for AuthenticationSASLContinue.
    SentFirst(ScramSha256),
    /// Sent client-final; waiting for AuthenticationSASLFinal.
    SentFinal(ScramSha256),
    /// The backend proved it knows the password.
    Verified,
    /// A SCRAM step failed; the login is over.
    Failed,
}

impl BackendAuth {
    /// Prepares a login as `user`; an empty `password` means none is configured.
    pub fn new(user: &str, password: &str) -> BackendAuth {
        BackendAuth {
            user: user.to_owned(),
            password: password.to_owned(),
            scram: BackendScram::Idle,
        }
    }

    /// Answers one Authentication request. Returns the complete frontend
    /// message to send (tag and length included), or `None` when there is
    /// nothing to send (SASL final, or AuthenticationOk).
    pub fn respond(&mut self, request: AuthRequest<'_>) -> Result<Option<BytesMut>, AuthError> {
        let mut out = BytesMut::new();
        match request {
            AuthRequest::Ok => {
                // A backend that says Ok in the middle of SCRAM skipped
                // proving that it knows the password; it may be an impostor.
                if !matches!(self.scram, BackendScram::Idle | BackendScram::Verified) {
                    return Err(AuthError::BackendScram(
                        "the backend accepted the login without completing SCRAM".to_owned(),
                    ));
                }
                return Ok(None);
            }
            AuthRequest::Cleartext => {
                let password = self.password()?.as_bytes();
                frontend::password_message(password, &mut out).map_err(encode)?;
            }
            AuthRequest::Md5 { salt } => {
                let password = self.password()?.as_bytes();
                let hash = postgres_protocol::authentication::md5_hash(
                    self.user.as_bytes(),
                    password,
                    salt,
                );
                frontend::password_message(hash.as_bytes(), &mut out).map_err(encode)?;
            }
            AuthRequest::Sasl { mechanisms } => {
                if !matches!(self.scram, BackendScram::Idle) {
                    return Err(AuthError::OutOfOrder("the backend started SASL twice"));
                }
                if !mechanisms.contains(&ScramServer::MECHANISM) {
                    let offered = mechanisms.iter().map(|m| (*m).to_owned()).collect();
                    return Err(AuthError::BackendMechanisms { offered });
                }
                // We never do channel binding, so we say "not supported"
                // (`n,,`) even when the backend offers SCRAM-SHA-256-PLUS.
                let scram =
                    ScramSha256::new(self.password()?.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(ScramServer::MECHANISM, scram.message(), &mut out)
                    .map_err(encode)?;
                self.scram = BackendScram::SentFirst(scram);
            }
            AuthRequest::SaslContinue(data) => {
                let BackendScram::SentFirst(mut scram) =
                    std::mem::replace(&mut self.scram, BackendScram::Failed)
                else {
                    return Err(AuthError::OutOfOrder(
                        "the backend sent SASLContinue outside a SCRAM exchange",
                    ));
                };
                scram.update(data).map_err(backend_scram)?;
                frontend::sasl_response(scram.message(), &mut out).map_err(encode)?;
                self.scram = BackendScram::SentFinal(scram);
            }
            AuthRequest::SaslFinal(data) => {
                let BackendScram::SentFinal(mut scram) =
                    std::mem::replace(&mut self.scram, BackendScram::Failed)
                else {
                    return Err(AuthError::OutOfOrder(
                        "the backend sent SASLFinal before SASLContinue",
                    ));
                };
                scram.finish(data).map_err(backend_scram)?;
                self.scram = BackendScram::Verified;
                return Ok(None);
            }
            AuthRequest::Unsupported(code) => {
                return Err(AuthError::BackendMethodUnsupported {
                    code,
                    name: method_name(code),
                })
            }
        }
        Ok(Some(out))
    }

    fn password(&self) -> Result<&str, AuthError> {
        if self.password.is_empty() {
            return Err(AuthError::NoBackendPassword {
                user: self.user.clone(),
            });
        }
        Ok(&self.password)
    }
}

impl fmt::Debug for BackendAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn encode(e: std::io::Error) -> AuthError {
    AuthError::Encode(e.to_string())
}

fn backend_scram(e: std::io::Error) -> AuthError {
    AuthError::BackendScram(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Made by PostgreSQL 15 for password `pencil` (`CREATE ROLE ... PASSWORD
    /// 'pencil'` with scram-sha-256, read from pg_authid, rolled back).
    const PG_VERIFIER: &str = "SCRAM-SHA-256$4096:J5fsEXrK34C6Tdq9lK7HOQ==$1aaaMXOvi9COINcxs+aFLFaSRFed67Ar7CmxWUetIk4=:Qm7qpsAUc+AgqiLQlM3QrX11lj7Y5sMUip5TlOwnZSk=";
    /// Made by PostgreSQL 15 for password `pencil` and role `PG_MD5_USER`.
    const PG_MD5: &str = "md53967bbf270be918c01496bcb5e75aca5";
    const PG_MD5_USER: &str = "sy_auth_fixture_tmp";

    fn plain(password: &str) -> PasswordSecret {
        PasswordSecret::Plain(password.to_owned())
    }

    fn pg_verifier() -> PasswordSecret {
        PasswordSecret::parse(PG_VERIFIER).unwrap()
    }

    /// Runs a whole SCRAM exchange between postgres-protocol's client and our
    /// server; returns the server's verdict and, on success, the client's
    /// verdict on the server-final-message.
    fn scram_exchange(
        secret: &PasswordSecret,
        password: &str,
        binding: ChannelBinding,
    ) -> Result<std::io::Result<()>, AuthError> {
        let mut server = ScramServer::new(secret).unwrap();
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let server_first = server.client_first(MECHANISM, client.message())?;
        client.update(&server_first).unwrap();
        let server_final = server.client_final(client.message())?;
        Ok(client.finish(&server_final))
    }

    /// The `s=` attribute of a server-first-message.
    fn salt_of(server_first: &[u8]) -> String {
        let text = std::str::from_utf8(server_first).unwrap();
        let salt = text.split(',').find_map(|a| a.strip_prefix("s="));
        salt.unwrap().to_owned()
    }

    #[test]
    fn scram_accepts_right_password_and_client_accepts_server() {
        let known_salt = ScramVerifier::from_password(b"hunter2", b"0123456789abcdef", 4096);
        let secrets = [
            plain("hunter2"),
            PasswordSecret::Scram(known_salt),
            PasswordSecret::parse(&ScramVerifier::from_password(b"hunter2", b"s", 1).to_string())
                .unwrap(),
        ];
        for secret in &secrets {
            for binding in [ChannelBinding::unsupported(), ChannelBinding::unrequested()] {
                let client_verdict = scram_exchange(secret, "hunter2", binding);
                assert!(
                    matches!(client_verdict, Ok(Ok(()))),
                    "{secret:?}: {client_verdict:?}"
                );
            }
        }
        let verdict = scram_exchange(&pg_verifier(), "pencil", ChannelBinding::unsupported());
        assert!(matches!(verdict, Ok(Ok(()))), "{verdict:?}");
    }

    #[test]
    fn scram_rejects_wrong_password() {
        for secret in [plain("hunter2"), pg_verifier()] {
            let verdict = scram_exchange(&secret, "hunter3", ChannelBinding::unsupported());
            assert_eq!(verdict.unwrap_err(), AuthError::WrongPassword);
        }
    }

    #[test]
    fn derived_verifier_matches_postgres() {
        let PasswordSecret::Scram(pg) = pg_verifier() else {
            panic!("not a verifier")
        };
        let ours = ScramVerifier::from_password(b"pencil", &pg.salt, pg.iterations);
        // SASLprep maps a non-ASCII space to an ASCII one, as clients do.
        let nbsp = ScramVerifier::from_password("a\u{00A0}b".as_bytes(), b"salt", 16);
        assert_eq!(nbsp, ScramVerifier::from_password(b"a b", b"salt", 16));
        assert_eq!(ours.to_string(), PG_VERIFIER);
    }

    #[test]
    fn plain_secret_gets_a_fresh_salt_per_exchange() {
        let secret = plain("hunter2");
        let first = |_| {
            let mut server = ScramServer::new(&secret).unwrap();
            server.client_first(MECHANISM, b"n,,n=,r=abc").unwrap()
        };
        let (a, b) = (first(0), first(1));
        assert_ne!(salt_of(&a), salt_of(&b));
        assert_eq!(BASE64.decode(salt_of(&a)).unwrap().len(), SALT_LEN);
        assert!(a.starts_with(b"r=abc") && a.ends_with(b",i=4096"));
    }

    #[test]
    fn scram_refuses_md5_secret() {
        let err = ScramServer::new(&PasswordSecret::parse(PG_MD5).unwrap()).unwrap_err();
        assert_eq!(err, AuthError::Md5SecretForScram);
        assert!(err
            .to_string()
            .contains("Configure the plaintext password or a SCRAM verifier"));
    }

    #[test]
    fn scram_client_first_rejections() {
        let cases: &[(&str, &[u8], AuthError)] = &[
            (
                "SCRAM-SHA-256-PLUS",
                b"p=tls-server-end-point,,n=,r=abc",
                AuthError::UnsupportedMechanism("SCRAM-SHA-256-PLUS".into()),
            ),
            (
                MECHANISM,
                b"p=tls-server-end-point,,n=,r=abc",
                AuthError::ChannelBindingRequired,
            ),
            (
                MECHANISM,
                b"x,,n=,r=abc",
                malformed("the GS2 channel-binding flag is not `n`, `y` or `p=`"),
            ),
            (
                MECHANISM,
                b"n,a=bob,n=,r=abc",
                malformed("authorization identities (`a=`) are not supported"),
            ),
            (
                MECHANISM,
                b"n,,m=ext,n=,r=abc",
                malformed("mandatory extensions (`m=`) are not supported"),
            ),
            (
                MECHANISM,
                b"n,,n=",
                malformed("the first message has no nonce `r=`"),
            ),
            (
                MECHANISM,
                b"n,,r=abc",
                malformed("the first message does not start with `n=`"),
            ),
            (
                MECHANISM,
                b"n,,n=,r=",
                malformed("the client nonce is empty or not printable ASCII"),
            ),
            (
                MECHANISM,
                b"n,,n=,r=a b",
                malformed("the client nonce is empty or not printable ASCII"),
            ),
            (MECHANISM, b"n,", malformed("the GS2 header is incomplete")),
            (
                MECHANISM,
                b"n,,n=,r=\xff",
                malformed("it is not valid UTF-8"),
            ),
        ];
        for (mechanism, message, expected) in cases {
            let mut server = ScramServer::new(&pg_verifier()).unwrap();
            let got = server.client_first(mechanism, message).unwrap_err();
            assert_eq!(&got, expected, "{}", String::from_utf8_lossy(message));
            // A failed exchange is over.
            assert!(server.client_first(MECHANISM, b"n,,n=,r=abc").is_err());
        }
        // A user name is ignored, and extensions after the nonce are allowed.
        let mut server = ScramServer::new(&pg_verifier()).unwrap();
        assert!(server
            .client_first(MECHANISM, b"y,,n=someone,r=abc,x=1")
            .is_ok());
    }

    #[test]
    fn scram_client_final_rejections() {
        let mut client = ScramSha256::new(b"pencil", ChannelBinding::unsupported());
        let mut server = ScramServer::new(&pg_verifier()).unwrap();
        let server_first = server.client_first(MECHANISM, client.message()).unwrap();
        client.update(&server_first).unwrap();
        let good = String::from_utf8(client.message().to_vec()).unwrap();
        let (c, rest) = good.split_once(',').unwrap();
        let (r, p) = rest.split_once(',').unwrap();
        assert_eq!(c, "c=biws"); // base64("n,,")

        let try_final = |message: &str| {
            let mut server = ScramServer::new(&pg_verifier()).unwrap();
            server.state = ScramState::SentServerFirst {
                gs2_header: "n,,".into(),
                client_first_bare: String::new(),
                server_first: String::new(),
                nonce: r[2..].to_owned(),
            };
            server.client_final(message.as_bytes()).unwrap_err()
        };
        let cases = [
            (format!("c=eSws,{r},{p}"), AuthError::ChannelBindingMismatch),
            (format!("c=!!,{r},{p}"), AuthError::ChannelBindingMismatch),
            (format!("{c},r=other,{p}"), AuthError::NonceMismatch),
            (
                format!("{c},{r}"),
                malformed("the final message has no proof `p=`"),
            ),
            (
                format!("{r},{c},{p}"),
                malformed("the final message does not start with `c=`"),
            ),
            (
                format!("{c},{p}"),
                malformed("the final message has no nonce `r=` after `c=`"),
            ),
            (
                format!("{c},{r},p=AAAA"),
                malformed("the proof `p=` is not 32 bytes of base64"),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(try_final(&message), expected, "{message}");
        }
        // Every truncation of a good message is refused, none panics.
        for end in 0..good.len() {
            assert!(try_final(&good[..end]).to_string().len() > 1);
        }
        // The real server, with the untouched message, succeeds exactly once.
        assert!(server.client_final(good.as_bytes()).is_ok());
        assert_eq!(
            server.client_final(good.as_bytes()).unwrap_err(),
            AuthError::OutOfOrder("the client sent a SCRAM final message before its first message")
        );
    }

    #[test]
    fn scram_final_before_first_is_out_of_order() {
        let mut server = ScramServer::new(&pg_verifier()).unwrap();
        assert!(matches!(
            server.client_final(b"c=biws,r=a,p=b"),
            Err(AuthError::OutOfOrder(_))
        ));
    }

    #[test]
    fn password_secret_parsing() {
        let ok: &[(&str, &str)] = &[
            ("hunter2", "Plain"),
            ("", "Plain"),
            ("md5", "Plain"),
            ("md53967bbf270be918c01496bcb5e75aca", "Plain"), // 31 hex digits
            ("md53967bbf270be918c01496bcb5e75acaZ", "Plain"),
            (PG_MD5, "Md5"),
            ("md53967BBF270BE918C01496BCB5E75ACA5", "Md5"),
            (PG_VERIFIER, "Scram"),
        ];
        for (configured, kind) in ok {
            let parsed = PasswordSecret::parse(configured).unwrap();
            let got = match &parsed {
                PasswordSecret::Plain(p) => {
                    assert_eq!(p, configured);
                    "Plain"
                }
                PasswordSecret::Md5(hex) => {
                    assert_eq!(hex, "3967bbf270be918c01496bcb5e75aca5");
                    "Md5"
                }
                PasswordSecret::Scram(v) => {
                    assert_eq!(v.to_string(), *configured);
                    "Scram"
                }
            };
            assert_eq!(got, *kind, "{configured}");
        }

        let key = "1aaaMXOvi9COINcxs+aFLFaSRFed67Ar7CmxWUetIk4=";
        let bad: &[(String, &str)] = &[
            (
                "SCRAM-SHA-256$".into(),
                "the `$` between the parameters and the keys is missing",
            ),
            (
                format!("SCRAM-SHA-256$4096$x:{key}"),
                "the `:` between the iteration count and the salt is missing",
            ),
            (
                format!("SCRAM-SHA-256$0:c2FsdA==${key}:{key}"),
                "the iteration count is not a positive integer",
            ),
            (
                format!("SCRAM-SHA-256$many:c2FsdA==${key}:{key}"),
                "the iteration count is not a positive integer",
            ),
            (
                format!("SCRAM-SHA-256$4096:${key}:{key}"),
                "the salt is not non-empty base64",
            ),
            (
                format!("SCRAM-SHA-256$4096:not*b64${key}:{key}"),
                "the salt is not non-empty base64",
            ),
            (
                "SCRAM-SHA-256$4096:c2FsdA==$abc".into(),
                "the `:` between StoredKey and ServerKey is missing",
            ),
            (
                format!("SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:{key}"),
                "StoredKey is not 32 bytes of base64",
            ),
            (
                format!("SCRAM-SHA-256$4096:c2FsdA==${key}:"),
                "ServerKey is not 32 bytes of base64",
            ),
        ];
        for (configured, reason) in bad {
            assert_eq!(
                PasswordSecret::parse(configured).unwrap_err(),
                AuthError::MalformedVerifier((*reason).to_owned()),
                "{configured}"
            );
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!(
            "{:?} {:?} {:?}",
            plain("hunter2"),
            pg_verifier(),
            PasswordSecret::parse(PG_MD5)
        );
        assert!(!shown.contains("hunter2") && !shown.contains("3967bb") && !shown.contains("1aaa"));
    }

    #[test]
    fn md5_verification() {
        let salt = [1, 2, 3, 4];
        let response = |user: &str, password: &str| {
            let hash = postgres_protocol::authentication::md5_hash(
                user.as_bytes(),
                password.as_bytes(),
                salt,
            );
            format!("{hash}\0").into_bytes()
        };
        let md5 = PasswordSecret::parse(PG_MD5).unwrap();
        for secret in [plain("pencil"), md5] {
            let good = response(PG_MD5_USER, "pencil");
            assert_eq!(md5_verify(&secret, PG_MD5_USER, salt, &good), Ok(()));
            // The trailing NUL is optional, and upper-case hex is fine.
            let upper = good[..35].to_ascii_uppercase();
            let upper = [b"md5", &upper[3..]].concat();
            assert_eq!(md5_verify(&secret, PG_MD5_USER, salt, &upper), Ok(()));
            let wrong = [
                response(PG_MD5_USER, "pencil2"),
                response("someone_else", "pencil"),
            ];
            for bad in wrong {
                assert_eq!(
                    md5_verify(&secret, PG_MD5_USER, salt, &bad),
                    Err(AuthError::WrongPassword)
                );
            }
            assert_eq!(
                md5_verify(&secret, PG_MD5_USER, [4, 3, 2, 1], &good),
                Err(AuthError::WrongPassword)
            );
            for malformed in [
                &b""[..],
                b"md5",
                b"pencil\0",
                &good[..34],
                b"md5zz67bbf270be918c01496bcb5e75aca5",
            ] {
                assert_eq!(
                    md5_verify(&secret, PG_MD5_USER, salt, malformed),
                    Err(AuthError::MalformedMd5Response)
                );
            }
        }
        assert_eq!(
            md5_verify(
                &pg_verifier(),
                PG_MD5_USER,
                salt,
                &response(PG_MD5_USER, "pencil")
            ),
            Err(AuthError::ScramSecretForMd5)
        );
        assert_ne!(md5_salt(), md5_salt()); // 1 in 2^32 to fail by chance
    }

    #[test]
    fn cleartext_verification() {
        let secrets = [
            plain("pencil"),
            PasswordSecret::parse(PG_MD5).unwrap(),
            pg_verifier(),
        ];
        for secret in &secrets {
            assert_eq!(
                verify_cleartext(secret, PG_MD5_USER, b"pencil\0"),
                Ok(()),
                "{secret:?}"
            );
            assert_eq!(
                verify_cleartext(secret, PG_MD5_USER, b"pencil"),
                Ok(()),
                "{secret:?}"
            );
            for wrong in [&b"pencil2"[..], b"", b"Pencil", b"pencil \0"] {
                assert_eq!(
                    verify_cleartext(secret, PG_MD5_USER, wrong),
                    Err(AuthError::WrongPassword)
                );
            }
        }
    }

    /// Splits a frontend frame into tag and body, checking its length field.
    fn frame(bytes: &[u8]) -> (u8, &[u8]) {
        let len = i32::from_be_bytes(bytes[1..5].try_into().unwrap());
        assert_eq!(len as usize, bytes.len() - 1);
        (bytes[0], &bytes[5..])
    }

    /// An 'R' body: code and data.
    fn request_body(code: i32, data: &[u8]) -> Vec<u8> {
        [&code.to_be_bytes()[..], data].concat()
    }

    /// Logs `backend` in to `server` by SCRAM, as a backend connection would.
    fn backend_scram_login(
        backend: &mut BackendAuth,
        server: &mut ScramServer,
    ) -> Result<(), AuthError> {
        let sasl = request_body(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let initial = backend.respond(AuthRequest::parse(&sasl)?)?.unwrap();
        let (tag, body) = frame(&initial);
        assert_eq!(tag, b'p');
        let (mechanism, rest) = body.split_at(body.iter().position(|&b| b == 0).unwrap());
        assert_eq!(mechanism, MECHANISM.as_bytes());
        let (len, data) = rest[1..].split_at(4);
        assert_eq!(
            i32::from_be_bytes(len.try_into().unwrap()) as usize,
            data.len()
        );
        assert!(data.starts_with(b"n,,n=,r="));

        let cont = request_body(11, &server.client_first(MECHANISM, data)?);
        let response = backend.respond(AuthRequest::parse(&cont)?)?.unwrap();
        let (tag, body) = frame(&response);
        assert_eq!(tag, b'p');

        let fin = request_body(12, &server.client_final(body)?);
        assert_eq!(backend.respond(AuthRequest::parse(&fin)?)?, None);
        assert_eq!(backend.respond(AuthRequest::Ok)?, None);
        Ok(())
    }

    #[test]
    fn backend_scram_round_trip() {
        for secret in [plain("pencil"), pg_verifier()] {
            let mut server = ScramServer::new(&secret).unwrap();
            let mut backend = BackendAuth::new("app", "pencil");
            assert_eq!(backend_scram_login(&mut backend, &mut server), Ok(()));

            let mut server = ScramServer::new(&secret).unwrap();
            let mut backend = BackendAuth::new("app", "wrong");
            assert_eq!(
                backend_scram_login(&mut backend, &mut server),
                Err(AuthError::WrongPassword)
            );
        }
    }

    #[test]
    fn backend_refuses_an_impostor_server() {
        let mut server = ScramServer::new(&plain("pencil")).unwrap();
        let mut backend = BackendAuth::new("app", "pencil");
        let initial = backend
            .respond(AuthRequest::Sasl {
                mechanisms: vec![MECHANISM],
            })
            .unwrap()
            .unwrap();
        let data = &frame(&initial).1[MECHANISM.len() + 5..];
        let server_first = server.client_first(MECHANISM, data).unwrap();
        backend
            .respond(AuthRequest::SaslContinue(&server_first))
            .unwrap();
        // Skipping SASLFinal must not count as a login.
        assert!(matches!(
            backend.respond(AuthRequest::Ok),
            Err(AuthError::BackendScram(_))
        ));
        // A forged server signature is refused.
        let forged = format!("v={}", BASE64.encode([0u8; 32]));
        let mut backend = BackendAuth::new("app", "pencil");
        let mut server = ScramServer::new(&plain("pencil")).unwrap();
        let initial = backend
            .respond(AuthRequest::Sasl {
                mechanisms: vec![MECHANISM],
            })
            .unwrap()
            .unwrap();
        let data = &frame(&initial).1[MECHANISM.len() + 5..];
        let server_first = server.client_first(MECHANISM, data).unwrap();
        backend
            .respond(AuthRequest::SaslContinue(&server_first))
            .unwrap();
        let err = backend
            .respond(AuthRequest::SaslFinal(forged.as_bytes()))
            .unwrap_err();
        assert!(matches!(err, AuthError::BackendScram(_)), "{err}");
        assert!(matches!(
            backend.respond(AuthRequest::Ok),
            Err(AuthError::BackendScram(_))
        ));
    }

    #[test]
    fn backend_password_methods() {
        let mut backend = BackendAuth::new(PG_MD5_USER, "pencil");
        let reply = backend
            .respond(AuthRequest::Md5 { salt: [9, 8, 7, 6] })
            .unwrap()
            .unwrap();
        let (tag, body) = frame(&reply);
        assert_eq!(tag, b'p');
        let md5 = PasswordSecret::parse(PG_MD5).unwrap();
        assert_eq!(md5_verify(&md5, PG_MD5_USER, [9, 8, 7, 6], body), Ok(()));

        let reply = backend.respond(AuthRequest::Cleartext).unwrap().unwrap();
        assert_eq!(frame(&reply), (b'p', &b"pencil\0"[..]));
    }

    #[test]
    fn backend_refusals() {
        let mut none = BackendAuth::new("app", "");
        let no_password = AuthError::NoBackendPassword { user: "app".into() };
        assert_eq!(
            none.respond(AuthRequest::Cleartext),
            Err(no_password.clone())
        );
        assert_eq!(
            none.respond(AuthRequest::Md5 { salt: [0; 4] }),
            Err(no_password.clone())
        );
        let sasl = AuthRequest::Sasl {
            mechanisms: vec![MECHANISM],
        };
        assert_eq!(none.respond(sasl), Err(no_password.clone()));
        assert!(no_password.to_string().contains("the backend's password"));
        assert_eq!(none.respond(AuthRequest::Ok), Ok(None)); // trust needs no password

        let mut backend = BackendAuth::new("app", "pencil");
        let plus_only = AuthRequest::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS"],
        };
        assert_eq!(
            backend.respond(plus_only),
            Err(AuthError::BackendMechanisms {
                offered: vec!["SCRAM-SHA-256-PLUS".into()]
            })
        );
        assert_eq!(
            backend.respond(AuthRequest::Unsupported(7)),
            Err(AuthError::BackendMethodUnsupported {
                code: 7,
                name: "GSSAPI"
            })
        );
        assert!(matches!(
            backend.respond(AuthRequest::SaslContinue(b"r=x")),
            Err(AuthError::OutOfOrder(_))
        ));
        assert!(matches!(
            backend.respond(AuthRequest::SaslFinal(b"v=x")),
            Err(AuthError::OutOfOrder(_))
        ));
        let mut nul = BackendAuth::new("app", "pen\0cil");
        assert!(matches!(
            nul.respond(AuthRequest::Cleartext),
            Err(AuthError::Encode(_))
        ));
    }

    #[test]
    fn auth_request_parsing() {
        let cases: Vec<(Vec<u8>, AuthRequest<'static>)> = vec![
            (request_body(0, b""), AuthRequest::Ok),
            (request_body(3, b""), AuthRequest::Cleartext),
            (
                request_body(5, &[1, 2, 3, 4]),
                AuthRequest::Md5 { salt: [1, 2, 3, 4] },
            ),
            (
                request_body(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
                AuthRequest::Sasl {
                    mechanisms: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
                },
            ),
            (
                request_body(10, b"\0"),
                AuthRequest::Sasl { mechanisms: vec![] },
            ),
            (
                request_body(11, b"r=abc,s=xyz,i=1"),
                AuthRequest::SaslContinue(b"r=abc,s=xyz,i=1"),
            ),
            (request_body(12, b"v=abc"), AuthRequest::SaslFinal(b"v=abc")),
            (request_body(7, b""), AuthRequest::Unsupported(7)),
            (request_body(-1, b"junk"), AuthRequest::Unsupported(-1)),
        ];
        for (body, expected) in &cases {
            assert_eq!(&AuthRequest::parse(body).unwrap(), expected);
            // Every truncation parses to something or fails; none panics.
            for end in 0..body.len() {
                let _ = AuthRequest::parse(&body[..end]);
            }
        }
        let bad = [
            (vec![], "it is shorter than its 4-byte code"),
            (vec![0, 0, 0], "it is shorter than its 4-byte code"),
            (request_body(0, b"x"), "code 0 carries unexpected data"),
            (request_body(3, b"\0"), "code 3 carries unexpected data"),
            (request_body(5, &[1, 2, 3]), "the md5 salt is not 4 bytes"),
            (
                request_body(5, &[1, 2, 3, 4, 5]),
                "the md5 salt is not 4 bytes",
            ),
            (
                request_body(10, b""),
                "the SASL mechanism list is not terminated",
            ),
            (
                request_body(10, b"SCRAM-SHA-256"),
                "the SASL mechanism list is not terminated",
            ),
            (
                request_body(10, b"SCRAM-SHA-256\0"),
                "the SASL mechanism list is not terminated",
            ),
            (
                request_body(10, b"A\0\0B"),
                "data follows the SASL mechanism list",
            ),
            (
                request_body(10, b"\xff\0\0"),
                "a SASL mechanism name is not UTF-8",
            ),
        ];
        for (body, reason) in bad {
            assert_eq!(
                AuthRequest::parse(&body),
                Err(AuthError::MalformedRequest(reason.to_owned())),
                "{body:?}"
            );
        }
    }

    /// A server that has answered a valid client-first-message.
    fn server_after_first() -> ScramServer {
        let mut server = ScramServer::new(&pg_verifier()).unwrap();
        server.client_first(MECHANISM, b"n,,n=,r=abc").unwrap();
        server
    }

    proptest! {
        #[test]
        fn client_first_never_panics(mechanism in ".{0,20}", message in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut server = ScramServer::new(&pg_verifier()).unwrap();
            let _ = server.client_first(&mechanism, &message);
            let _ = server.client_first(MECHANISM, &message);
        }

        #[test]
        fn client_first_text_never_panics(message in "[nyp][,=a-z]{0,6}[,nr=a-z0-9]{0,30}") {
            let mut server = ScramServer::new(&pg_verifier()).unwrap();
            let _ = server.client_first(MECHANISM, message.as_bytes());
        }

        #[test]
        fn client_final_never_panics(message in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = server_after_first().client_final(&message);
        }

        #[test]
        fn client_final_text_never_panics(message in "(c=[a-zA-Z0-9+/=]{0,8},)?(r=[a-zA-Z0-9+/=]{0,30},)?([a-z]=[a-z]{0,3},)?p=[a-zA-Z0-9+/=]{0,50}") {
            prop_assert!(server_after_first().client_final(message.as_bytes()).is_err());
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80), text in ".{0,120}") {
            let _ = AuthRequest::parse(&bytes);
            let _ = md5_verify(&plain("x"), "u", [0; 4], &bytes);
            let _ = PasswordSecret::parse(&text);
            let _ = PasswordSecret::parse(&format!("SCRAM-SHA-256${text}"));
        }
    }
}
