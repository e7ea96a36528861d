//! The client machine's ephemeral ports. Linux picks a connecting socket's
//! port by scanning `net.ipv4.ip_local_port_range` from a random offset,
//! trying even ports first; once about half the range is taken towards one
//! destination, every connect() scans thousands of ports inside the kernel
//! (`__inet_hash_connect`), blocking the runtime thread that called it, and
//! the events of streams already open on that thread arrive late. Measured
//! here: 19,000 SSE streams from two processes with the default range
//! (32768-60999) saw client-side gap p99 1.47 s on 1 s events while an
//! independent probe saw the server keep 1.001 s; with 1024-65535, 1.0015 s.

use std::path::Path;

const RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The range from `/proc`, if this is Linux and it reads.
pub fn local_port_range() -> Option<(u32, u32)> {
    parse(&std::fs::read_to_string(Path::new(RANGE)).ok()?)
}

fn parse(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split_whitespace().map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high))) if high >= low => Some((low, high)),
        _ => None,
    }
}

/// A warning when `connections` towards one server address, from one
/// source address, would take more than the even half of `range`.
pub fn advice(range: (u32, u32), connections: u64) -> Option<String> {
    let ports = u64::from(range.1 - range.0 + 1);
    (connections > ports / 2).then(|| {
        format!(
            "warning: {connections} connections from one address exceed half of this machine's \
             {ports} ephemeral ports ({RANGE}: {} {}); the kernel's port search will stall \
             connects and delay events on open streams. Widen it: \
             sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"",
            range.0, range.1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_past_half_the_range_only() {
        let default = parse("32768\t60999\n").unwrap();
        assert_eq!(default, (32768, 60999));
        assert!(advice(default, 14_000).is_none());
        let warning = advice(default, 19_000).unwrap();
        assert!(warning.contains("28232 ephemeral ports"), "{warning}");
        assert!(advice(parse("1024 65535").unwrap(), 19_000).is_none());
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("5 1"), None);
    }
}
