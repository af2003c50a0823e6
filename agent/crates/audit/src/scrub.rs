//! Secret scrubbing for anything the audit echoes from its inputs.
//!
//! Benchmark logs print their own command lines and options (genai-bench logs
//! `api_key: sk-...` verbatim), gateways put upstream error bodies into their logs, and
//! error messages can quote headers. Every string an input contributes to the audit's
//! output passes through [`scrub`]. It masks, keeping a recognisable prefix:
//!
//! - OpenAI-style keys `sk-...` (also `sk-proj-...`, `sk-ant-...`) → `sk-***`
//! - Google API keys `AIza...` → `AIza***`; AWS access key ids `AKIA...` → `AKIA***`
//! - `Bearer <token>` (any case) → `Bearer ***`
//! - the value of `api_key`, `api-key`, `apikey`, `x-api-key`, `access_token`,
//!   `auth_token`, `master_key`, `secret_access_key`, `password`, `authorization`,
//!   `token` and `secret` in `key=value`, `key: value`, `"key": "value"` forms → `***`

use std::borrow::Cow;

const MASK: &str = "***";

/// Names whose value is a secret (compared case-insensitively, `-` and `_` alike).
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "apikey",
    "x_api_key",
    "access_token",
    "auth_token",
    "master_key",
    "secret_access_key",
    "aws_secret_access_key",
    "password",
    "authorization",
    "token",
    "secret",
];

/// Token prefixes that mark a secret on their own, with the minimum length of the rest.
const SECRET_PREFIXES: &[(&str, usize)] = &[("sk-", 8), ("AIza", 20), ("AKIA", 16)];

/// `text` with secrets masked; borrowed unchanged when there is nothing to mask.
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !might_hold_secret(text) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes of `text` already in `out`
    let mut i = 0;
    while i < b.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        if let Some((keep, end)) = secret_at(text, i) {
            out.push_str(&text[copied..i + keep]);
            out.push_str(MASK);
            copied = end;
            i = end;
        } else {
            i += 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Cheap pre-check so clean lines (almost all of them) are not copied.
fn might_hold_secret(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    SECRET_PREFIXES.iter().any(|(p, _)| text.contains(p))
        || lower.contains("bearer")
        || SECRET_KEYS
            .iter()
            .any(|k| lower.contains(k) || lower.contains(&k.replace('_', "-")))
}

/// If a secret starts at byte `i`: (bytes of the match to keep before the mask, end of
/// the secret). `i` must be at a token start for prefixes and keys.
fn secret_at(text: &str, i: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let at_token_start = i == 0 || !is_token_byte(b[i - 1]);
    if !at_token_start {
        return None;
    }
    let rest = &text[i..];
    for &(prefix, min_len) in SECRET_PREFIXES {
        if let Some(tail) = rest.strip_prefix(prefix) {
            let len = tail.bytes().take_while(|&c| is_token_byte(c)).count();
            if len >= min_len {
                return Some((prefix.len(), i + prefix.len() + len));
            }
        }
    }
    if rest.len() > 7 && rest.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
        let start = 7 + rest[7..].bytes().take_while(|&c| c == b' ').count();
        let len = rest[start..]
            .bytes()
            .take_while(|&c| is_token_byte(c) || matches!(c, b'.' | b'~' | b'+' | b'/' | b'='))
            .count();
        if len > 0 {
            return Some((start, i + start + len));
        }
    }
    key_value_secret(rest).map(|(keep, end)| (keep, i + end))
}

