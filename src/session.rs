//! Rehearsal logins: `POST /session` hands out a bearer token, and under
//! `--require-session` the stream routes refuse requests without a valid
//! one (`401`). It lets a load test rehearse the scenario of an
//! authenticated streaming API (log in, then stream with the token) and
//! prove the token was used. It is not a security feature: a token is a
//! random nonce and a keyed hash of it (SipHash with this process's
//! random key, as Rust's `RandomState`), valid on this process only,
//! with no expiry; nothing is stored per session.

use std::hash::BuildHasher;

/// Issues and checks session tokens.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// Whether the stream routes require a token.
    pub required: bool,
    key: std::collections::hash_map::RandomState,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token this process did not issue.
    Unknown,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "no session token: POST /session for one, then send it as Authorization: Bearer <token>",
            Self::Unknown => "the session token was not issued by this instance",
        }
    }
}

impl Sessions {
    pub fn new(required: bool) -> Self {
        Self {
            required,
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// A new token: 16 hex digits of nonce, 16 of its keyed hash.
    pub fn issue(&self) -> String {
        let nonce = fastrand::u64(..);
        format!("{nonce:016x}{:016x}", self.key.hash_one(nonce))
    }

    /// Whether `authorization` (the header's value) carries a token this
    /// process issued; always fine when tokens are not required.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refused> {
        if !self.required {
            return Ok(());
        }
        let token = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(bearer)
            .ok_or(Refused::Missing)?;
        if self.valid(token) {
            Ok(())
        } else {
            Err(Refused::Unknown)
        }
    }

    fn valid(&self, token: &str) -> bool {
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let (nonce, tag) = token.split_at(16);
        match (u64::from_str_radix(nonce, 16), u64::from_str_radix(tag, 16)) {
            (Ok(nonce), Ok(tag)) => self.key.hash_one(nonce) == tag,
            _ => false,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_this_process_issued_pass() {
        let sessions = Sessions::new(true);
        let token = sessions.issue();
        let other = Sessions::new(true).issue();
        let header = |t: &str| format!("Bearer {t}");
        let cases: [(Option<String>, Result<(), Refused>); 8] = [
            (Some(header(&token)), Ok(())),
            (Some(format!("bearer   {token} ")), Ok(())),
            (None, Err(Refused::Missing)),
            (Some("Basic dXNlcjpwYXNz".to_owned()), Err(Refused::Missing)),
            (Some("Bearer".to_owned()), Err(Refused::Missing)),
            (Some(header(&other)), Err(Refused::Unknown)),
            (Some(header(&token[..31])), Err(Refused::Unknown)),
            (
                Some(header(&format!("{}zz", &token[..30]))),
                Err(Refused::Unknown),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                sessions.check(value.as_deref().map(str::as_bytes)),
                expected,
                "{value:?}"
            );
        }
        // A forged tag for a valid nonce fails too.
        let forged = format!("{}{:016x}", &token[..16], 0u64);
        assert_eq!(
            sessions.check(Some(header(&forged).as_bytes())),
            Err(Refused::Unknown)
        );
    }

    #[test]
    fn nothing_is_required_unless_asked() {
        assert_eq!(Sessions::new(false).check(None), Ok(()));
        assert_eq!(Sessions::new(false).check(Some(b"Bearer nonsense")), Ok(()));
    }
}
