//! Route labels: a bounded set, so journal and metric labels stay small.

/// The routes ratewire names (the same defaults as `ratewire run`); every other path
/// is `other`.
pub use ratewire_common::types::DEFAULT_ROUTES as ROUTES;

/// The label of a request path (query string already cut off).
pub fn route_label(path: &[u8]) -> &'static str {
    ROUTES
        .iter()
        .find(|route| route.as_bytes() == path)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(route_label(b"/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(route_label(b"/v1/messages"), "/v1/messages");
        assert_eq!(route_label(b"/v1/chat/completions/x"), "other");
        assert_eq!(route_label(b"/health"), "other");
        assert_eq!(route_label(b""), "other");
    }
}
