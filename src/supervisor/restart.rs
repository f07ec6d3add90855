//! Restart decisions: whether a container that exited is started again under its restart
//! policy, and after how long. The delay doubles from 100 ms up to a one-minute cap, and
//! starts over once a container has run for ten seconds, as Docker's does.

use std::time::Duration;

use crate::plan::spec::RestartPolicy;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(10);

/// Whether to restart, given the policy, the exit status, whether a command stopped it and
/// how many restarts the policy already made.
pub fn should_restart(policy: RestartPolicy, exit_code: i32, stopped_by_user: bool, restarts: u32) -> bool {
    if stopped_by_user {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => exit_code != 0 && max_retries.is_none_or(|max| restarts < max),
    }
}

/// The delay before restart number `consecutive` (0-based) of a quickly failing container.
pub fn backoff(consecutive: u32) -> Duration {
    FIRST_DELAY.saturating_mul(1u32 << consecutive.min(16)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let on_failure = RestartPolicy::OnFailure { max_retries: Some(3) };
        assert!(should_restart(on_failure, 1, false, 2));
        assert!(!should_restart(on_failure, 1, false, 3));
        assert!(!should_restart(on_failure, 0, false, 0));
        assert!(should_restart(RestartPolicy::Always, 0, false, 100));
        assert!(!should_restart(RestartPolicy::Always, 137, true, 0));
        assert!(!should_restart(RestartPolicy::No, 1, false, 0));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), MAX_DELAY);
    }
}
