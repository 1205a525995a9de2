//! Live progress line (indicatif): elapsed, current rate, p99 of the last window, errors.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{fmt_us, Observer, RunContext, Window};

/// An [`Observer`] drawing one status line on stderr; silent when stderr is not a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    errors: u64,
    requests: u64,
    last: String,
}

impl Progress {
    /// `enabled = false` (e.g. `--quiet`) draws nothing.
    pub fn new(enabled: bool) -> Self {
        Progress {
            bar: None,
            errors: 0,
            requests: 0,
            last: String::new(),
        }
        .enabled(enabled && std::io::stderr().is_terminal())
    }

    fn enabled(mut self, on: bool) -> Self {
        if on {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{bar:24.cyan/blue} {pos:>3}s/{len}s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            self.bar = Some(bar);
        }
        self
    }
}

impl Observer for Progress {
    fn on_start(&mut self, ctx: &RunContext) {
        if let Some(bar) = &self.bar {
            bar.set_length(ctx.duration.as_secs().max(1));
            bar.set_message("starting");
        }
    }

    fn on_tick(&mut self, elapsed: Duration, _ctx: &RunContext) {
        if let Some(bar) = &self.bar {
            bar.set_position(elapsed.as_secs());
        }
    }

    fn on_window(&mut self, w: &Window, _ctx: &RunContext) {
        self.errors += w.errors;
        self.requests += w.requests;
        let intended = if w.intended > 0.0 {
            format!(" (intended {:.0})", w.intended)
        } else {
            String::new()
        };
        let pct = if self.requests > 0 {
            100.0 * self.errors as f64 / self.requests as f64
        } else {
            0.0
        };
        self.last = format!(
            "{} req/s{intended}  p99 {}  errors {} ({pct:.2}%)",
            w.requests,
            fmt_us(w.latency.p99),
            self.errors
        );
        if let Some(bar) = &self.bar {
            bar.set_message(self.last.clone());
        }
    }

    fn on_finish(&mut self, _ctx: &RunContext) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
