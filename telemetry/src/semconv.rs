//! Values of the HTTP semantic conventions (stable since v1.23) that take
//! a rule to compute: the method's known set, and the server's address and
//! port as the request's authority names them.

use actix_web::http::Method;

/// The methods the conventions know (RFC 9110 and PATCH, RFC 5789).
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// `http.request.method`, and `http.request.method_original` when the
/// method is outside the known set (then reported as `_OTHER`, which keeps
/// the attribute's cardinality bounded).
pub fn method(method: &Method) -> (&'static str, Option<String>) {
    match KNOWN_METHODS.iter().find(|m| **m == method.as_str()) {
        Some(known) => (known, None),
        None => ("_OTHER", Some(method.as_str().to_owned())),
    }
}

/// The span name's method part: the method, or `HTTP` for `_OTHER`.
pub fn span_method(method: &'static str) -> &'static str {
    if method == "_OTHER" {
        "HTTP"
    } else {
        method
    }
}

/// `server.address` and `server.port` from the authority the client used
/// (`Host`, or `:authority` in HTTP/2), with the scheme's default port when
/// it names none.
pub fn server(authority: &str, scheme: &str) -> (String, Option<u16>) {
    let default = match scheme {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    };
    // [v6]:port, [v6], host:port, host
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((address, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (address.to_owned(), port.or(default));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), Some(port)),
            Err(_) => (authority.to_owned(), default),
        },
        _ => (authority.to_owned(), default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_known_set_are_other() {
        assert_eq!(method(&Method::GET), ("GET", None));
        assert_eq!(method(&Method::PATCH), ("PATCH", None));
        let purge = Method::from_bytes(b"PURGE").unwrap_or(Method::GET);
        assert_eq!(method(&purge), ("_OTHER", Some("PURGE".to_owned())));
        // Methods are case-sensitive: "get" is not GET.
        let lower = Method::from_bytes(b"get").unwrap_or(Method::GET);
        assert_eq!(method(&lower).0, "_OTHER");
        assert_eq!(span_method("_OTHER"), "HTTP");
        assert_eq!(span_method("GET"), "GET");
    }

    #[test]
    fn server_address_and_port_from_the_authority() {
        let cases = [
            ("example.com:8080", "http", ("example.com", Some(8080))),
            ("example.com", "https", ("example.com", Some(443))),
            ("example.com", "http", ("example.com", Some(80))),
            ("127.0.0.1:9", "http", ("127.0.0.1", Some(9))),
            ("[::1]:8080", "http", ("::1", Some(8080))),
            ("[::1]", "https", ("::1", Some(443))),
            ("host:notaport", "http", ("host:notaport", Some(80))),
        ];
        for (authority, scheme, (address, port)) in cases {
            assert_eq!(
                server(authority, scheme),
                (address.to_owned(), port),
                "{authority} {scheme}"
            );
        }
    }
}
