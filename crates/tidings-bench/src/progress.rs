//! Progress bars on stderr (hidden when stderr is not a terminal, so logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar counting up to `total` (connections ramping).
pub(crate) fn count_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {per_sec} {elapsed}")
            .expect("constant template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A bar over `secs` seconds of a running phase, with a message updated by the caller.
pub(crate) fn phase_bar(label: &str, duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {msg}")
            .expect("constant template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}
