//! A small parser for the Prometheus text exposition, for assertions on
//! metric values (never grep a scrape).

use std::collections::BTreeMap;

/// Sample values by name and sorted label pairs.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
                None => (series, Vec::new()),
            };
            samples.insert((name.to_owned(), labels), value);
        }
        Self { samples }
    }

    /// The value of one series; 0 when absent (a counter never touched).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        self.samples
            .get(&(name.to_owned(), key))
            .copied()
            .unwrap_or(0.0)
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.keys().any(|(n, _)| n == name)
    }

    /// Every series of a metric family, with its labels.
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, labels), v)| (labels.clone(), *v))
            .collect()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels.sort();
    labels
}
