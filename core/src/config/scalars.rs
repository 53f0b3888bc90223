//! Value types written as one word in the file: durations (`5s`), byte sizes
//! (`256MiB`), socket addresses, read shares in percent, client CIDRs.
//!
//! Each parser accepts both a YAML number and a string, because `${VAR}`
//! expansion always yields strings, and each rejection says what to write.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A share of traffic, exact to a hundredth of a percent (a basis point).
///
/// Stored as basis points (0..=10000) so bucketing (`hash mod 10000`) and
/// comparisons are exact integer arithmetic; written in the file as a percent
/// with at most two decimals (`25`, `0.5`, `12.25`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent {
    /// Hundredths of a percent, never above 10000.
    basis_points: u32,
}

impl Percent {
    /// No traffic.
    pub const ZERO: Percent = Percent { basis_points: 0 };
    /// All traffic.
    pub const FULL: Percent = Percent {
        basis_points: 10_000,
    };

    /// `None` above 10000 (more than 100%).
    pub fn from_basis_points(basis_points: u32) -> Option<Percent> {
        (basis_points <= 10_000).then_some(Percent { basis_points })
    }

    /// The share in hundredths of a percent, 0..=10000.
    pub fn basis_points(self) -> u32 {
        self.basis_points
    }

    /// The share in percent, 0.0..=100.0, for display and metrics.
    pub fn as_percent(self) -> f64 {
        f64::from(self.basis_points) / 100.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.basis_points / 100, self.basis_points % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            f2 if f2 % 10 == 0 => write!(f, "{whole}.{}%", f2 / 10),
            f2 => write!(f, "{whole}.{f2:02}%"),
        }
    }
}

/// Written as the number of percent (`12.25`), as the file takes it.
impl serde::Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_percent())
    }
}

impl FromStr for Percent {
    type Err = String;

