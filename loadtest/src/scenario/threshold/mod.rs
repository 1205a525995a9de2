//! Threshold expressions: `METRIC OP VALUE`, e.g. `p99 < 50ms`, `errors < 0.1%`, `rps > 900`.
//!
//! Values are normalised when parsed (latencies to microseconds, shares and error rates to
//! fractions) so evaluation is a plain comparison; `metric` names what can be measured.

mod metric;

use std::fmt;

use serde::Serialize;

use metric::{metric_by_name, normalise, state_by_name, METRICS};
pub use metric::{state_code, state_of_code, AbuseCount, LatencyStat, Metric, Phase, PhaseStat, UserMove};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

impl Op {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// As written in the scenario.
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    /// Normalised: µs for latencies, a fraction for errors and shares, requests/s for rps, a
    /// plain number for the p99 ratio and counts, a [`state_code`] for `final_state`.
    pub value: f64,
}

/// A parse failure: byte offset into the expression, message, hint.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

fn err(offset: usize, message: impl Into<String>, hint: impl Into<Option<String>>) -> ThresholdError {
    ThresholdError {
        offset,
        message: message.into(),
        hint: hint.into(),
    }
}

/// Parses one threshold expression.
pub fn parse(text: &str) -> Result<Threshold, ThresholdError> {
    // Capped by the trimmed length: an all-blank expression starts (and ends) at 0.
    let lead = (text.len() - text.trim_start().len()).min(text.trim_end().len());
    let mut c = Cursor {
        s: text.trim_end(),
        i: lead,
    };
    let metric = metric(&mut c, text)?;
    c.skip_spaces();
    let op_at = c.i;
    let op = op(&mut c, lead)?;
    c.skip_spaces();
    let value = match metric {
        Metric::FinalState => state(&mut c, op, op_at)?,
        _ => value(&mut c, &metric)?,
    };
    Ok(Threshold {
        text: text.trim().to_string(),
        metric,
        op,
        value,
    })
}

/// A reading position in the expression; offsets in errors are byte offsets into it.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Moves past the bytes matching `pred`; returns them.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        let bytes = self.s.as_bytes();
        while self.i < bytes.len() && pred(bytes[self.i]) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn skip_spaces(&mut self) {
        self.take_while(|b| b == b' ');
    }

    /// The byte `ahead` of the position, if any.
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + ahead).copied()
    }
}

/// The metric name, optionally with a parenthesised argument.
fn metric(c: &mut Cursor<'_>, text: &str) -> Result<Metric, ThresholdError> {
    let name_start = c.i;
    let name = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if name.is_empty() {
        return Err(err(
            name_start,
            format!("threshold `{text}` has no metric"),
            Some(format!(
                "write `METRIC OP VALUE`, metric one of: {}",
                METRICS.join(", ")
            )),
        ));
    }
    if c.peek(0) == Some(b'(') {
        return share(c, name, name_start);
    }
    metric_by_name(name).ok_or_else(|| {
        let hint = match arena_core::diag::yaml::closest(name, METRICS) {
            Some(best) => format!("did you mean `{best}`? metrics: {}", METRICS.join(", ")),
            None => format!("metrics: {}", METRICS.join(", ")),
        };
        err(name_start, format!("unknown metric `{name}`"), Some(hint))
    })
}

