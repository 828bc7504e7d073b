//! Exact decimal numbers with DynamoDB's precision and range.
//!
//! A [`Number`] is `mantissa × 10^exponent` with `|mantissa| < 10^38` and no
//! trailing zeros in the mantissa, so every value has exactly one
//! representation and derived equality and hashing are numeric. No floating
//! point is used anywhere.
//!
//! Facts this module follows (checked against DynamoDB Local 1.25.1 and AWS's
//! published error texts):
//! - syntax is Java `BigDecimal`'s ASCII form: optional sign, digits with an
//!   optional point (".5" and "5." are accepted), optional exponent with an
//!   optional sign. The exponent must fit a 32-bit int and so must the scale
//!   it produces, otherwise the text is not a number;
//! - at most 38 significant digits, checked before the range;
//! - nonzero magnitudes between 1E-130 and 9.99…9E+125 (38 nines);
//! - numbers are returned in plain decimal notation, never with an exponent.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a string or a computation is not a valid DynamoDB number. `Display`
/// renders DynamoDB's wording for the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The text is not a number; carries the text as given.
    #[error("The parameter cannot be converted to a numeric value: {0}")]
    NotANumber(String),
    #[error("Attempting to store more than 38 significant digits in a Number")]
    TooPrecise,
    #[error(
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    )]
    Overflow,
    #[error("Number underflow. Attempting to store a number with magnitude smaller than supported range")]
    Underflow,
}

/// Maximum number of significant decimal digits.
pub const MAX_DIGITS: u32 = 38;
/// Largest power of ten of a leading digit (9.99…E+125).
const MAX_ADJUSTED_EXPONENT: i64 = 125;
/// Smallest power of ten of a leading digit (1E-130).
const MIN_ADJUSTED_EXPONENT: i64 = -130;

/// 10^0 ..= 10^38; every entry fits `u128` (10^38 < 2^127).
const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `10^38`, the base of the two-limb wide integers used by addition.
const BASE: u128 = POW10[38];

/// Tags of [`Number::to_ordered_bytes`]; their order is the sign order.
const TAG_NEGATIVE: u8 = 0x01;
const TAG_ZERO: u8 = 0x02;
const TAG_POSITIVE: u8 = 0x03;
/// Ends a negative encoding; larger than any (inverted) digit pair byte, so a
/// negative number sorts before the negatives whose digits extend its own.
const NEGATIVE_END: u8 = 0xFF;

/// An exact decimal number: up to 38 significant digits, magnitude between
/// 1E-130 and 9.9999999999999999999999999999999999999E+125, or zero.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Number {
    /// Significand with trailing zeros removed; |mantissa| < 10^38.
    mantissa: i128,
    /// Power of ten the mantissa is scaled by.
    exponent: i32,
}

impl Number {
    /// Parses DynamoDB's number syntax ("-12.5", "1e3", "0.001").
    pub fn parse(s: &str) -> Result<Number, NumberError> {
        let not_a_number = || NumberError::NotANumber(s.to_string());
        let scanned = scan(s.as_bytes()).ok_or_else(not_a_number)?;
        let first = scanned.digits.iter().position(|&d| d != b'0');
        let Some(first) = first else {
            // Zero: valid whatever its exponent, once the syntax checks passed.
            return Ok(Number::zero());
        };
        let last = scanned
            .digits
            .iter()
            .rposition(|&d| d != b'0')
            .unwrap_or(first);
        let significant = &scanned.digits[first..=last];
        if significant.len() > MAX_DIGITS as usize {
            return Err(NumberError::TooPrecise);
        }
        let mut magnitude: u128 = 0;
        for &d in significant {
            magnitude = magnitude * 10 + u128::from(d - b'0');
        }
        // Power of ten of the last significant digit.
        let trailing = (scanned.digits.len() - 1 - last) as i64;
        let exponent = scanned.exponent - scanned.fraction_digits + trailing;
        Number::from_parts(scanned.negative, magnitude, exponent)
    }

    /// Returns zero.
    pub fn zero() -> Number {
        Number {
            mantissa: 0,
            exponent: 0,
        }
    }

    /// Returns the number for an integer.
    pub fn from_i64(v: i64) -> Number {
        Number {
            mantissa: v as i128,
            exponent: 0,
        }
        .normalized()
    }

