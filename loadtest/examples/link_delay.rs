//! Delay, jitter and reordering on a link, on a kernel without `netem`:
//! the tests' NFQUEUE forwarder (`tests/api/netdelay.rs`) as a command, for
//! `scripts/faults` (longer runs by hand). Needs root.
//!
//!     link_delay DEVICE ONE_WAY_MS JITTER_MS SECONDS
//!
//! Every packet leaving or arriving through DEVICE waits ONE_WAY_MS +/-
//! JITTER_MS (uniform), for SECONDS; then it prints how many packets it
//! held and how many it let go before an earlier one of their flow.

use std::time::Duration;

#[path = "../../tests/api/netdelay.rs"]
mod netdelay;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, one_way, jitter, seconds] = args.as_slice() else {
        eprintln!("usage: link_delay DEVICE ONE_WAY_MS JITTER_MS SECONDS");
        std::process::exit(2);
    };
    let number = |what: &str, value: &str| {
        value.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("error: {what} must be a whole number, not {value:?}");
            std::process::exit(2)
        })
    };
    let (one_way, jitter, seconds) = (
        number("ONE_WAY_MS", one_way),
        number("JITTER_MS", jitter),
        number("SECONDS", seconds),
    );
    let delay = match netdelay::Delay::start(
        device,
        Duration::from_millis(one_way),
        Duration::from_millis(jitter),
    ) {
        Ok(delay) => delay,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("link_delay: {one_way} ms +/- {jitter} ms each way on {device} for {seconds} s");
    std::thread::sleep(Duration::from_secs(seconds));
    match delay.stop() {
        Ok(stats) => println!(
            "link_delay: {} packets held, {} let go before an earlier one of their flow",
            stats.packets, stats.reordered
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
