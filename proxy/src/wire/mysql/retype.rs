//! Binary result rows of a retyped target re-encoded in the source's types.
//!
//! A client decodes a prepared statement's rows (COM_STMT_EXECUTE, the
//! binary protocol) by the column types it was given: at prepare, and again
//! with each execute unless MariaDB's metadata caching leaves them out.
//! Integers there are fixed-width, so a read routed to a target whose `id`
//! is BIGINT where the source's is INT would hand the client eight bytes
//! where it reads four. [`Retype`] compares the column definitions of the
//! source's form of a statement with the target's and, where their binary
//! encodings differ, rewrites each value into the source's: the client sees
//! the source's definitions and rows encoded as the source would have sent
//! them. A value the source's type cannot hold (a target id past 2³¹) is
//! an error, never a silently truncated number.
//!
//! Only what the catalog lets a migration do is converted: an integer to a
//! wider one, an integer or decimal to a decimal, FLOAT to DOUBLE. Strings,
//! decimals, dates and times share one encoding across their types and are
//! copied.

use bytes::{BufMut, BytesMut};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;
use mysql_common::proto::MyDeserialize;

use super::message::{put_lenenc_bytes, Reader};

/// How one column's values are encoded in a binary row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// A little-endian integer of this many bytes, signed or not.
    Int { bytes: usize, unsigned: bool },
    /// FLOAT: four bytes.
    Float,
    /// DOUBLE: eight bytes.
    Double,
    /// DECIMAL and NEWDECIMAL: the number as a length-encoded string.
    Decimal,
    /// Dates, datetimes, timestamps and times: a length byte and the value.
    Temporal,
    /// Strings, blobs, JSON, enums, sets, bits, geometry: length-encoded.
    Bytes,
}

impl Encoding {
    fn of(column: &Column) -> Encoding {
        let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        match column.column_type() {
            ColumnType::MYSQL_TYPE_TINY => Encoding::Int { bytes: 1, unsigned },
            ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => {
                Encoding::Int { bytes: 2, unsigned }
            }
            ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => {
                Encoding::Int { bytes: 4, unsigned }
            }
            ColumnType::MYSQL_TYPE_LONGLONG => Encoding::Int { bytes: 8, unsigned },
            ColumnType::MYSQL_TYPE_FLOAT => Encoding::Float,
            ColumnType::MYSQL_TYPE_DOUBLE => Encoding::Double,
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => Encoding::Decimal,
            ColumnType::MYSQL_TYPE_DATE
            | ColumnType::MYSQL_TYPE_NEWDATE
            | ColumnType::MYSQL_TYPE_DATETIME
            | ColumnType::MYSQL_TYPE_DATETIME2
            | ColumnType::MYSQL_TYPE_TIMESTAMP
            | ColumnType::MYSQL_TYPE_TIMESTAMP2
            | ColumnType::MYSQL_TYPE_TIME
            | ColumnType::MYSQL_TYPE_TIME2 => Encoding::Temporal,
            _ => Encoding::Bytes,
        }
    }

    /// Whether values of `self` can be read as values of `other` unchanged.
    fn same_as(self, other: Encoding) -> bool {
        match (self, other) {
            // Both are length-encoded strings on the wire.
            (Encoding::Decimal | Encoding::Bytes, Encoding::Decimal | Encoding::Bytes) => true,
            (a, b) => a == b,
        }
    }
}

/// What happens to one column of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Copied as the target encoded it.
    Copy(Encoding),
    /// Decoded as the target's encoding, encoded as the source's.
    Convert { from: Encoding, to: Encoding },
}

/// The conversion of one statement's binary rows from its target form's
/// column types to its source form's.
#[derive(Debug)]
pub struct Retype {
    /// The source's column definitions, as the client received them at
    /// prepare: sent in place of the target's.
    definitions: Vec<BytesMut>,
    /// One step per column.
    steps: Vec<Step>,
}

