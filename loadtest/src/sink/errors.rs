//! Why connections failed: each distinct reason with its count, and each
//! said on stderr once, as it first happens (a refused certificate should
//! not wait for the end of the run to show).

use std::sync::Mutex;

use super::Sink;
use crate::record::Connection;
use crate::report::ErrorSample;

#[derive(Debug, Default)]
pub struct ErrorLog {
    samples: Mutex<Vec<ErrorSample>>,
}

impl ErrorLog {
    pub fn samples(&self) -> Vec<ErrorSample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sink for ErrorLog {
    fn connection(&self, _lane: usize, c: &Connection) {
        let (Some(end), Some(message)) = (c.end, &c.error) else {
            return;
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if ErrorSample::add_to(&mut samples, end, message, 1) {
            eprintln!("trickle-load: {}: {message}", end.as_str());
        }
    }
}