/// `key<sep>value` where key is a secret name: (offset of the value, end of the value).
fn key_value_secret(rest: &str) -> Option<(usize, usize)> {
    let b = rest.as_bytes();
    let key_len = b
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        .count();
    if key_len == 0 {
        return None;
    }
    let key = rest[..key_len].to_ascii_lowercase().replace('-', "_");
    if !SECRET_KEYS.contains(&key.as_str()) {
        return None;
    }
    // Separator: optional closing quote, spaces, '=' or ':', spaces, optional opening quote.
    let mut j = key_len;
    if j < b.len() && matches!(b[j], b'"' | b'\'') {
        j += 1;
    }
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    if j >= b.len() || !matches!(b[j], b'=' | b':') {
        return None;
    }
    j += 1;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    let quote = (j < b.len() && matches!(b[j], b'"' | b'\'')).then(|| b[j]);
    if quote.is_some() {
        j += 1;
    }
    let value_start = j;
    let value_len = match quote {
        Some(q) => b[j..].iter().take_while(|&&c| c != q).count(),
        None => b[j..]
            .iter()
            .take_while(|&&c| !matches!(c, b' ' | b',' | b';' | b'&' | b'}' | b')' | b'\n'))
            .count(),
    };
    let value = &rest[value_start..value_start + value_len];
    // `api_key: None` and empty values are not secrets; `Bearer x` is handled above.
    if value_len == 0
        || matches!(value, "None" | "null" | "none" | "-" | "***")
        || value.to_ascii_lowercase().starts_with("bearer")
    {
        return None;
    }
    Some((value_start, value_start + value_len))
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn masks_openai_style_keys() {
        assert_eq!(scrub("key sk-abc123DEF456ghi end"), "key sk-*** end");
        assert_eq!(scrub("sk-proj-AbCdEf0123456789"), "sk-***");
        assert_eq!(
            scrub("Incorrect API key provided: sk-ant-api03-XYZxyz0123"),
            "Incorrect API key provided: sk-***"
        );
    }

    #[test]
    fn masks_google_and_aws_keys() {
        assert_eq!(
            scrub("url?key=AIzaSyA1234567890abcdefghijklmnop"),
            "url?key=AIza***"
        );
        assert_eq!(scrub("AKIAIOSFODNN7EXAMPLE used"), "AKIA*** used");
    }

    #[test]
    fn masks_bearer_tokens_any_case() {
        assert_eq!(
            scrub("Authorization: Bearer eyJhbGciOi.J9.sig"),
            "Authorization: Bearer ***"
        );
        assert_eq!(scrub("bearer abc/def+ghi="), "bearer ***");
    }

    #[test]
    fn masks_key_value_forms() {
        assert_eq!(scrub("api_key=hunter2&x=1"), "api_key=***&x=1");
        assert_eq!(
            scrub("INFO - api_key: my-secret-key"),
            "INFO - api_key: ***"
        );
        assert_eq!(
            scrub(r#"{"api_key": "abc def", "model": "m"}"#),
            r#"{"api_key": "***", "model": "m"}"#
        );
        assert_eq!(scrub("x-api-key: 0123abcd"), "x-api-key: ***");
        assert_eq!(scrub("password='pa ss'"), "password='***'");
    }

    #[test]
    fn leaves_clean_text_and_placeholders_alone() {
        for clean in [
            "429 Client Error: Too Many Requests for url: /v1/chat/completions",
            "api_key: None",
            "task-id sk-short",
            "risk-assessment mask-ed", // `sk-` inside a word is not a key
            "tokens: 12",
        ] {
            assert_eq!(scrub(clean), clean, "{clean}");
        }
    }

    #[test]
    fn genai_bench_log_line_is_scrubbed() {
        let line = "INFO     2026-11-23 11:46:26.%f - genai_bench.benchmark:benchmark - api_key: sk-fixture-not-a-key";
        assert_eq!(
            scrub(line),
            "INFO     2026-11-23 11:46:26.%f - genai_bench.benchmark:benchmark - api_key: ***"
        );
        let cmd = "genai-bench --api-key sk-fixture-not-a-key --task text-to-text";
        assert_eq!(
            scrub(cmd),
            "genai-bench --api-key sk-*** --task text-to-text"
        );
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(scrub("⏩ token=ßecret ✓"), "⏩ token=*** ✓");
    }
}
