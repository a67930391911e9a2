//! Secret masking for everything the store keeps as free-form JSON (event
//! payloads, task details, audit details): invariant 7 says secrets never
//! reach a log or the audit trail, and a tool result or an error message
//! is exactly where an API key would slip through.
//!
//! Two rules: values under a secret-looking key (`api_key`, `token`,
//! `Authorization`, `password`, `client_secret`, ...) are replaced whole,
//! and strings anywhere are scanned for well-known key shapes (`sk-ant-...`,
//! `sk-...`, `Bearer ...`, GitHub and Slack tokens, AWS access key ids),
//! which are masked in place so the rest of the message stays readable.
//! Counters such as `input_tokens` are not secrets and are kept.

use serde_json::Value;

/// What a masked secret becomes.
pub const REDACTED: &str = "[redacted]";

/// A copy of `value` with secrets masked.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let masked = if is_secret_key(key) && !is_empty(value) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(value)
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) => Value::String(redact_str(text)),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `API-Key`, `x_api_key`, `accessToken`, `client_secret`, `Authorization`...
/// but not `input_tokens` or `max_tokens`.
fn is_secret_key(key: &str) -> bool {
    let normal: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const EXACT: &[&str] = &[
        "auth",
        "authorization",
        "cookie",
        "setcookie",
        "passwd",
        "pwd",
    ];
    const SUFFIXES: &[&str] = &[
        "apikey",
        "token",
        "secret",
        "password",
        "privatekey",
        "credential",
        "credentials",
        "passphrase",
    ];
    EXACT.contains(&normal.as_str()) || SUFFIXES.iter().any(|s| normal.ends_with(s))
}

/// Masks key-shaped substrings of `text`.
pub(crate) fn redact_str(text: &str) -> String {
    // Fast path: nothing that could start a secret.
    let lower = text.to_ascii_lowercase();
    if !["sk-", "bearer", "gh", "github_pat_", "xox", "akia"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        // Secrets start with an ASCII letter, which is always a char boundary.
        let at_boundary =
            bytes[i].is_ascii_alphabetic() && (i == 0 || !is_token_byte(bytes[i - 1]));
        if let Some((keep, end)) = at_boundary.then(|| secret_at(text, &lower, i)).flatten() {
            out.push_str(&text[copied..i + keep]);
            out.push_str(REDACTED);
            i = end;
            copied = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// When a secret starts at byte `i`: how many bytes to keep visible (a
/// `Bearer ` prefix) and where the secret ends.
fn secret_at(text: &str, lower: &str, i: usize) -> Option<(usize, usize)> {
    let rest = &lower.as_bytes()[i..];
    let run = |from: usize, allowed: fn(u8) -> bool| {
        let tail = &text.as_bytes()[from..];
        from + tail.iter().take_while(|b| allowed(**b)).count()
    };
    // (prefix, minimum length after it)
    const KEY_PREFIXES: &[(&str, usize)] = &[
        ("sk-ant-", 10),
        ("sk-", 16),
        ("github_pat_", 20),
        ("ghp_", 20),
        ("gho_", 20),
        ("ghs_", 20),
        ("ghu_", 20),
        ("xoxb-", 10),
        ("xoxp-", 10),
    ];
    for (prefix, min) in KEY_PREFIXES {
        if rest.starts_with(prefix.as_bytes()) {
            let end = run(i + prefix.len(), is_token_byte);
            if end - i - prefix.len() >= *min {
                return Some((0, end));
            }
            return None;
        }
    }
    if rest.starts_with(b"akia") {
        let end = run(i, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if end - i == 20 {
            return Some((0, end));
        }
    }
    if rest.starts_with(b"bearer ") {
        let start = i + "bearer ".len();
        let end = run(start, |b| {
            b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
        });
        if end - start >= 8 {
            return Some((start - i, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for key in [
            "api_key",
            "API-Key",
            "x-api-key",
            "accessToken",
            "token",
            "Authorization",
            "password",
            "client_secret",
            "secret",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "input_tokens",
            "max_tokens",
            "tokens",
            "path",
            "author",
            "secretary_name_len",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