    /// Parses decimal text exactly (no float rounding): `12.25` is 1225 bp.
    fn from_str(text: &str) -> Result<Percent, String> {
        let text = text.trim();
        let number = text.strip_suffix('%').unwrap_or(text).trim();
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return Err(format!(
                "`{text}` is not a percentage; write a number from 0 to 100, e.g. `25` or `0.5`"
            ));
        }
        if frac.len() > 2 {
            return Err(format!(
                "`{text}` has more than two decimals; shares are exact to 0.01%, so round it, e.g. `{whole}.{}`",
                &frac[..2]
            ));
        }
        let frac_bp = format!("{frac:0<2}").parse::<u64>().unwrap_or(0);
        let bp = whole
            .parse::<u64>()
            .ok()
            .and_then(|w| w.checked_mul(100))
            .and_then(|w| w.checked_add(frac_bp));
        match bp
            .and_then(|bp| u32::try_from(bp).ok())
            .and_then(Percent::from_basis_points)
        {
            Some(p) => Ok(p),
            None => Err(format!(
                "{number} is out of range; a share is a percentage from 0 to 100"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
        d.deserialize_any(ScalarVisitor("a percentage from 0 to 100"))?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// A client network for canary cohorts: `10.1.0.0/16`, `::1`, `192.0.2.7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, with host bits cleared.
    network: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies inside this network. An IPv4 client seen through an
    /// IPv6 socket (`::ffff:a.b.c.d`) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(net) == u32::from(ip) & mask32(self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(net) == u128::from(ip) & mask128(self.prefix)
            }
            _ => false,
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "`{text}` is not an IP address or network; write e.g. `10.0.0.0/8`, `192.0.2.7` or `::1`"
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(prefix)).into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        d.deserialize_any(ScalarVisitor("an IP address or network"))?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// Parses `500ms`, `5s`, `1m`, `2h`, `1d`, or a sum such as `1m30s`.
/// A bare number is refused (seconds or milliseconds?) unless it is 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let fix = "write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`";
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{text}` has no unit; {fix}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(format!("the duration is empty; {fix}"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration; {fix}"))?;
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(format!("`{text}` is not a duration; {fix}")),
        };
        total = total.saturating_add(part);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// Parses a byte size: `1048576`, `64KiB`, `256MiB`, `1GiB`, `10MB`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| multiplier > 0)
        .and_then(|n| n.checked_mul(multiplier))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            format!("`{text}` is not a size; write a number of bytes or use a unit, e.g. `256MiB` or `64KiB`")
        })
}

/// Parses a listen address: `127.0.0.1:6432`, `[::1]:6432`, `0.0.0.0:6432`,
/// or `localhost:6432` (loopback IPv4, so no resolver runs at load).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
        }
    }
    Err(format!(
        "`{text}` is not an IP address with a port; write e.g. `127.0.0.1:6432`, or `0.0.0.0:6432` to listen on every interface"
    ))
}

/// Accepts a string or a number and hands back its text; the parsers above
/// then read it, so `25` and `"25"` mean the same.
struct ScalarVisitor(&'static str);

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// `deserialize_with` for a [`Duration`] written as `5s`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = d.deserialize_any(ScalarVisitor("a duration such as `5s`"))?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// `deserialize_with` for a duration that can be turned off: `off` is
/// `None`. `0` is kept as zero rather than read as "off", so a setting where
/// zero makes no sense can say so instead of silently disabling itself.
pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let text = d.deserialize_any(ScalarVisitor("a duration such as `2s`, or `off`"))?;
    if text.trim() == "off" {
        return Ok(None);
    }
    parse_duration(&text)
        .map(Some)
        .map_err(|message| de::Error::custom(format!("{message}, or `off` for none")))
}

/// `deserialize_with` for a byte size written as `256MiB` or a number.
pub(crate) fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let text = d.deserialize_any(ScalarVisitor("a size such as `256MiB`"))?;
    parse_bytes(&text).map_err(de::Error::custom)
}

/// `deserialize_with` for an optional listen address; empty text means off,
/// so `postgres: ${PG_LISTEN:-}` can disable a listener.
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => parse_socket_addr(&text)
            .map(Some)
            .map_err(de::Error::custom),
    }
}

/// `deserialize_with` for optional text where empty means "not set".
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// `deserialize_with` for a list of key values, which may be written as
/// numbers (`keys: [42, 7]`) but are compared as text.
pub(crate) fn scalar_texts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Scalar(String);
    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
            d.deserialize_any(ScalarVisitor("a key value")).map(Scalar)
        }
    }
    Ok(Vec::<Scalar>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("500ms", 500),
            ("5s", 5_000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1m30s", 90_000),
            (" 30s ", 30_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*ms)),
                "{text}"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("30", "`30` has no unit; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`"),
            ("", "the duration is empty; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`"),
            ("5 s", "`5 s` is not a duration; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`"),
            ("1.5s", "`1.5s` is not a duration; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`"),
            ("soon", "`soon` is not a duration; write a number with a unit, e.g. `500ms`, `5s`, `1m` or `1m30s`"),
        ];
        for (text, message) in bad {
            assert_eq!(parse_duration(text).unwrap_err(), *message, "{text:?}");
        }
    }

    #[test]
    fn percents() {
        let ok: &[(&str, u32)] = &[
            ("0", 0),
            ("25", 2_500),
            ("0.5", 50),
            ("12.25", 1_225),
            ("100", 10_000),
            ("100.00", 10_000),
            ("5%", 500),
        ];
        for (text, bp) in ok {
            assert_eq!(
                text.parse::<Percent>().unwrap().basis_points(),
                *bp,
                "{text}"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("100.01", "100.01 is out of range; a share is a percentage from 0 to 100"),
            ("150", "150 is out of range; a share is a percentage from 0 to 100"),
            ("-1", "`-1` is not a percentage; write a number from 0 to 100, e.g. `25` or `0.5`"),
            ("1.234", "`1.234` has more than two decimals; shares are exact to 0.01%, so round it, e.g. `1.23`"),
            ("half", "`half` is not a percentage; write a number from 0 to 100, e.g. `25` or `0.5`"),
        ];
        for (text, message) in bad {
            assert_eq!(text.parse::<Percent>().unwrap_err(), *message, "{text}");
        }
        assert_eq!(
            Percent::from_basis_points(1_225).unwrap().to_string(),
            "12.25%"
        );
        assert_eq!(Percent::from_basis_points(50).unwrap().to_string(), "0.5%");
        assert_eq!(Percent::FULL.as_percent(), 100.0);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(
            parse_bytes("lots").unwrap_err(),
            "`lots` is not a size; write a number of bytes or use a unit, e.g. `256MiB` or `64KiB`"
        );
    }

    #[test]
    fn socket_addrs() {
        assert_eq!(parse_socket_addr("127.0.0.1:6432").unwrap().port(), 6432);
        assert!(parse_socket_addr("[::1]:6432").unwrap().is_ipv6());
        assert_eq!(
            parse_socket_addr("localhost:9187").unwrap(),
            "127.0.0.1:9187".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("6432").unwrap_err(),
            "`6432` is not an IP address with a port; write e.g. `127.0.0.1:6432`, or `0.0.0.0:6432` to listen on every interface"
        );
    }

    #[test]
    fn cidrs() {
        let net: Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert!(net.contains("10.1.200.9".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let host: Cidr = "::1".parse().unwrap();
        assert_eq!(host.prefix(), 128);
        assert!(host.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err(),
            "`10.0.0.0/33` is not an IP address or network; write e.g. `10.0.0.0/8`, `192.0.2.7` or `::1`"
        );
    }
}
