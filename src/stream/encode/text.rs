//! The classic Flask example's format: `Data chunk {i} at {unix_seconds}`.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::stream::event::{write_payload, Step};

/// One line per event, with the payload after a space when `size > 0`; an
/// empty line as heartbeat; nothing at the end (the chunked body just ends).
pub fn encode(step: &Step) -> Option<Bytes> {
    match step {
        Step::Event(event) => {
            let mut line = String::with_capacity(48 + event.size);
            let _ = write!(line, "Data chunk {} at {:.6}", event.id, event.unix_time);
            let mut bytes = line.into_bytes();
            if event.size > 0 {
                bytes.push(b' ');
                write_payload(&mut bytes, event.id, event.size);
            }
            bytes.push(b'\n');
            Some(Bytes::from(bytes))
        }
        Step::Heartbeat => Some(Bytes::from_static(b"\n")),
        Step::End { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::event::Event;

    #[test]
    fn lines_look_like_the_flask_example() {
        let step = Step::Event(Event {
            id: 3,
            unix_time: 1_764_297_600.5,
            size: 0,
        });
        assert_eq!(
            encode(&step).unwrap(),
            "Data chunk 3 at 1764297600.500000\n"
        );
        let step = Step::Event(Event {
            id: 1,
            unix_time: 1.0,
            size: 4,
        });
        assert_eq!(encode(&step).unwrap(), "Data chunk 1 at 1.000000 BCDE\n");
    }
}
