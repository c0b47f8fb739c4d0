//! Plain scalar resolution by the YAML 1.2 core schema (as `yaml_serde`
//! does): `null`/`~`/empty, booleans, integers, floats; everything else,
//! and every quoted scalar, is a string.

use saphyr_parser::{ScalarStyle, Tag};
use yaml_serde::{Number, Value};

/// The value of a scalar written as `text` in `style` with an optional tag.
pub(super) fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag {
        if tag.suffix == "str" || tag.suffix.ends_with(":str") {
            return Value::String(text.to_string());
        }
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Number(f64::INFINITY.into())
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(f64::NEG_INFINITY.into()),
        ".nan" | ".NaN" | ".NAN" => return Value::Number(f64::NAN.into()),
        _ => {}
    }
    number(text).map_or_else(|| Value::String(text.to_string()), Value::Number)
}

fn number(text: &str) -> Option<Number> {
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(n.into());
        }
    }
    let float_chars = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+');
    let starts_ok = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if starts_ok && digits.bytes().any(|b| b.is_ascii_digit()) && text.bytes().all(float_chars) {
        return text.parse::<f64>().ok().map(Number::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Value {
        resolve(s, ScalarStyle::Plain, None)
    }

    #[test]
    fn core_schema() {
        assert_eq!(plain("~"), Value::Null);
        assert_eq!(plain("true"), Value::Bool(true));
        assert_eq!(plain("90"), Value::Number(90.into()));
        assert_eq!(plain("-3"), Value::Number((-3).into()));
        assert_eq!(plain("100.0"), Value::Number(100.0.into()));
        assert_eq!(plain("1e3"), Value::Number(1000.0.into()));
        assert_eq!(plain("1.5s"), Value::String("1.5s".into()));
        assert_eq!(plain("5xx"), Value::String("5xx".into()));
        assert_eq!(plain("v1"), Value::String("v1".into()));
        assert_eq!(plain("e1"), Value::String("e1".into()));
        assert_eq!(plain("."), Value::String(".".into()));
        assert_eq!(
            resolve("90", ScalarStyle::DoubleQuoted, None),
            Value::String("90".into())
        );
    }
}