/// Why a statement's rows cannot be re-encoded.
#[derive(Debug, thiserror::Error)]
pub enum RetypeError {
    #[error("a column definition could not be read: {0}")]
    Definition(std::io::Error),
    #[error("the source form has {source_columns} columns and the target form {target_columns}")]
    Columns {
        source_columns: usize,
        target_columns: usize,
    },
    #[error("column {column} is {from:?} on the target and {to:?} on the source, which have no conversion")]
    Unconvertible {
        column: usize,
        from: Encoding,
        to: Encoding,
    },
}

impl Retype {
    /// The conversion between the source's and the target's definitions
    /// of one statement's columns (payloads of the prepare answers); `None`
    /// when every column is encoded alike, so rows pass untouched.
    pub fn between(
        source: &[BytesMut],
        target: &[BytesMut],
    ) -> Result<Option<Retype>, RetypeError> {
        if source.len() != target.len() {
            return Err(RetypeError::Columns {
                source_columns: source.len(),
                target_columns: target.len(),
            });
        }
        let mut steps = Vec::with_capacity(source.len());
        let mut converts = false;
        for (i, (s, t)) in source.iter().zip(target).enumerate() {
            let to = Encoding::of(&definition(s)?);
            let from = Encoding::of(&definition(t)?);
            let step = if from.same_as(to) {
                Step::Copy(from)
            } else if convertible(from, to) {
                converts = true;
                Step::Convert { from, to }
            } else {
                return Err(RetypeError::Unconvertible {
                    column: i + 1,
                    from,
                    to,
                });
            };
            steps.push(step);
        }
        Ok(converts.then(|| Retype {
            definitions: source.to_vec(),
            steps,
        }))
    }

    /// The source's definition of column `index` (0-based), sent in place
    /// of the target's.
    pub fn definition(&self, index: usize) -> Option<&[u8]> {
        self.definitions.get(index).map(|d| &d[..])
    }

    /// Re-encodes one binary row payload (`0x00`, NULL bitmap, values) into
    /// `out`. An error names the column and the value the source's type
    /// cannot hold.
    pub fn row(&self, row: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let columns = self.steps.len();
        let bitmap_len = (columns + 7 + 2) / 8;
        let Some(head) = row.get(..1 + bitmap_len) else {
            return Err("a binary row shorter than its NULL bitmap".into());
        };
        out.reserve(row.len() + 8 * columns);
        out.put_slice(head);
        let bitmap = &head[1..];
        let mut rest = &row[1 + bitmap_len..];
        for (i, step) in self.steps.iter().enumerate() {
            let bit = i + 2;
            if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
                continue;
            }
            let from = match *step {
                Step::Copy(e) | Step::Convert { from: e, .. } => e,
            };
            let len =
                value_len(from, rest).ok_or_else(|| format!("column {} ends early", i + 1))?;
            let (value, tail) = rest.split_at(len);
            rest = tail;
            match *step {
                Step::Copy(_) => out.put_slice(value),
                Step::Convert { from, to } => convert(from, to, value, out)
                    .map_err(|why| format!("column {}: {why}", i + 1))?,
            }
        }
        Ok(())
    }
}

fn definition(payload: &[u8]) -> Result<Column, RetypeError> {
    Column::deserialize((), &mut ParseBuf(payload)).map_err(RetypeError::Definition)
}

/// The conversions a checked mapping can need (see the module docs).
fn convertible(from: Encoding, to: Encoding) -> bool {
    matches!(
        (from, to),
        (
            Encoding::Int { .. } | Encoding::Decimal,
            Encoding::Int { .. } | Encoding::Decimal
        ) | (
            Encoding::Double | Encoding::Float,
            Encoding::Float | Encoding::Double
        )
    )
}

/// Bytes the value at the start of `rest` takes in `encoding`.
fn value_len(encoding: Encoding, rest: &[u8]) -> Option<usize> {
    let len = match encoding {
        Encoding::Int { bytes, .. } => bytes,
        Encoding::Float => 4,
        Encoding::Double => 8,
        Encoding::Temporal => 1 + usize::from(*rest.first()?),
        Encoding::Decimal | Encoding::Bytes => {
            let mut reader = Reader::new(rest, "a binary row");
            reader.lenenc_bytes().ok()?;
            rest.len() - reader.remaining()
        }
    };
    (rest.len() >= len).then_some(len)
}