    fn normalized(mut self) -> Number {
        if self.mantissa == 0 {
            return Number::zero();
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// Builds a number from a sign, a magnitude below 10^38 and the power of
    /// ten of its last digit, checking DynamoDB's range.
    fn from_parts(negative: bool, magnitude: u128, exponent: i64) -> Result<Number, NumberError> {
        if magnitude == 0 {
            return Ok(Number::zero());
        }
        debug_assert!(magnitude < BASE);
        let mut magnitude = magnitude;
        let mut exponent = exponent;
        while magnitude.is_multiple_of(10) {
            magnitude /= 10;
            exponent += 1;
        }
        let adjusted = exponent + i64::from(digit_count(magnitude)) - 1;
        if adjusted > MAX_ADJUSTED_EXPONENT {
            return Err(NumberError::Overflow);
        }
        if adjusted < MIN_ADJUSTED_EXPONENT {
            return Err(NumberError::Underflow);
        }
        // Both conversions hold: magnitude < 10^38 < i128::MAX and the range
        // check bounds the exponent to a few hundred.
        let mantissa = magnitude as i128;
        Ok(Number {
            mantissa: if negative { -mantissa } else { mantissa },
            exponent: exponent as i32,
        })
    }

    /// Returns true for zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Returns true for numbers below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Returns true when the number has no fractional part.
    pub fn is_integer(&self) -> bool {
        self.exponent >= 0
    }

    /// Returns the value as an `i64` when it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.is_integer() {
            return None;
        }
        let scale = POW10.get(usize::try_from(self.exponent).ok()?)?;
        let value = self.mantissa.checked_mul(i128::try_from(*scale).ok()?)?;
        i64::try_from(value).ok()
    }

    /// Returns `-self`.
    pub fn negate(&self) -> Number {
        Number {
            mantissa: -self.mantissa,
            exponent: self.exponent,
        }
    }

    /// Returns `|self|`.
    pub fn abs(&self) -> Number {
        Number {
            mantissa: self.mantissa.abs(),
            exponent: self.exponent,
        }
    }

    /// Returns the number of significant digits (0 for zero).
    pub fn significant_digits(&self) -> u32 {
        if self.is_zero() {
            0
        } else {
            digit_count(self.mantissa.unsigned_abs())
        }
    }

    /// Returns `self + other`, exactly, or the DynamoDB error when the result
    /// leaves the supported range or precision.
    pub fn checked_add(&self, other: &Number) -> Result<Number, NumberError> {
        if other.is_zero() {
            return Ok(self.clone());
        }
        if self.is_zero() {
            return Ok(other.clone());
        }
        // `high` has the larger exponent; align it down to `low`'s exponent.
        let (high, low) = if self.exponent >= other.exponent {
            (self, other)
        } else {
            (other, self)
        };
        let shift = i64::from(high.exponent) - i64::from(low.exponent);
        if shift > i64::from(MAX_DIGITS) {
            // The result keeps `low`'s last digit (nonzero, as `high` has
            // only zeros there) and reaches within one digit of `high`'s
            // first: more than 38 digits whatever the signs.
            return Err(NumberError::TooPrecise);
        }
        let shift = shift as usize;
        let a = Wide::shifted(high.mantissa.unsigned_abs(), shift);
        let b = Wide::shifted(low.mantissa.unsigned_abs(), 0);
        let (negative, sum) = if high.is_negative() == low.is_negative() {
            (high.is_negative(), a.add(b))
        } else {
            match a.cmp(&b) {
                Ordering::Equal => return Ok(Number::zero()),
                Ordering::Greater => (high.is_negative(), a.sub(b)),
                Ordering::Less => (low.is_negative(), b.sub(a)),
            }
        };
        let (magnitude, dropped) = sum.narrow().ok_or(NumberError::TooPrecise)?;
        Number::from_parts(negative, magnitude, i64::from(low.exponent) + dropped)
    }

    /// Returns `self - other`, exactly.
    pub fn checked_sub(&self, other: &Number) -> Result<Number, NumberError> {
        self.checked_add(&other.negate())
    }

    /// Returns the size in bytes DynamoDB charges for this number.
    ///
    /// AWS documents "1 byte per two significant digits plus 1 byte" as an
    /// approximation. Measurements against DynamoDB (item-size limit bisection)
    /// fit a more exact rule, used here: 1 byte, plus one byte per two digits
    /// of the integer part and per two digits of the fraction part, counted
    /// on the value with leading and trailing zeros trimmed, plus 1 byte for
    /// a negative number. So 27 → 2, -27 → 3, 1.5 → 3, 0.05 → 2.
    pub fn size(&self) -> usize {
        if self.is_zero() {
            return 1;
        }
        let digits = i64::from(self.significant_digits());
        let fraction = if self.exponent < 0 {
            digits.min(-i64::from(self.exponent))
        } else {
            0
        };
        let integer = digits - fraction;
        let bytes = 1 + (integer + 1) / 2 + (fraction + 1) / 2;
        bytes as usize + usize::from(self.is_negative())
    }

