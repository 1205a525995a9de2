//! AIMD (Netflix concurrency-limits' `AIMDLimit`): +1 per good answer while at least half the
//! limit is in use; a timeout or an answer slower than `latency_threshold` multiplies it by
//! `backoff` (at least −1).

use crate::config::AimdSpec;

use super::Sample;

pub struct Aimd {
    spec: AimdSpec,
    limit: usize,
}

impl Aimd {
    pub fn new(spec: AimdSpec) -> Self {
        Aimd {
            limit: spec.initial as usize,
            spec,
        }
    }

    /// The new limit after one finished request, if it moved.
    pub fn on_sample(&mut self, sample: Sample, in_flight: usize) -> Option<usize> {
        let (min, max) = (self.spec.min as usize, self.spec.max as usize);
        let old = self.limit;
        match sample {
            Sample::Ignore => return None,
            Sample::TimedOut => self.limit = self.decreased(),
            Sample::Answered(rtt) if rtt > self.spec.latency_threshold => self.limit = self.decreased(),
            Sample::Answered(_) => {
                if in_flight * 2 >= self.limit {
                    self.limit = (self.limit + 1).min(max);
                }
            }
        }
        self.limit = self.limit.clamp(min, max);
        (self.limit != old).then_some(self.limit)
    }

    fn decreased(&self) -> usize {
        let scaled = (self.limit as f64 * self.spec.backoff).floor() as usize;
        scaled.min(self.limit.saturating_sub(1)).max(self.spec.min as usize)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn aimd() -> Aimd {
        Aimd::new(AimdSpec {
            initial: 10,
            min: 2,
            max: 20,
            latency_threshold: Duration::from_millis(100),
            backoff: 0.9,
        })
    }

    #[test]
    fn grows_by_one_when_used_and_backs_off_on_slow_answers() {
        let mut a = aimd();
        let ok = Sample::Answered(Duration::from_millis(5));
        assert_eq!(a.on_sample(ok, 2), None, "not using half: no growth");
        assert_eq!(a.on_sample(ok, 5), Some(11));
        for _ in 0..30 {
            a.on_sample(ok, 20);
        }
        assert_eq!(a.limit, 20, "capped at max");
        assert_eq!(a.on_sample(Sample::Answered(Duration::from_millis(500)), 20), Some(18));
        assert_eq!(a.on_sample(Sample::TimedOut, 20), Some(16));
        assert_eq!(a.on_sample(Sample::Ignore, 20), None);
        for _ in 0..50 {
            a.on_sample(Sample::TimedOut, 1);
        }
        assert_eq!(a.limit, 2, "floored at min");
    }
}