/// A number read from the target, before it is written in the source's type.
enum Number {
    Integer(i128),
    Real(f64),
}

fn convert(from: Encoding, to: Encoding, value: &[u8], out: &mut BytesMut) -> Result<(), String> {
    let number = match from {
        Encoding::Int { bytes, unsigned } => {
            let mut le = [0u8; 16];
            le[..bytes].copy_from_slice(value);
            if !unsigned && value[bytes - 1] & 0x80 != 0 {
                le[bytes..].fill(0xFF);
            }
            Number::Integer(i128::from_le_bytes(le))
        }
        Encoding::Float => Number::Real(f64::from(f32::from_le_bytes(
            value.try_into().map_err(|_| "a FLOAT of the wrong size")?,
        ))),
        Encoding::Double => Number::Real(f64::from_le_bytes(
            value.try_into().map_err(|_| "a DOUBLE of the wrong size")?,
        )),
        Encoding::Decimal => {
            let digits = Reader::new(value, "a DECIMAL").lenenc_bytes();
            let text = digits
                .ok()
                .and_then(|d| std::str::from_utf8(d).ok())
                .ok_or("a malformed DECIMAL")?;
            match to {
                Encoding::Int { .. } => Number::Integer(whole(text)?),
                _ => return Err(format!("{text} has no conversion")),
            }
        }
        Encoding::Temporal | Encoding::Bytes => return Err("a value with no conversion".into()),
    };
    match (to, number) {
        (Encoding::Int { bytes, unsigned }, Number::Integer(n)) => {
            let bits = 8 * bytes as u32;
            let (min, max) = match unsigned {
                true => (0, (1i128 << bits) - 1),
                false => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
            };
            if n < min || n > max {
                return Err(format!(
                    "the target holds {n}, which the source's type cannot hold ({min} to {max})"
                ));
            }
            out.put_slice(&n.to_le_bytes()[..bytes]);
        }
        (Encoding::Decimal, Number::Integer(n)) => {
            put_lenenc_bytes(out, n.to_string().as_bytes());
        }
        (Encoding::Float, Number::Real(x)) => out.put_f32_le(x as f32),
        (Encoding::Double, Number::Real(x)) => out.put_f64_le(x),
        _ => return Err("a value with no conversion".into()),
    }
    Ok(())
}

