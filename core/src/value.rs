//! A secret value: bytes, held in memory that is wiped on drop, never shown by `Debug`.
//!
//! On the wire a value is UTF-8 text in the field `value`, or — when the bytes are not
//! valid UTF-8 — standard base64 in `value_base64`. Exactly one of the two is present.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// Largest value the server stores, in bytes. Clients check it before sending.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// Secret bytes. Cloning copies into another wiped buffer; `Debug` prints only the
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps bytes (they are moved, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(Zeroizing::new(bytes))
    }

    /// The bytes. Call at the one place that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes for JSON: text when UTF-8, base64 otherwise.
    pub fn to_wire(&self) -> WireValue {
        match self.as_str() {
            Some(s) => WireValue {
                value: Some(Zeroizing::new(s.to_owned())),
                value_base64: None,
            },
            None => WireValue {
                value: None,
                value_base64: Some(base64::engine::general_purpose::STANDARD.encode(self.expose())),
            },
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue([redacted; {} bytes])", self.0.len())
    }
}

/// Why a wire value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireValueError {
    /// Neither `value` nor `value_base64` was given.
    #[error("one of `value` or `value_base64` is required")]
    Missing,
    /// Both were given.
    #[error("give only one of `value` and `value_base64`")]
    Both,
    /// `value_base64` is not valid standard base64.
    #[error("`value_base64` is not valid base64")]
    BadBase64,
}

/// A value as JSON carries it. Serialises only the field in use.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireValue {
    /// The value as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub value: Option<Zeroizing<String>>,
    /// The value as standard base64, for bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl WireValue {
    /// Decodes to bytes.
    pub fn decode(&self) -> Result<SecretValue, WireValueError> {
        match (&self.value, &self.value_base64) {
            (Some(_), Some(_)) => Err(WireValueError::Both),
            (None, None) => Err(WireValueError::Missing),
            (Some(text), None) => Ok(SecretValue::new(text.as_bytes().to_vec())),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(SecretValue::new)
                .map_err(|_| WireValueError::BadBase64),
        }
    }
}

impl fmt::Debug for WireValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireValue([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_round_trip() {
        let pem = b"-----BEGIN PRIVATE KEY-----\nMIIB\r\n\t x\n-----END PRIVATE KEY-----\n";
        let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
        for bytes in [pem.to_vec(), binary, Vec::new()] {
            let v = SecretValue::new(bytes.clone());
            let json = serde_json::to_string(&v.to_wire()).unwrap();
            let back: WireValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back.decode().unwrap().expose(), &bytes[..]);
        }
    }

    #[test]
    fn binary_uses_base64_field() {
        let json = serde_json::to_string(&SecretValue::new(vec![0xff]).to_wire()).unwrap();
        assert_eq!(json, r#"{"value_base64":"/w=="}"#);
    }

    #[test]
    fn debug_never_shows_bytes() {
        let v = SecretValue::new(b"canary-4f1d".to_vec());
        assert!(!format!("{v:?}").contains("canary"));
        assert!(!format!("{:?}", v.to_wire()).contains("canary"));
    }

    #[test]
    fn rejects_ambiguous_or_bad_input() {
        let both: WireValue =
            serde_json::from_str(r#"{"value":"a","value_base64":"YQ=="}"#).unwrap();
        assert_eq!(both.decode().unwrap_err(), WireValueError::Both);
        let none: WireValue = serde_json::from_str("{}").unwrap();
        assert_eq!(none.decode().unwrap_err(), WireValueError::Missing);
        let bad: WireValue = serde_json::from_str(r#"{"value_base64":"!!"}"#).unwrap();
        assert_eq!(bad.decode().unwrap_err(), WireValueError::BadBase64);
    }
}