/// `share(BACKEND_PREFIX)` and `share_version(VERSION)`, the metrics with an argument; the
/// cursor is on the `(`.
fn share(c: &mut Cursor<'_>, name: &str, name_start: usize) -> Result<Metric, ThresholdError> {
    let (s, i) = (c.s, c.i);
    let close = s[i..].find(')').map(|p| p + i).ok_or_else(|| {
        err(
            i,
            "unclosed `(` in threshold",
            Some("write e.g. `share(faas=) < 5%`".into()),
        )
    })?;
    let arg = s[i + 1..close].trim().trim_matches('"');
    let (metric, example): (fn(String) -> Metric, &str) = match name {
        "share" => (Metric::Share, "`share(127.0.0.11) > 20%`"),
        "share_version" => (Metric::ShareVersion, "`share_version(canary) > 20%`"),
        _ => {
            return Err(err(
                name_start,
                format!("metric `{name}` takes no argument"),
                Some("only `share(BACKEND_PREFIX)` and `share_version(VERSION)` take one".into()),
            ))
        }
    };
    if arg.is_empty() {
        return Err(err(
            i,
            format!("`{name}()` needs an argument"),
            Some(format!("e.g. {example}")),
        ));
    }
    c.i = close + 1;
    Ok(metric(arg.to_string()))
}

/// The comparison; the error quotes what came before it, from `metric_start`.
fn op(c: &mut Cursor<'_>, metric_start: usize) -> Result<Op, ThresholdError> {
    let op = match (c.peek(0), c.peek(1)) {
        (Some(b'='), Some(b'=')) => Op::Eq,
        (Some(b'<'), Some(b'=')) => Op::Le,
        (Some(b'>'), Some(b'=')) => Op::Ge,
        (Some(b'<'), _) => Op::Lt,
        (Some(b'>'), _) => Op::Gt,
        _ => {
            return Err(err(
                c.i,
                format!("expected a comparison after `{}`", &c.s[metric_start..c.i].trim_end()),
                Some("one of: <, <=, >, >=, ==".into()),
            ))
        }
    };
    c.i += op.as_str().len();
    Ok(op)
}

/// `final_state`'s value: a state name, compared with `==` only (states have no order).
fn state(c: &mut Cursor<'_>, op: Op, op_at: usize) -> Result<f64, ThresholdError> {
    if op != Op::Eq {
        return Err(err(
            op_at,
            "`final_state` compares with `==`",
            Some("e.g. `final_state == promoted`".into()),
        ));
    }
    let at = c.i;
    let word = c.s[at..].trim();
    state_by_name(word).map(state_code).ok_or_else(|| {
        err(
            at,
            format!("unknown release state `{word}`"),
            Some("one of: progressing, paused, promoted, rolled_back".into()),
        )
    })
}

