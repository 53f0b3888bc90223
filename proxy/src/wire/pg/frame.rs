//! Framing of the PostgreSQL protocol: where one message ends and the next
//! begins, and the untagged startup packets that open a connection.
//!
//! The relay forwards most frames without looking inside them, so the decoder
//! only reads the 5-byte header (tag and length) and hands back the whole
//! frame, header included, ready to be copied to the other side unchanged.
//! Never does IO.

use bytes::{Buf, BytesMut};

use super::CodecError;

/// Protocol version 3.0, as sent in a StartupMessage.
pub const PROTOCOL_3_0: i32 = 196_608;
/// The magic "version" of an SSLRequest.
pub const SSL_REQUEST: i32 = 80_877_103;
/// The magic "version" of a GSSENCRequest.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// The magic "version" of a CancelRequest.
pub const CANCEL_REQUEST: i32 = 80_877_102;
/// Startup packets are small; a larger one is an attack or garbage.
const MAX_STARTUP_BYTES: usize = 10_000;

/// One tagged message, header included, exactly as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte (`Q`, `P`, `D`, `Z`, ...).
    pub tag: u8,
    /// The whole frame: tag, length and body.
    pub bytes: BytesMut,
}

impl Frame {
    /// The message body, after the tag and the length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

/// Length of the next complete frame at the front of `buf`, header included,
/// or `None` when more bytes are needed.
pub fn frame_len(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, CodecError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(CodecError::BadLength {
            tag: buf[0],
            length: declared,
        });
    }
    let total = declared as usize + 1;
    if total > max_frame_bytes {
        return Err(CodecError::TooLarge {
            tag: buf[0],
            length: total,
            max: max_frame_bytes,
        });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Splits the next complete frame off the front of `buf`.
pub fn decode(buf: &mut BytesMut, max_frame_bytes: usize) -> Result<Option<Frame>, CodecError> {
    Ok(frame_len(buf, max_frame_bytes)?.map(|len| {
        let bytes = buf.split_to(len);
        Frame {
            tag: bytes[0],
            bytes,
        }
    }))
}

/// The first packet of a connection, which carries no tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption, which the proxy declines.
    GssEncRequest,
    /// A cancel request for the session holding this key.
    Cancel {
        /// Process id from the BackendKeyData the proxy issued.
        pid: i32,
        /// Secret from the BackendKeyData the proxy issued.
        secret: i32,
    },
    /// A StartupMessage with its parameters (`user`, `database`, ...).
    Message {
        /// Requested protocol version.
        version: i32,
        /// Parameters in the order the client sent them.
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// The value of one startup parameter.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Decodes a startup packet from the front of `buf`.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<Startup>, CodecError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if !(8..=MAX_STARTUP_BYTES as i32).contains(&len) {
        return Err(CodecError::BadStartup(format!(
            "startup packet length {len} is outside 8..{MAX_STARTUP_BYTES}"
        )));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    let version = packet.get_i32();
    let startup = match version {
        SSL_REQUEST => Startup::SslRequest,
        GSSENC_REQUEST => Startup::GssEncRequest,
        CANCEL_REQUEST if packet.len() == 8 => Startup::Cancel {
            pid: packet.get_i32(),
            secret: packet.get_i32(),
        },
        CANCEL_REQUEST => {
            return Err(CodecError::BadStartup(
                "cancel request has the wrong length".into(),
            ))
        }
        PROTOCOL_3_0 => Startup::Message {
            version,
            params: startup_params(&packet)?,
        },
        other if other >> 16 == 3 => Startup::Message {
            version: other,
            params: startup_params(&packet)?,
        },
        other => {
            return Err(CodecError::BadStartup(format!(
                "unsupported frontend protocol {}.{}: the proxy speaks 3.0",
                other >> 16,
                other & 0xffff
            )))
        }
    };
    Ok(Some(startup))
}

fn startup_params(body: &[u8]) -> Result<Vec<(String, String)>, CodecError> {
    let mut params = Vec::new();
    let mut fields = body.split(|b| *b == 0);
    loop {
        let key = fields.next().ok_or_else(|| {
            CodecError::BadStartup("startup parameters are not terminated".into())
        })?;
        if key.is_empty() {
            return Ok(params);
        }
        let value = fields
            .next()
            .ok_or_else(|| CodecError::BadStartup("startup parameter has no value".into()))?;
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| CodecError::BadStartup("startup parameter is not UTF-8".into()))
        };
        params.push((text(key)?, text(value)?));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use proptest::prelude::*;

    fn startup_bytes(version: i32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(8 + body.len() as i32);
        b.put_i32(version);
        b.put_slice(body);
        b
    }

    #[test]
    fn frames_split_on_declared_length() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x0dSELECT 1\0S\0\0\0\x04X"[..]);
        let q = decode(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(q.tag, b'Q');
        assert_eq!(q.body(), b"SELECT 1\0");
        let s = decode(&mut buf, 1024).unwrap().unwrap();
        assert_eq!((s.tag, s.body()), (b'S', &b""[..]));
        assert_eq!(decode(&mut buf, 1024).unwrap(), None);
        assert_eq!(&buf[..], b"X");
    }

    #[test]
    fn bad_and_oversized_lengths_are_errors() {
        let mut short = BytesMut::from(&b"Q\0\0\0\x03"[..]);
        assert!(matches!(
            decode(&mut short, 1024),
            Err(CodecError::BadLength {
                tag: b'Q',
                length: 3
            })
        ));
        let mut big = BytesMut::from(&b"Q\x7f\0\0\0"[..]);
        assert!(matches!(
            decode(&mut big, 1024),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn startup_packets() {
        let mut buf = startup_bytes(SSL_REQUEST, b"");
        assert_eq!(decode_startup(&mut buf).unwrap(), Some(Startup::SslRequest));
        let mut buf = startup_bytes(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 0, 9]);
        assert_eq!(
            decode_startup(&mut buf).unwrap(),
            Some(Startup::Cancel { pid: 7, secret: 9 })
        );
        let mut buf = startup_bytes(PROTOCOL_3_0, b"user\0app\0database\0db1\0\0");
        let Some(Startup::Message { params, .. }) = decode_startup(&mut buf).unwrap() else {
            panic!("not a startup message");
        };
        assert_eq!(Startup::param(&params, "user"), Some("app"));
        assert_eq!(Startup::param(&params, "database"), Some("db1"));
        let mut partial = startup_bytes(PROTOCOL_3_0, b"user\0app\0\0");
        partial.truncate(10);
        assert_eq!(decode_startup(&mut partial).unwrap(), None);
        let mut v2 = startup_bytes(0x0002_0000, b"");
        assert!(decode_startup(&mut v2).is_err());
        let mut unterminated = startup_bytes(PROTOCOL_3_0, b"user\0app");
        assert!(decode_startup(&mut unterminated).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(frame)) = decode(&mut buf, 4096) {
                prop_assert!(frame.bytes.len() >= 5);
            }
            let mut buf = BytesMut::from(&data[..]);
            let _ = decode_startup(&mut buf);
        }

        #[test]
        fn frames_round_trip(bodies in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16)) {
            let mut wire = BytesMut::new();
            for (tag, body) in &bodies {
                wire.put_u8(*tag);
                wire.put_i32(body.len() as i32 + 4);
                wire.put_slice(body);
            }
            for (tag, body) in &bodies {
                let frame = decode(&mut wire, 4096).unwrap().unwrap();
                prop_assert_eq!(frame.tag, *tag);
                prop_assert_eq!(frame.body(), &body[..]);
            }
            prop_assert!(wire.is_empty());
        }
    }
}