/// The integer a decimal's text denotes; an error when it has a fraction.
fn whole(text: &str) -> Result<i128, String> {
    let (int, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.bytes().any(|b| b != b'0') {
        return Err(format!(
            "the target holds {text}, which is not a whole number"
        ));
    }
    int.parse()
        .map_err(|_| format!("the target holds {text}, which is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::io::WriteMysqlExt;
    use mysql_common::proto::MySerialize;

    fn def(name: &str, t: ColumnType, flags: ColumnFlags) -> BytesMut {
        let column = Column::new(t)
            .with_name(name.as_bytes())
            .with_org_name(name.as_bytes())
            .with_table(b"api")
            .with_flags(flags);
        let mut out = Vec::new();
        column.serialize(&mut out);
        BytesMut::from(&out[..])
    }

    fn int(name: &str) -> BytesMut {
        def(name, ColumnType::MYSQL_TYPE_LONG, ColumnFlags::empty())
    }

    fn bigint(name: &str) -> BytesMut {
        def(name, ColumnType::MYSQL_TYPE_LONGLONG, ColumnFlags::empty())
    }

    fn text(name: &str) -> BytesMut {
        def(name, ColumnType::MYSQL_TYPE_BLOB, ColumnFlags::empty())
    }

    /// A binary row of three columns: bigint id, text path, and a NULL.
    fn row(id: i64, path: &str) -> Vec<u8> {
        let mut row = vec![0x00, 0b0001_0000];
        row.extend_from_slice(&id.to_le_bytes());
        row.write_lenenc_str(path.as_bytes()).unwrap();
        row
    }

    #[test]
    fn equal_encodings_need_no_conversion() {
        let source = [int("id"), text("path")];
        assert!(Retype::between(&source, &source).unwrap().is_none());
        let varchar = def(
            "path",
            ColumnType::MYSQL_TYPE_VAR_STRING,
            ColumnFlags::empty(),
        );
        assert!(Retype::between(&[text("p")], &[varchar]).unwrap().is_none());
    }

    #[test]
    fn a_widened_integer_is_narrowed_back() {
        let source = [int("id"), text("path"), text("method")];
        let target = [bigint("id"), text("path"), text("method")];
        let retype = Retype::between(&source, &target).unwrap().unwrap();
        assert_eq!(retype.definition(0), Some(&source[0][..]));
        let mut out = BytesMut::new();
        retype.row(&row(-9, "/p/9"), &mut out).unwrap();
        let mut expected = vec![0x00, 0b0001_0000];
        expected.extend_from_slice(&(-9i32).to_le_bytes());
        expected.write_lenenc_str(b"/p/9").unwrap();
        assert_eq!(&out[..], &expected[..]);
        // A value the source's INT cannot hold is an error, not a wrap.
        let mut out = BytesMut::new();
        let err = retype.row(&row(1 << 31, "/x"), &mut out).unwrap_err();
        assert!(
            err.contains("column 1") && err.contains("2147483648"),
            "{err}"
        );
    }

    #[test]
    fn nulls_take_no_bytes() {
        let source = [int("id"), text("path"), text("method")];
        let target = [bigint("id"), text("path"), text("method")];
        let retype = Retype::between(&source, &target).unwrap().unwrap();
        // id NULL (bit 2), path present, method NULL (bit 4).
        let mut row = vec![0x00, 0b0001_0100];
        row.write_lenenc_str(b"/p").unwrap();
        let mut out = BytesMut::new();
        retype.row(&row, &mut out).unwrap();
        assert_eq!(&out[..], &row[..]);
    }

    #[test]
    fn unsigned_and_decimal_sources() {
        let unsigned = ColumnFlags::UNSIGNED_FLAG;
        let source = [def("n", ColumnType::MYSQL_TYPE_SHORT, unsigned)];
        let target = [def("n", ColumnType::MYSQL_TYPE_LONG, unsigned)];
        let retype = Retype::between(&source, &target).unwrap().unwrap();
        let mut out = BytesMut::new();
        retype.row(&[0, 0, 0xFF, 0xFF, 0, 0], &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0xFF, 0xFF]);
        assert!(retype
            .row(&[0, 0, 0, 0, 1, 0], &mut BytesMut::new())
            .is_err());

        // int → decimal(12,2): the decimal's text becomes the int again.
        let source = [int("n")];
        let target = [def(
            "n",
            ColumnType::MYSQL_TYPE_NEWDECIMAL,
            ColumnFlags::empty(),
        )];
        let retype = Retype::between(&source, &target).unwrap().unwrap();
        let mut decimal = vec![0, 0];
        decimal.write_lenenc_str(b"-12.00").unwrap();
        let mut out = BytesMut::new();
        retype.row(&decimal, &mut out).unwrap();
        assert_eq!(&out[2..], &(-12i32).to_le_bytes());
        let mut fraction = vec![0, 0];
        fraction.write_lenenc_str(b"1.50").unwrap();
        assert!(retype.row(&fraction, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn float_widened_to_double_is_narrowed_back() {
        let source = [def("x", ColumnType::MYSQL_TYPE_FLOAT, ColumnFlags::empty())];
        let target = [def(
            "x",
            ColumnType::MYSQL_TYPE_DOUBLE,
            ColumnFlags::empty(),
        )];
        let retype = Retype::between(&source, &target).unwrap().unwrap();
        let mut row = vec![0, 0];
        row.extend_from_slice(&1.5f64.to_le_bytes());
        let mut out = BytesMut::new();
        retype.row(&row, &mut out).unwrap();
        assert_eq!(&out[2..], &1.5f32.to_le_bytes());
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        assert!(matches!(
            Retype::between(&[int("a")], &[int("a"), int("b")]),
            Err(RetypeError::Columns { .. })
        ));
        assert!(matches!(
            Retype::between(&[int("a")], &[text("a")]),
            Err(RetypeError::Unconvertible { column: 1, .. })
        ));
    }
}
