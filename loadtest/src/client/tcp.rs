//! TCP connections to a host name: every address it resolves to is tried,
//! in order, the next one started if the previous has not connected within
//! [`STAGGER`] (the "happy eyeballs" of RFC 8305, without its reordering),
//! so `localhost` that resolves to `::1` first reaches a server listening on
//! IPv4 only, and an address that never answers costs 250 ms, not the
//! system's connect timeout. Used by the WebSocket and raw HTTP connectors
//! (reqwest does the same for the others).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

/// How long an attempt has before the next address is tried beside it
/// (RFC 8305's recommended Connection Attempt Delay).
pub const STAGGER: Duration = Duration::from_millis(250);

/// The addresses of `host`, those of `source`'s family when a source
/// address is bound.
pub async fn resolve(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .filter(|a| source.is_none_or(|s| a.is_ipv4() == s.is_ipv4()))
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::other(format!("no address for {host}")));
    }
    Ok(addrs)
}

async fn attempt(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    if let Some(source) = source {
        socket.bind((source, 0).into())?;
    }
    socket.connect(addr).await
}

/// Connects to the first of `addrs` that answers: attempts start in
/// order, each as soon as the one before failed or after [`STAGGER`]; the
/// first connection wins (the others are dropped). All failing: the last
/// error, naming its address.
pub async fn connect(addrs: &[SocketAddr], source: Option<IpAddr>) -> io::Result<TcpStream> {
    let mut next = addrs.iter().copied();
    let mut attempts = FuturesUnordered::new();
    let mut last_error = None;
    // Each turn starts the next address: at first, then whenever an
    // attempt failed or the stagger passed.
    loop {
        if let Some(addr) = next.next() {
            attempts.push(async move {
                attempt(addr, source)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))
            });
        }
        if attempts.is_empty() {
            return Err(last_error.unwrap_or_else(|| io::Error::other("no address to connect to")));
        }
        let more = next.len() > 0;
        tokio::select! {
            Some(result) = attempts.next() => match result {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = Some(e),
            },
            () = tokio::time::sleep(STAGGER), if more => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address nothing listens on, then one something does: the second
    /// is reached. An address that never answers is passed over after the
    /// stagger.
    #[tokio::test]
    async fn every_address_is_tried_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let open = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            l.local_addr().unwrap_or_else(|e| panic!("{e}"))
        };
        let stream = connect(&[closed, open], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stream.peer_addr().ok(), Some(open));
        // Every one refused: the last error, naming its address.
        let err = connect(&[closed], None)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&closed.to_string()), "{err}");
        // A listener whose backlog is full drops new SYNs: a connect to it
        // hangs. The next address starts after the stagger.
        let full = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        full.bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let full = full.listen(0).unwrap_or_else(|e| panic!("{e}"));
        let hanging = full.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut held = Vec::new();
        let mut filled = false;
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(hanging))
                .await
            {
                Ok(Ok(s)) => held.push(s),
                _ => {
                    filled = true;
                    break;
                }
            }
        }
        assert!(
            filled,
            "the backlog never filled: {} connections",
            held.len()
        );
        let t0 = std::time::Instant::now();
        let stream = connect(&[hanging, open], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stream.peer_addr().ok(), Some(open));
        let took = t0.elapsed();
        assert!(took >= STAGGER && took < Duration::from_secs(2), "{took:?}");
    }
}
