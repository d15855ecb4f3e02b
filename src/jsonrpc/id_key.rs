//! A comparison key for ids: one text per JSON value. Numbers compare as exact decimals (no
//! f64: integers beyond 2^53 stay distinct), strings after unescaping; a string's key keeps
//! its quotes, so it never equals a number's.

use std::borrow::Cow;

/// Integers up to this many digits keep their plain form; larger magnitudes use `<digits>e<exp>`.
const PLAIN_DIGITS: usize = 64;

/// The key of `text`, a JSON string or number. Borrowed for the usual forms (plain integers,
/// strings without escapes), so comparing and hashing them allocates nothing.
pub fn of(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'"') => string(text),
        Some(_) => number(text),
        None => Cow::Borrowed(text),
    }
}

fn string(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    match serde_json::from_str::<String>(text) {
        Ok(v) => Cow::Owned(format!("\"{v}\"")),
        Err(_) => Cow::Borrowed(text),
    }
}

fn number(text: &str) -> Cow<'_, str> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, text),
    };
    let plain = !magnitude.is_empty()
        && magnitude.bytes().all(|b| b.is_ascii_digit())
        && (magnitude.len() == 1 || !magnitude.starts_with('0'))
        && text.len() <= PLAIN_DIGITS;
    if plain && !(negative && magnitude == "0") {
        return Cow::Borrowed(text);
    }
    Cow::Owned(normalise(negative, magnitude).unwrap_or_else(|| text.to_owned()))
}

/// `digits × 10^exp` with no leading or trailing zeros in `digits`, rendered as a plain
/// integer when that is short, else as `<digits>e<exp>`. `None` if `magnitude` is no number.
fn normalise(negative: bool, magnitude: &str) -> Option<String> {
    let (mantissa, exp_text) = match magnitude.find(['e', 'E']) {
        Some(i) => (&magnitude[..i], Some(&magnitude[i + 1..])),
        None => (magnitude, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut exp: i64 = match exp_text {
        Some(e) => {
            let e = e.strip_prefix('+').unwrap_or(e);
            // Exponents beyond i64 saturate: such ids are equal only to themselves in practice.
            e.parse::<i64>().unwrap_or(if e.starts_with('-') {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            })
        }
        None => 0,
    };
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    exp = exp.saturating_sub(frac.len() as i64);
    let all: String = int.chars().chain(frac.chars()).collect();
    let leading_trimmed = all.trim_start_matches('0');
    let digits = leading_trimmed.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned()); // -0, 0.0, 0e5: all zero
    }
    exp = exp.saturating_add((leading_trimmed.len() - digits.len()) as i64);
    let sign = if negative { "-" } else { "" };
    let zeros = usize::try_from(exp).ok();
    Some(match zeros {
        Some(z) if digits.len() + z <= PLAIN_DIGITS => {
            format!("{sign}{digits}{}", "0".repeat(z))
        }
        _ => format!("{sign}{digits}e{exp}"),
    })
}

#[cfg(test)]
mod tests {
    use super::of;

    fn same(a: &str, b: &str) -> bool {
        of(a) == of(b)
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same("1", "1.0"));
        assert!(same("1000", "1e3"));
        assert!(same("1000", "1E+3"));
        assert!(same("0", "-0"));
        assert!(same("0", "0.0e7"));
        assert!(same("12.5", "1.25e1"));
        assert!(same("0.001", "1e-3"));
        assert!(same("-7", "-7.000"));
        assert!(!same("1", "-1"));
        assert!(!same("1", "10"));
        assert!(!same("1.5", "15"));
    }

    #[test]
    fn integers_beyond_f64_precision_stay_distinct() {
        // Both round to the same f64.
        assert!(!same("9007199254740993", "9007199254740992"));
        assert!(same("9007199254740993", "9007199254740993.0"));
        assert!(!same(
            "123456789012345678901234567890",
            "123456789012345678901234567891"
        ));
    }

    #[test]
    fn long_integers_agree_with_their_exponent_form() {
        let long = format!("1{}", "0".repeat(100));
        assert!(same(&long, "1e100"));
        assert!(same(&format!("5{}", "0".repeat(63)), "5e63"));
    }

    #[test]
    fn strings_compare_after_unescaping() {
        assert!(same(r#""A""#, r#""\u0041""#));
        assert!(same(r#""a/b""#, r#""a\/b""#));
        assert!(same(r#""\"""#, r#""\u0022""#));
        assert!(!same(r#""a""#, r#""b""#));
    }

    #[test]
    fn a_string_never_equals_a_number() {
        assert!(!same("1", r#""1""#));
        assert!(!same("1e3", r#""1000""#));
    }

    #[test]
    fn usual_forms_borrow() {
        assert!(matches!(of("42"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(of("-42"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(of(r#""abc-1""#), std::borrow::Cow::Borrowed(_)));
    }
}
