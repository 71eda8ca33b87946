//! The host's `/metrics` text read with a real Prometheus text parser
//! (`prometheus-parse`), checked strictly: every sample line must be one
//! the parser understood (it skips what it cannot read), and every family
//! must be typed and named `dualwrite_…`. Shared with the CLI's process
//! tests.

use prometheus_parse::{Sample, Value};

/// One parsed scrape.
#[derive(Debug)]
pub struct Scrape {
    samples: Vec<Sample>,
    text: String,
}

/// Parses `text`, panicking (with the text) when a line is not
/// Prometheus text the parser reads.
pub fn parse(text: &str) -> Scrape {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|error| panic!("not Prometheus text ({error}):\n{text}"));
    let sample_lines = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .count();
    let parsed: usize = scrape
        .samples
        .iter()
        .map(|sample| match &sample.value {
            Value::Histogram(buckets) => buckets.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(
        parsed, sample_lines,
        "every sample line parses as Prometheus text:\n{text}"
    );
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(name.starts_with("dualwrite_"), "{line}");
    }
    for sample in &scrape.samples {
        let family = sample
            .metric
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "sample {} has a TYPE line:\n{text}",
            sample.metric
        );
    }
    Scrape {
        samples: scrape.samples,
        text: text.to_owned(),
    }
}

impl Scrape {
    fn find(&self, metric: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples.iter().find(|sample| {
            sample.metric == metric
                && labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
    }

    /// The value of the counter or gauge `metric` with `labels` (others
    /// may be there too), `None` when there is no such sample.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(metric, labels)?.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        }
    }

    /// The value of `metric` with `labels`; panics with the scrape when
    /// there is none.
    pub fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(metric, labels)
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in:\n{}", self.text))
    }

    /// The number of observations of the histogram `metric` with
    /// `labels`: its `+Inf` bucket, checked against its `_count`.
    pub fn count(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(Value::Histogram(buckets)) = self.find(metric, labels).map(|s| &s.value) else {
            panic!("no histogram {metric} {labels:?} in:\n{}", self.text);
        };
        let infinite = buckets
            .iter()
            .find(|bucket| bucket.less_than.is_infinite())
            .map(|bucket| bucket.count)
            .unwrap_or_else(|| panic!("{metric} has a +Inf bucket:\n{}", self.text));
        assert_eq!(
            Some(infinite),
            self.value(&format!("{metric}_count"), labels),
            "{metric}'s +Inf bucket is its count"
        );
        infinite
    }
}