    /// Returns an encoding whose bytewise order equals numeric order.
    ///
    /// Layout: a sign tag (negative < zero < positive); for nonzero numbers
    /// one byte holding the power of ten of the leading digit (+130, so
    /// 0..=255), then the significant digits in pairs (0..=99 per byte, an odd
    /// count padded with a zero digit). Negative numbers invert the exponent
    /// and pair bytes and end with 0xFF, so larger magnitudes sort first.
    pub fn to_ordered_bytes(&self) -> Vec<u8> {
        if self.is_zero() {
            return vec![TAG_ZERO];
        }
        let magnitude = self.mantissa.unsigned_abs();
        let count = digit_count(magnitude);
        let adjusted = i64::from(self.exponent) + i64::from(count) - 1;
        // In 0..=255 for every valid number.
        let exponent_byte = (adjusted - MIN_ADJUSTED_EXPONENT).clamp(0, 255) as u8;
        // Left-align the digits to exactly 38 so pairs can be read off the top.
        let mut aligned = magnitude * POW10[(MAX_DIGITS - count) as usize];
        let mut pairs = Vec::with_capacity(19);
        for _ in 0..count.div_ceil(2) {
            let top = aligned / POW10[36];
            pairs.push(top as u8);
            aligned = (aligned % POW10[36]) * 100;
        }
        let mut out = Vec::with_capacity(pairs.len() + 3);
        if self.is_negative() {
            out.push(TAG_NEGATIVE);
            out.push(!exponent_byte);
            out.extend(pairs.iter().map(|p| 99 - p));
            out.push(NEGATIVE_END);
        } else {
            out.push(TAG_POSITIVE);
            out.push(exponent_byte);
            out.extend(pairs);
        }
        out
    }

    /// Decodes [`Number::to_ordered_bytes`] output; `None` when malformed.
    pub fn from_ordered_bytes(b: &[u8]) -> Option<Number> {
        let (&tag, rest) = b.split_first()?;
        let (negative, exponent_byte, pairs): (bool, u8, Vec<u8>) = match tag {
            TAG_ZERO if rest.is_empty() => return Some(Number::zero()),
            TAG_POSITIVE => {
                let (&e, pairs) = rest.split_first()?;
                (false, e, pairs.to_vec())
            }
            TAG_NEGATIVE => {
                let (&e, body) = rest.split_first()?;
                let (&end, pairs) = body.split_last()?;
                if end != NEGATIVE_END || pairs.iter().any(|&p| p > 99) {
                    return None;
                }
                (true, !e, pairs.iter().map(|p| 99 - p).collect())
            }
            _ => return None,
        };
        if pairs.is_empty() || pairs.len() > 19 || pairs.iter().any(|&p| p > 99) {
            return None;
        }
        let mut magnitude: u128 = 0;
        for &p in &pairs {
            magnitude = magnitude * 100 + u128::from(p);
        }
        let adjusted = i64::from(exponent_byte) + MIN_ADJUSTED_EXPONENT;
        // `magnitude` holds 2 × pairs digits, the first of them at `adjusted`.
        let last = adjusted - 2 * pairs.len() as i64 + 1;
        let number = Number::from_parts(negative, magnitude, last).ok()?;
        // Only the canonical encoding of a number is accepted.
        (number.to_ordered_bytes() == b).then_some(number)
    }
}

/// The pieces of a syntactically valid number text.
struct Scanned {
    negative: bool,
    /// All mantissa digits, integer and fraction parts, as ASCII, point removed.
    digits: Vec<u8>,
    /// How many of `digits` follow the point.
    fraction_digits: i64,
    /// Value of the exponent part (0 when absent).
    exponent: i64,
}

/// Reads an optional '+' or '-' at `text[*i]`; returns true for '-'.
fn scan_sign(text: &[u8], i: &mut usize) -> bool {
    match text.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    }
}