/// The number and its unit, normalised for `metric`.
fn value(c: &mut Cursor<'_>, metric: &Metric) -> Result<f64, ThresholdError> {
    let num_start = c.i;
    let digits = c.take_while(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let number: f64 = digits.parse().map_err(|_| {
        err(
            num_start,
            format!("expected a number, found `{}`", &c.s[num_start..]),
            Some("e.g. `50ms`, `0.1%`, `900`".into()),
        )
    })?;
    if !number.is_finite() || number < 0.0 {
        return Err(err(num_start, "threshold values must be finite and not negative", None));
    }
    let unit = c.s[c.i..].trim();
    normalise(metric, number, unit).map_err(|(m, h)| err(c.i, m, Some(h)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_all_forms() {
        let t = parse("p99 < 50ms").unwrap();
        assert_eq!(t.metric, Metric::Latency(LatencyStat::Quantile(0.99)));
        assert_eq!((t.op, t.value), (Op::Lt, 50_000.0));
        assert_eq!(parse("errors < 0.1%").unwrap().value, 0.001);
        assert_eq!(parse("faas_share > 0").unwrap().value, 0.0);
        assert_eq!(parse("rps >= 900").unwrap().op, Op::Ge);
        assert_eq!(parse("p99.9<=1s").unwrap().value, 1e6);
        let s = parse("share(faas=) <= 5%").unwrap();
        assert_eq!(s.metric, Metric::Share("faas=".into()));
    }

    #[test]
    fn phase_ratio_and_abuse_metrics() {
        let t = parse("attack_p99 < 20ms").unwrap();
        let p99 = PhaseStat::Latency(LatencyStat::Quantile(0.99));
        assert_eq!((t.metric, t.value), (Metric::Phase(Phase::Attack, p99), 20_000.0));
        let t = parse("baseline_errors <= 0%").unwrap();
        assert_eq!(t.metric, Metric::Phase(Phase::Baseline, PhaseStat::Errors));
        assert_eq!(parse("p99_ratio < 2.5x").unwrap().value, 2.5);
        assert_eq!(
            parse("abuse_408 > 0").unwrap().metric,
            Metric::Abuse(AbuseCount::Answered(408))
        );
        assert_eq!(
            parse("abuse_held >= 10").unwrap().metric,
            Metric::Abuse(AbuseCount::Held)
        );
        assert!(parse("abuse_999 > 0").is_err());
        assert!(parse("attack_rps > 0").is_err());
        assert!(parse("abuse_opened > 5ms").unwrap_err().message.contains("count"));
        let e = parse("atack_p99 < 1s").unwrap_err();
        assert!(e.hint.unwrap().contains("did you mean `attack_p99`"));
    }

    #[test]
    fn release_metrics() {
        let t = parse("rollback_after < 2s").unwrap();
        assert_eq!((t.metric, t.value), (Metric::RollbackAfter, 2e6));
        let t = parse("users_moved_back == 0").unwrap();
        assert_eq!(
            (t.metric, t.op, t.value),
            (Metric::UsersMoved(UserMove::ToStable), Op::Eq, 0.0)
        );
        assert_eq!(
            parse("users_moved_forward > 10").unwrap().metric,
            Metric::UsersMoved(UserMove::ToCanary)
        );
        let t = parse("share_version(canary) >= 99%").unwrap();
        assert_eq!((t.metric, t.value), (Metric::ShareVersion("canary".into()), 0.99));
        assert_eq!(parse("final_weight >= 100%").unwrap().value, 1.0);
        let t = parse("final_state == rolled_back").unwrap();
        assert_eq!((t.metric, t.value), (Metric::FinalState, 3.0));
        assert_eq!(state_of_code(t.value), Some(arena_core::release::Phase::RolledBack));
        assert_eq!(parse("final_state == promoted").unwrap().value, 2.0);

        let e = parse("final_state < promoted").unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (12, "`final_state` compares with `==`"));
        let e = parse("final_state == done").unwrap_err();
        assert!(e.message.contains("unknown release state `done`"), "{e:?}");
        assert_eq!(e.offset, 15);
        assert!(parse("rollback_after < 2").unwrap_err().message.contains("unit"));
        assert!(parse("users_moved_back <= 5%")
            .unwrap_err()
            .message
            .contains("count of users"));
        assert!(parse("final_weight > 100").is_err(), "a bare 100 is not 100%");
        assert!(parse("share_version() > 1%")
            .unwrap_err()
            .message
            .contains("needs an argument"));
        let e = parse("rollback_afterr < 1s").unwrap_err();
        assert!(e.hint.unwrap().contains("did you mean `rollback_after`"));
    }

    #[test]
    fn blank_and_odd_expressions_are_errors_not_panics() {
        for text in [
            "",
            "   ",
            "\t\n",
            " p99",
            "p99 <",
            "<",
            "share(",
            "share(x",
            "p99 < 5ms extra",
            "é < 1",
            "p99 < 1ms\u{2028}",
        ] {
            let _ = parse(text);
        }
        assert!(parse("   ").unwrap_err().message.contains("no metric"));
    }

    proptest::proptest! {
        #[test]
        fn no_expression_panics(text in ".{0,40}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn reports_offsets_and_hints() {
        let e = parse("p98 < 5ms").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.hint.unwrap().contains("p99"));
        let e = parse("p99 = 5ms").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = parse("p99 < 5").unwrap_err();
        assert!(e.message.contains("unit"));
        assert!(parse("errors < 5").is_err());
        assert!(parse("rps > fast").is_err());
    }
}
