//! Packet framing: the 4-byte header (3-byte little-endian length, 1-byte
//! sequence id) and the splitting of payloads of 16 MiB and more.
//!
//! A physical packet carries at most `0xFFFFFF` payload bytes. A longer
//! logical payload is sent as several full packets followed by one shorter
//! packet, which is empty when the payload is an exact multiple of
//! `0xFFFFFF`. Each part takes the next sequence id.
//!
//! Two ways to read: [`decode`] reassembles a logical payload (for messages
//! the proxy must understand), and [`next_raw_len`] only says how long the
//! next physical packet is (for relaying bytes untouched without copying).
//! This module never does IO: it works on buffers the caller fills.

use bytes::{BufMut, BytesMut};

use super::error::CodecError;

/// Largest payload one physical packet can carry; a packet this long means
/// "the payload continues in the next packet".
pub const MAX_PACKET_PAYLOAD: usize = 0xFF_FFFF;

/// Bytes of the packet header.
pub const HEADER_LEN: usize = 4;

/// A default cap for [`decode`]: MySQL's own `max_allowed_packet` ceiling (1 GiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 30;

/// One logical MySQL message: its payload and the sequence id to reply after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the last physical part. The peer's next packet (or our
    /// reply) carries `seq.wrapping_add(1)`.
    pub seq: u8,
    /// The reassembled payload, without headers.
    pub payload: BytesMut,
}

impl Packet {
    /// A packet with the given sequence id and a copy of `payload`.
    pub fn new(seq: u8, payload: &[u8]) -> Self {
        Self {
            seq,
            payload: BytesMut::from(payload),
        }
    }

    /// The sequence id that follows this packet.
    pub fn next_seq(&self) -> u8 {
        self.seq.wrapping_add(1)
    }

    /// Appends this packet, framed (and split if needed), to `out`.
    /// Returns the sequence id that follows it.
    pub fn encode(&self, out: &mut BytesMut) -> u8 {
        encode(self.seq, &self.payload, out)
    }
}

/// The header of the next physical packet: payload length and sequence id.
/// `None` until 4 bytes are buffered.
pub fn peek_header(buf: &[u8]) -> Option<(usize, u8)> {
    let header = buf.get(..HEADER_LEN)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    Some((len, header[3]))
}

/// Length of the next complete physical packet, header included, or `None`
/// while it is not fully buffered. For relaying raw bytes: forward
/// `buf.split_to(n)` untouched. A packet whose payload is exactly
/// [`MAX_PACKET_PAYLOAD`] bytes is followed by a continuation packet.
pub fn next_raw_len(buf: &[u8]) -> Option<usize> {
    let (len, _) = peek_header(buf)?;
    let total = HEADER_LEN + len;
    (buf.len() >= total).then_some(total)
}

