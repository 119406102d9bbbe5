//! One deadline for the whole hook (issue 13): every registration this
//! project writes gives the hook [`REGISTERED_TIMEOUT`] (`nvidia-docker
//! setup hooks`, the CDI spec), after which the runtime kills it. Each step
//! with its own limit (NVML discovery, the apply child, the sealed
//! `ldconfig`) takes at most what is left of [`Deadline`], so that the hook
//! reports which step ran out instead of being killed mid-way.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// The `timeout` written into every registration of the hook.
pub const REGISTERED_TIMEOUT: Duration = Duration::from_secs(30);
/// Kept back for reporting and exiting before the runtime's kill.
pub const MARGIN: Duration = Duration::from_secs(2);

/// The hook ran out of time before a step.
#[derive(Debug, thiserror::Error)]
#[error("the hook used its {}-second budget (the registered timeout less {} s) before {step}", budget.as_secs(), MARGIN.as_secs())]
pub struct DeadlineError {
    /// The step that could not start.
    pub step: &'static str,
    /// The whole budget.
    pub budget: Duration,
}

/// When the hook must be done.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// [`REGISTERED_TIMEOUT`] less [`MARGIN`] from `start`.
    pub fn from(start: Instant) -> Deadline {
        let budget = REGISTERED_TIMEOUT.saturating_sub(MARGIN);
        Deadline {
            at: start + budget,
            budget,
        }
    }

    /// What is left.
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The limit for `step`, whose own limit is `own`: the smaller of the
    /// two; an error when nothing is left.
    pub fn limit(&self, step: &'static str, own: Duration) -> Result<Duration, DeadlineError> {
        let left = self.left();
        if left.is_zero() {
            return Err(DeadlineError {
                step,
                budget: self.budget,
            });
        }
        Ok(own.min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_take_what_is_left() {
        let d = Deadline::from(Instant::now());
        let l = d.limit("apply", Duration::from_secs(30)).unwrap();
        assert!(
            l <= Duration::from_secs(28) && l > Duration::from_secs(27),
            "{l:?}"
        );
        assert_eq!(
            d.limit("nvml", Duration::from_secs(10)).unwrap(),
            Duration::from_secs(10)
        );
        let late = Deadline::from(Instant::now() - Duration::from_secs(29));
        assert_eq!(
            late.limit("the linker cache", Duration::from_secs(30))
                .unwrap_err()
                .to_string(),
            "the hook used its 28-second budget (the registered timeout less 2 s) before the linker cache"
        );
        let mid = Deadline::from(Instant::now() - Duration::from_secs(20));
        let l = mid.limit("ldconfig", Duration::from_secs(30)).unwrap();
        assert!(l <= Duration::from_secs(8), "{l:?}");
    }
}