/// Checks the syntax of a number text and splits it into its parts; `None`
/// when it is not a number. Like Java's `BigDecimal` (and so DynamoDB), an
/// exponent or a resulting scale that does not fit a 32-bit int makes the
/// text not a number, and only ASCII is accepted.
fn scan(text: &[u8]) -> Option<Scanned> {
    let mut i = 0;
    let negative = scan_sign(text, &mut i);
    let mut digits = Vec::with_capacity(text.len());
    let mut fraction_digits: i64 = 0;
    let mut seen_point = false;
    while let Some(&c) = text.get(i) {
        match c {
            b'0'..=b'9' => {
                digits.push(c);
                if seen_point {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if let Some(b'e' | b'E') = text.get(i) {
        i += 1;
        let exponent_negative = scan_sign(text, &mut i);
        let start = i;
        while text.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let exponent_text = text.get(start..i)?;
        if exponent_text.is_empty() {
            return None;
        }
        let skip = exponent_text
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(exponent_text.len());
        let significant = exponent_text.get(skip..)?;
        if significant.len() > 10 {
            return None;
        }
        for &d in significant {
            exponent = exponent * 10 + i64::from(d - b'0');
        }
        if exponent_negative {
            exponent = -exponent;
        }
        i32::try_from(exponent).ok()?;
    }
    if i != text.len() {
        return None;
    }
    i32::try_from(fraction_digits - exponent).ok()?;
    Some(Scanned {
        negative,
        digits,
        fraction_digits,
        exponent,
    })
}

/// Returns the number of decimal digits of `m` (0 for 0).
fn digit_count(m: u128) -> u32 {
    POW10.iter().take_while(|&&p| p <= m).count() as u32
}

/// Returns how many zeros `m` (nonzero) ends with.
fn trailing_zeros(mut m: u128) -> u32 {
    let mut count = 0;
    while m != 0 && m.is_multiple_of(10) {
        m /= 10;
        count += 1;
    }
    count
}

/// A nonnegative integer below 2 × 10^76 as two base-10^38 limbs: exactly
/// wide enough for the sum of two mantissas aligned up to 38 digits apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Wide {
    high: u128,
    low: u128,
}

impl Wide {
    /// Returns `m × 10^shift` for `m < 10^38` and `shift <= 38`.
    fn shifted(m: u128, shift: usize) -> Wide {
        let split = POW10[MAX_DIGITS as usize - shift];
        Wide {
            high: m / split,
            low: (m % split) * POW10[shift],
        }
    }

    fn add(self, other: Wide) -> Wide {
        let low = self.low + other.low;
        let carry = u128::from(low >= BASE);
        Wide {
            high: self.high + other.high + carry,
            low: low - carry * BASE,
        }
    }

    /// Returns `self - other`; requires `self >= other`.
    fn sub(self, other: Wide) -> Wide {
        if self.low >= other.low {
            Wide {
                high: self.high - other.high,
                low: self.low - other.low,
            }
        } else {
            Wide {
                high: self.high - other.high - 1,
                low: self.low + BASE - other.low,
            }
        }
    }

    /// Returns the value without its trailing zeros and how many were
    /// dropped, or `None` when more than 38 significant digits remain.
    fn narrow(self) -> Option<(u128, i64)> {
        if self.high == 0 && self.low == 0 {
            return Some((0, 0));
        }
        let (total, zeros) = if self.high == 0 {
            (digit_count(self.low), trailing_zeros(self.low))
        } else if self.low == 0 {
            (digit_count(self.high) + 38, trailing_zeros(self.high) + 38)
        } else {
            (digit_count(self.high) + 38, trailing_zeros(self.low))
        };
        if total - zeros > MAX_DIGITS {
            return None;
        }
        let magnitude = if zeros >= MAX_DIGITS {
            self.high / POW10[(zeros - MAX_DIGITS) as usize]
        } else {
            self.high * POW10[(MAX_DIGITS - zeros) as usize] + self.low / POW10[zeros as usize]
        };
        Some((magnitude, i64::from(zeros)))
    }
}

impl FromStr for Number {
    type Err = NumberError;

    fn from_str(s: &str) -> Result<Number, NumberError> {
        Number::parse(s)
    }
}

/// Numbers travel (e.g. in a Raft log) as their canonical decimal string, so
/// the encoding is exact and independent of the in-memory representation.
impl serde::Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Number::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let by_sign = self.mantissa.signum().cmp(&other.mantissa.signum());
        if by_sign != Ordering::Equal || self.is_zero() {
            return by_sign;
        }
        let (a, b) = (self.mantissa.unsigned_abs(), other.mantissa.unsigned_abs());
        let (da, db) = (digit_count(a), digit_count(b));
        let adjusted_a = i64::from(self.exponent) + i64::from(da);
        let adjusted_b = i64::from(other.exponent) + i64::from(db);
        let by_magnitude = adjusted_a.cmp(&adjusted_b).then_with(|| {
            let left = a * POW10[(MAX_DIGITS - da) as usize];
            let right = b * POW10[(MAX_DIGITS - db) as usize];
            left.cmp(&right)
        });
        if self.is_negative() {
            by_magnitude.reverse()
        } else {
            by_magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Number {
    /// Canonical form, as DynamoDB returns numbers ("1E+2" is returned as "100").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + 140);
        if self.is_negative() {
            out.push('-');
        }
        let exponent = i64::from(self.exponent);
        let len = digits.len() as i64;
        if exponent >= 0 {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', exponent as usize));
        } else if -exponent < len {
            let point = (len + exponent) as usize;
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - len) as usize));
            out.push_str(&digits);
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn nan(s: &str) -> NumberError {
        NumberError::NotANumber(s.to_string())
    }

    #[test]
    fn canonical_display() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("+0", "0"),
            ("0e999999", "0"),
            ("000.000e-5", "0"),
            ("1E+2", "100"),
            ("1e2", "100"),
            ("1.5E2", "150"),
            ("1.50", "1.5"),
            ("3.1400", "3.14"),
            ("1.0", "1"),
            ("00042", "42"),
            ("-00042.000", "-42"),
            ("0.00012", "0.00012"),
            ("0.000100", "0.0001"),
            ("1.2e-3", "0.0012"),
            ("-12.5", "-12.5"),
            ("12.5e1", "125"),
            ("12.5e-1", "1.25"),
            ("125e-2", "1.25"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("5.", "5"),
            ("5.e2", "500"),
            ("+5", "5"),
            ("+.5e1", "5"),
            ("1e+2", "100"),
            ("1E-2", "0.01"),
            ("1E+0", "1"),
            ("1e0000000000000000000000000000002", "100"),
            ("0000000000000000000000000000000000000000000000001", "1"),
            (
                "1000000000000000000000000000000000000000000",
                "1000000000000000000000000000000000000000000",
            ),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            ("-9223372036854775808", "-9223372036854775808"),
        ];
        for (input, shown) in cases {
            assert_eq!(n(input).to_string(), shown, "display of {input:?}");
        }
    }

    #[test]
    fn extremes_display_in_plain_notation() {
        let max = n("9.9999999999999999999999999999999999999E+125");
        assert_eq!(
            max.to_string(),
            format!("{}{}", "9".repeat(38), "0".repeat(88))
        );
        let min = n("1E-130");
        assert_eq!(min.to_string(), format!("0.{}1", "0".repeat(129)));
        assert_eq!(n("-1E-130").to_string(), format!("-0.{}1", "0".repeat(129)));
        assert_eq!(n("10E-131"), min);
        assert_eq!(n("0.1E-129"), min);
        assert_eq!(n("99999999999999999999999999999999999999E88"), max);
    }

    #[test]
    fn not_a_number() {
        for s in [
            "",
            "abc",
            "1.2.3",
            "--1",
            "+-1",
            " 1",
            "1 ",
            "1e",
            "1e+",
            "1e-",
            ".",
            "-.",
            ".e2",
            "e5",
            "-",
            "+",
            "Infinity",
            "-Infinity",
            "NaN",
            "nan",
            "0x10",
            "1e2.5",
            "1e+-2",
            "1,000",
            "1_000",
            "1d",
            "1f",
            "1L",
            "１",
            "1e99999999999",
            "1e9999999999",
            "1e2147483648",
            "1e-2147483648",
            "0e-99999999999",
            "0.1e-2147483648",
            "1ee2",
            "1e2e3",
            "\u{0}",
        ] {
            assert_eq!(Number::parse(s), Err(nan(s)), "{s:?}");
        }
    }

    #[test]
    fn precision_limit() {
        let digits38 = "12345678901234567890123456789012345678";
        assert_eq!(n(digits38).significant_digits(), 38);
        assert_eq!(n(&format!("-{digits38}")).significant_digits(), 38);
        assert_eq!(n(&format!("0.{digits38}")).significant_digits(), 38);
        assert_eq!(n(&format!("000{digits38}000")).significant_digits(), 38);
        assert_eq!(n("0.000100").significant_digits(), 1);
        for s in [
            "123456789012345678901234567890123456789",
            "12345678901234567890123456789012345678.9",
            "1.23456789012345678901234567890123456789e-120",
            "-1.00000000000000000000000000000000000001",
            // Precision is checked before range.
            "123456789012345678901234567890123456789e200",
            "123456789012345678901234567890123456789e-200",
        ] {
            assert_eq!(Number::parse(s), Err(NumberError::TooPrecise), "{s:?}");
        }
    }

    #[test]
    fn range_limits() {
        for s in [
            "1E+126",
            "-1E+126",
            "10E+125",
            "99999999999999999999999999999999999999E89",
            "1e2147483647",
        ] {
            assert_eq!(Number::parse(s), Err(NumberError::Overflow), "{s:?}");
        }
        for s in [
            "1E-131",
            "-1E-131",
            "0.1E-130",
            "1e-2147483647",
            "9.99E-131",
        ] {
            assert_eq!(Number::parse(s), Err(NumberError::Underflow), "{s:?}");
        }
        for s in [
            "9.9999999999999999999999999999999999999E+125",
            "-9.9999999999999999999999999999999999999E+125",
            "1E+125",
            "1E-130",
            "-1E-130",
        ] {
            assert!(Number::parse(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn error_messages_use_dynamodb_wording() {
        assert_eq!(
            nan("abc").to_string(),
            "The parameter cannot be converted to a numeric value: abc"
        );
        assert_eq!(
            NumberError::TooPrecise.to_string(),
            "Attempting to store more than 38 significant digits in a Number"
        );
        assert_eq!(
            NumberError::Overflow.to_string(),
            "Number overflow. Attempting to store a number with magnitude larger than supported range"
        );
        assert_eq!(
            NumberError::Underflow.to_string(),
            "Number underflow. Attempting to store a number with magnitude smaller than supported range"
        );
    }

    #[test]
    fn equality_and_order_are_numeric() {
        assert_eq!(n("1"), n("1.0"));
        assert_eq!(n("1"), n("10E-1"));
        assert_eq!(n("-0"), n("0"));
        assert_eq!(n("100"), n("1e2"));
        let ascending = [
            "-9.9999999999999999999999999999999999999E+125",
            "-1E+125",
            "-100",
            "-10",
            "-5",
            "-1.05",
            "-1",
            "-0.5",
            "-1E-130",
            "0",
            "1E-130",
            "0.00012",
            "0.5",
            "1",
            "1.05",
            "1.5",
            "5",
            "10",
            "50",
            "100",
            "99999999999999999999999999999999999999",
            "1E+125",
            "9.9999999999999999999999999999999999999E+125",
        ];
        for pair in ascending.windows(2) {
            let (a, b) = (n(pair[0]), n(pair[1]));
            assert!(a < b, "{} < {}", pair[0], pair[1]);
            assert!(
                a.to_ordered_bytes() < b.to_ordered_bytes(),
                "bytes {} < {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn add_and_sub_examples() {
        let add = |a: &str, b: &str| n(a).checked_add(&n(b));
        let sub = |a: &str, b: &str| n(a).checked_sub(&n(b));
        assert_eq!(add("10", "5"), Ok(n("15")));
        assert_eq!(add("0.1", "0.2"), Ok(n("0.3")));
        assert_eq!(add("5", "5"), Ok(n("10")));
        assert_eq!(add("1.5", "-1.5"), Ok(n("0")));
        assert_eq!(add("1E-130", "1E-130"), Ok(n("2E-130")));
        assert_eq!(sub("1E-129", "9E-130"), Ok(n("1E-130")));
        assert_eq!(add("1E-130", "-1E-130"), Ok(Number::zero()));
        assert_eq!(
            add("99999999999999999999999999999999999999", "1"),
            Ok(n("100000000000000000000000000000000000000"))
        );
        // 38 digits apart: still exact, 39 digits.
        assert_eq!(
            add("1E37", "1"),
            Ok(n("10000000000000000000000000000000000001"))
        );
        assert_eq!(add("1E38", "1"), Err(NumberError::TooPrecise));
        // 38 digits apart with cancellation: 38 nines, exact.
        assert_eq!(add("1E38", "-1"), Ok(n(&"9".repeat(38))));
        assert_eq!(add("-1", "1E38"), Ok(n(&"9".repeat(38))));
        assert_eq!(add("1E39", "-1"), Err(NumberError::TooPrecise));
        assert_eq!(add("1E30", "1E-10"), Err(NumberError::TooPrecise));
        assert_eq!(add("1E100", "1E-100"), Err(NumberError::TooPrecise));
        assert_eq!(add("-1E100", "1E-100"), Err(NumberError::TooPrecise));
        assert_eq!(
            add("12345678901234567890123456789012345678", "0.1"),
            Err(NumberError::TooPrecise)
        );
        // Cancellation down to few digits is exact.
        assert_eq!(
            sub(
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345677"
            ),
            Ok(n("1"))
        );
        assert_eq!(
            sub("1.0000000000000000000000000000000000001", "1"),
            Ok(n("1E-37"))
        );
        // Precision is reported before range, as DynamoDB does.
        assert_eq!(
            add("9.9999999999999999999999999999999999999E+125", "1E+125"),
            Err(NumberError::TooPrecise)
        );
        assert_eq!(add("9E+125", "1E+125"), Err(NumberError::Overflow));
        assert_eq!(sub("-9E+125", "1E+125"), Err(NumberError::Overflow));
        assert_eq!(sub("9E+125", "-9E+125"), Err(NumberError::Overflow));
        assert_eq!(sub("2E-130", "1E-130"), Ok(n("1E-130")));
        assert_eq!(add("-2.5", "0"), Ok(n("-2.5")));
        assert_eq!(add("0", "-2.5"), Ok(n("-2.5")));
        assert_eq!(sub("0", "2.5"), Ok(n("-2.5")));
    }

    #[test]
    fn helpers() {
        assert!(n("0").is_zero());
        assert!(!n("1E-130").is_zero());
        assert!(n("-1").is_negative());
        assert!(!n("0").is_negative());
        assert!(n("1e5").is_integer());
        assert!(!n("1.5").is_integer());
        assert_eq!(n("1e5").to_i64(), Some(100_000));
        assert_eq!(n("-42").to_i64(), Some(-42));
        assert_eq!(n("1.5").to_i64(), None);
        assert_eq!(n("9223372036854775807").to_i64(), Some(i64::MAX));
        assert_eq!(n("9223372036854775808").to_i64(), None);
        assert_eq!(n("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(n("1e30").to_i64(), None);
        assert_eq!(n("1e100").to_i64(), None);
        assert_eq!(n("2.5").negate(), n("-2.5"));
        assert_eq!(n("0").negate(), n("0"));
        assert_eq!(n("-2.5").abs(), n("2.5"));
        assert_eq!("1.5e1".parse::<Number>(), Ok(n("15")));
        assert_eq!(Number::from_i64(0), n("0"));
        assert_eq!(Number::from_i64(-1200), n("-1.2e3"));
        assert_eq!(Number::from_i64(i64::MIN).to_string(), i64::MIN.to_string());
    }

    #[test]
    fn sizes() {
        let cases = [
            ("0", 1),
            ("1", 2),
            ("27", 2),
            ("-27", 3),
            ("100", 2),
            ("1E+125", 2),
            ("461", 3),
            ("1.5", 3),
            ("0.5", 2),
            ("0.05", 2),
            ("0.15", 2),
            ("0.125", 3),
            ("1E-130", 2),
            ("1786461547", 6),
            ("12345678901234567890123456789012345678", 20),
            ("-12345678901234567890123456789012345678", 21),
            ("0.12345678901234567890123456789012345678", 20),
            ("1.2345678901234567890123456789012345678", 21),
        ];
        for (s, size) in cases {
            assert_eq!(n(s).size(), size, "size of {s}");
        }
    }

    #[test]
    fn ordered_bytes_layout_and_rejects() {
        assert_eq!(n("0").to_ordered_bytes(), vec![TAG_ZERO]);
        assert_eq!(n("1").to_ordered_bytes(), vec![TAG_POSITIVE, 130, 10]);
        assert_eq!(
            n("12.5").to_ordered_bytes(),
            vec![TAG_POSITIVE, 131, 12, 50]
        );
        assert_eq!(
            n("-1").to_ordered_bytes(),
            vec![TAG_NEGATIVE, 125, 89, NEGATIVE_END]
        );
        for bad in [
            &[][..],
            &[0x00],
            &[0x04, 130, 10],
            &[TAG_ZERO, 0],
            &[TAG_POSITIVE],
            &[TAG_POSITIVE, 130],
            &[TAG_POSITIVE, 130, 100],
            &[TAG_POSITIVE, 130, 5],     // leading zero digit
            &[TAG_POSITIVE, 130, 10, 0], // trailing zero pair
            &[TAG_NEGATIVE, 125, 89],    // no terminator
            &[TAG_NEGATIVE, 125, NEGATIVE_END],
            &[TAG_NEGATIVE, 125, 200, NEGATIVE_END],
            &[
                TAG_POSITIVE,
                130,
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11,
                12,
                13,
                14,
                15,
                16,
                17,
                18,
                19,
                20,
            ],
        ] {
            assert_eq!(Number::from_ordered_bytes(bad), None, "{bad:?}");
        }
    }

    /// Any valid number: sign, 1..=38 digits, leading digit at 10^-130..=10^125.
    fn any_number() -> impl Strategy<Value = Number> {
        prop_oneof![
            1 => Just(Number::zero()),
            20 => (any::<bool>(), 1u32..=38, -130i64..=125, any::<u128>()).prop_map(
                |(negative, count, adjusted, seed)| {
                    let low = POW10[count as usize - 1];
                    let magnitude = low + seed % (POW10[count as usize] - low);
                    let exponent = adjusted - i64::from(count) + 1;
                    Number::from_parts(negative, magnitude, exponent).unwrap()
                }
            ),
        ]
    }

    /// Numbers drawn near each other, so ties and shared prefixes are common.
    fn close_number() -> impl Strategy<Value = Number> {
        (any::<bool>(), 1u128..2000, -3i64..3)
            .prop_map(|(negative, m, e)| Number::from_parts(negative, m, e).unwrap())
    }

    /// Fixed-point text of a number's magnitude: 130 integer and 170
    /// fraction digits, so string order is magnitude order.
    fn reference_key(x: &Number) -> (i8, String) {
        let text = x.to_string();
        let magnitude = text.trim_start_matches('-');
        let (int, frac) = magnitude.split_once('.').unwrap_or((magnitude, ""));
        let fixed = format!("{int:0>130}{frac:0<170}");
        (x.mantissa.signum() as i8, fixed)
    }

    fn reference_cmp(a: &Number, b: &Number) -> Ordering {
        let (sa, ka) = reference_key(a);
        let (sb, kb) = reference_key(b);
        sa.cmp(&sb).then_with(|| {
            let by_magnitude = ka.cmp(&kb);
            if sa < 0 {
                by_magnitude.reverse()
            } else {
                by_magnitude
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn display_parse_round_trip(x in any_number()) {
            let text = x.to_string();
            prop_assert_eq!(Number::parse(&text), Ok(x.clone()));
            prop_assert!(!text.contains(['e', 'E', '+']));
            let magnitude = text.trim_start_matches('-');
            prop_assert!(!magnitude.starts_with('0') || magnitude == "0" || magnitude.starts_with("0."));
            prop_assert!(text != "-0");
            if text.contains('.') {
                prop_assert!(!text.ends_with('0') && !text.ends_with('.'));
            }
        }

        #[test]
        fn scientific_text_parses_to_same_value(x in any_number(), shift in -20i64..20) {
            // Write the digits with a moved point: digits × 10^(exponent).
            let digits = x.mantissa.unsigned_abs().to_string();
            let sign = if x.is_negative() { "-" } else { "" };
            let padded = format!("{digits}{}", "0".repeat(shift.max(0) as usize));
            let text = format!("{sign}{padded}E{}", i64::from(x.exponent) - shift.max(0));
            prop_assert_eq!(Number::parse(&text), Ok(x));
        }

        #[test]
        fn ordered_bytes_round_trip(x in any_number()) {
            prop_assert_eq!(Number::from_ordered_bytes(&x.to_ordered_bytes()), Some(x));
        }

        #[test]
        fn ordered_bytes_follow_order(a in any_number(), b in any_number()) {
            prop_assert_eq!(a.to_ordered_bytes().cmp(&b.to_ordered_bytes()), a.cmp(&b));
        }

        #[test]
        fn ordered_bytes_follow_order_close(a in close_number(), b in close_number()) {
            prop_assert_eq!(a.to_ordered_bytes().cmp(&b.to_ordered_bytes()), a.cmp(&b));
            prop_assert_eq!(a.cmp(&b), reference_cmp(&a, &b));
        }

        #[test]
        fn order_matches_reference(a in any_number(), b in any_number()) {
            prop_assert_eq!(a.cmp(&b), reference_cmp(&a, &b));
            prop_assert_eq!(a == b, reference_cmp(&a, &b) == Ordering::Equal);
        }

        #[test]
        fn integer_add_sub_match_i128(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Number::from_i64(a), Number::from_i64(b));
            let sum = (i128::from(a) + i128::from(b)).to_string();
            let difference = (i128::from(a) - i128::from(b)).to_string();
            prop_assert_eq!(x.checked_add(&y), Ok(n(&sum)));
            prop_assert_eq!(x.checked_sub(&y), Ok(n(&difference)));
            prop_assert_eq!(x.checked_add(&y).unwrap().to_string(), sum);
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }

        #[test]
        fn decimal_add_matches_scaled_i128(
            ma in -10i128.pow(15)..10i128.pow(15),
            ea in -12i32..12,
            mb in -10i128.pow(15)..10i128.pow(15),
            eb in -12i32..12,
        ) {
            let x = Number { mantissa: ma, exponent: ea }.normalized();
            let y = Number { mantissa: mb, exponent: eb }.normalized();
            let base = ea.min(eb);
            let scaled = ma * 10i128.pow((ea - base) as u32) + mb * 10i128.pow((eb - base) as u32);
            let expected = n(&format!("{scaled}e{base}"));
            prop_assert_eq!(x.checked_add(&y), Ok(expected.clone()));
            prop_assert_eq!(expected.checked_sub(&y), Ok(x));
        }

        #[test]
        fn add_is_exact_or_fails(a in any_number(), b in any_number()) {
            // A successful sum minus one operand gives back the other.
            match a.checked_add(&b) {
                Ok(sum) => {
                    prop_assert_eq!(sum.checked_sub(&b), Ok(a.clone()));
                    prop_assert_eq!(b.checked_add(&a), Ok(sum));
                }
                Err(e) => {
                    prop_assert!(e != NumberError::Underflow || a.is_negative() != b.is_negative());
                    prop_assert_eq!(b.checked_add(&a), Err(e));
                }
            }
        }

        #[test]
        fn parse_never_panics(s in "[-+0-9.eE]{0,14}") {
            if let Ok(x) = Number::parse(&s) {
                prop_assert_eq!(Number::parse(&x.to_string()), Ok(x));
            }
        }

        #[test]
        fn from_ordered_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Some(x) = Number::from_ordered_bytes(&b) {
                prop_assert_eq!(x.to_ordered_bytes(), b);
            }
        }
    }
}