/// Takes the next complete logical payload off the front of `buf`.
///
/// Returns `Ok(None)` (consuming nothing) while the payload is incomplete.
/// Fails when the announced length passes `max_payload` — checked as headers
/// arrive, so a hostile peer cannot make the caller buffer gigabytes — or
/// when the parts of a split payload do not carry consecutive sequence ids.
/// A payload that fits in one packet is split off without copying.
pub fn decode(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Packet>, CodecError> {
    let mut offset = 0;
    let mut total = 0;
    let mut parts = 0;
    let mut last_seq = 0u8;
    loop {
        let Some((len, seq)) = peek_header(&buf[offset..]) else {
            return Ok(None);
        };
        if parts > 0 && seq != last_seq.wrapping_add(1) {
            return Err(CodecError::SequenceGap {
                previous: last_seq,
                got: seq,
            });
        }
        total += len;
        if total > max_payload {
            return Err(CodecError::PayloadTooLarge {
                len: total,
                max: max_payload,
            });
        }
        if buf.len() < offset + HEADER_LEN + len {
            return Ok(None);
        }
        offset += HEADER_LEN + len;
        parts += 1;
        last_seq = seq;
        if len < MAX_PACKET_PAYLOAD {
            break;
        }
    }
    let payload = if parts == 1 {
        let _header = buf.split_to(HEADER_LEN);
        buf.split_to(total)
    } else {
        let mut payload = BytesMut::with_capacity(total);
        let mut frames = buf.split_to(offset);
        while !frames.is_empty() {
            let (len, _) = peek_header(&frames).unwrap_or((0, 0));
            let _header = frames.split_to(HEADER_LEN);
            payload.extend_from_slice(&frames.split_to(len));
        }
        payload
    };
    Ok(Some(Packet {
        seq: last_seq,
        payload,
    }))
}

/// Frames `payload` into `out`, starting at sequence id `seq`, splitting it
/// into [`MAX_PACKET_PAYLOAD`]-byte parts when needed (with the empty last
/// part when the length is an exact multiple). Returns the next sequence id.
pub fn encode(seq: u8, payload: &[u8], out: &mut BytesMut) -> u8 {
    let mut seq = seq;
    out.reserve(payload.len() + HEADER_LEN * (1 + payload.len() / MAX_PACKET_PAYLOAD));
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PACKET_PAYLOAD);
        let len = n as u32;
        out.put_slice(&len.to_le_bytes()[..3]);
        out.put_u8(seq);
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PACKET_PAYLOAD {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(seq: u8, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        encode(seq, payload, &mut out);
        out
    }

    #[test]
    fn small_payload_round_trips() {
        let mut buf = framed(3, b"\x03SELECT 1");
        assert_eq!(&buf[..4], &[9, 0, 0, 3]);
        assert_eq!(next_raw_len(&buf), Some(13));
        let packet = decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(packet.seq, 3);
        assert_eq!(packet.next_seq(), 4);
        assert_eq!(&packet.payload[..], b"\x03SELECT 1");
        assert!(buf.is_empty());
    }

    #[test]
    fn empty_payload_is_one_empty_packet() {
        let mut buf = BytesMut::new();
        assert_eq!(encode(7, b"", &mut buf), 8);
        assert_eq!(&buf[..], &[0, 0, 0, 7]);
        let packet = decode(&mut buf, 16).unwrap().unwrap();
        assert!(packet.payload.is_empty());
    }

    #[test]
    fn exact_max_payload_gets_an_empty_trailer() {
        let payload = vec![0xAB; MAX_PACKET_PAYLOAD];
        let mut buf = BytesMut::new();
        assert_eq!(encode(0, &payload, &mut buf), 2);
        assert_eq!(buf.len(), 2 * HEADER_LEN + MAX_PACKET_PAYLOAD);
        assert_eq!(&buf[..4], &[0xFF, 0xFF, 0xFF, 0]);
        assert_eq!(&buf[buf.len() - 4..], &[0, 0, 0, 1]);
        assert_eq!(next_raw_len(&buf), Some(HEADER_LEN + MAX_PACKET_PAYLOAD));
        let packet = decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(packet.seq, 1);
        assert_eq!(packet.payload.len(), MAX_PACKET_PAYLOAD);
        assert!(packet.payload.iter().all(|&b| b == 0xAB));
        assert!(buf.is_empty());
    }

    #[test]
    fn twenty_mib_payload_round_trips_with_wrapping_seq() {
        let payload: Vec<u8> = (0..20 << 20).map(|i: u32| (i % 251) as u8).collect();
        let mut buf = BytesMut::new();
        assert_eq!(encode(255, &payload, &mut buf), 1);
        // Followed by another message that must stay in the buffer.
        encode(9, b"next", &mut buf);
        let packet = decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(packet.seq, 0);
        assert_eq!(packet.payload.len(), payload.len());
        assert!(packet.payload[..] == payload[..]);
        let next = decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!((next.seq, &next.payload[..]), (9, &b"next"[..]));
    }

    #[test]
    fn partial_buffers_return_none_and_consume_nothing() {
        let full = framed(0, &vec![1; MAX_PACKET_PAYLOAD + 10]);
        for cut in [
            0,
            1,
            3,
            4,
            100,
            HEADER_LEN + MAX_PACKET_PAYLOAD,
            full.len() - 1,
        ] {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap(),
                None,
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
        assert_eq!(next_raw_len(&full[..3]), None);
        assert_eq!(next_raw_len(&full[..100]), None);
    }

    #[test]
    fn oversized_payload_is_refused_from_its_header() {
        let mut buf = BytesMut::from(&[0x00, 0x00, 0x10, 0][..]);
        let err = decode(&mut buf, 1024).unwrap_err();
        assert_eq!(
            err,
            CodecError::PayloadTooLarge {
                len: 0x10_0000,
                max: 1024
            }
        );
    }

    #[test]
    fn split_payload_with_a_sequence_gap_is_refused() {
        let mut buf = framed(0, &vec![0; MAX_PACKET_PAYLOAD]);
        let last = buf.len() - 1;
        buf[last] = 5;
        let err = decode(&mut buf, DEFAULT_MAX_PAYLOAD).unwrap_err();
        assert_eq!(
            err,
            CodecError::SequenceGap {
                previous: 0,
                got: 5
            }
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0usize..512) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buf, max) {}
            let _ = next_raw_len(&bytes);
        }

        #[test]
        fn small_payloads_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..600), seq: u8) {
            let mut buf = framed(seq, &payload);
            prop_assert_eq!(next_raw_len(&buf), Some(buf.len()));
            let packet = decode(&mut buf, 1024).unwrap().unwrap();
            prop_assert_eq!(packet.seq, seq);
            prop_assert_eq!(&packet.payload[..], &payload[..]);
        }
    }
}
