//! The service a run or a search measures (`--host`), checked before any
//! load: a URL with scheme `http`, `https`, `ws` or `wss` and a host.
//! Anything else is a usage error that says what was expected; a value
//! that looks like a header (goose's `-H` is `--host`, curl's is
//! `--header`) is named as one and never echoed whole, so a token typed
//! there reaches neither the terminal nor a report.

/// Why `--host` is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("--host {name}: ... looks like a header, not a URL: did you mean --header? (-H is --host here, as in goose); expected e.g. --host http://127.0.0.1:8080")]
    LooksLikeHeader { name: String },
    #[error("--host {raw:?} has no scheme: did you mean --host http://{raw}?")]
    NoScheme { raw: String },
    #[error("--host {raw:?}: the scheme {scheme:?} is not one trickle-load speaks (http, https, ws, wss)")]
    Scheme { raw: String, scheme: String },
    #[error("--host {raw:?} names no host: expected e.g. --host http://127.0.0.1:8080")]
    NoHost { raw: String },
    #[error("--host is empty: expected e.g. --host http://127.0.0.1:8080")]
    Empty,
}

/// The schemes a target may have.
pub(crate) const SCHEMES: [&str; 4] = ["http", "https", "ws", "wss"];

/// `raw` as a target URL (trimmed), or why it is not one.
pub(crate) fn parse(raw: &str) -> Result<String, TargetError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(TargetError::Empty);
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        if let Some(name) = header_name(raw) {
            return Err(TargetError::LooksLikeHeader {
                name: name.to_owned(),
            });
        }
        return Err(TargetError::NoScheme {
            raw: raw.to_owned(),
        });
    };
    if !SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(TargetError::Scheme {
            raw: raw.to_owned(),
            scheme: scheme.to_owned(),
        });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let no_port = if host.starts_with('[') {
        host.split_once(']')
            .map_or("", |(h, _)| h.trim_start_matches('['))
    } else {
        host.split(':').next().unwrap_or("")
    };
    if no_port.is_empty() || raw.parse::<http::Uri>().is_err() {
        return Err(TargetError::NoHost {
            raw: raw.to_owned(),
        });
    }
    Ok(raw.to_owned())
}

/// The header name `raw` starts with, when it reads `Name: value` (a
/// token, a colon, then a space or the end).
fn header_name(raw: &str) -> Option<&str> {
    let (name, value) = raw.split_once(':')?;
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    (token && (value.is_empty() || value.starts_with(' '))).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_a_scheme_and_a_host_are_targets() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://trickle-abc-uc.a.run.app",
            "ws://localhost:8080/ws",
            "wss://[::1]:8443",
            " HTTP://h ",
            "http://user@h:1/path?q=1",
        ] {
            assert_eq!(parse(ok), Ok(ok.trim().to_owned()), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused_saying_what_was_meant() {
        let header = parse("Authorization: Bearer s3cret").unwrap_err();
        assert_eq!(
            header,
            TargetError::LooksLikeHeader {
                name: "Authorization".to_owned()
            }
        );
        let text = header.to_string();
        assert!(text.contains("did you mean --header?"), "{text}");
        assert!(
            !text.contains("s3cret"),
            "the value is never echoed: {text}"
        );
        assert!(matches!(
            parse("X-Empty:"),
            Err(TargetError::LooksLikeHeader { .. })
        ));
        assert_eq!(
            parse("localhost:28417").unwrap_err().to_string(),
            "--host \"localhost:28417\" has no scheme: did you mean --host http://localhost:28417?"
        );
        assert!(matches!(
            parse("127.0.0.1"),
            Err(TargetError::NoScheme { .. })
        ));
        assert!(matches!(parse("ftp://h"), Err(TargetError::Scheme { .. })));
        for no_host in ["http://", "http://:8080", "http:///path", "https://[]:1"] {
            assert!(
                matches!(parse(no_host), Err(TargetError::NoHost { .. })),
                "{no_host}"
            );
        }
        assert_eq!(parse("  "), Err(TargetError::Empty));
    }
}
