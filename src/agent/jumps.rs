//! Clock steps and loop stalls between two iterations of the collection loop, each logged once
//! with its size: a wall clock that moved more or less than the monotonic clock (NTP stepping an
//! RTC-less board's clock, someone running `date -s`), and an iteration that came much later
//! than the loop planned (the process stopped, starved of CPU, or blocked in a store call).
//!
//! The rule is pure ([`judge`]); [`Jumps`] carries the previous iteration's clocks.

use std::time::{Duration, Instant};

/// A wall clock that moved this much more (or less) than the monotonic clock between two
/// iterations (ms) stepped. NTP slews differences below 128 ms, so a few seconds is a step,
/// never a slew or the jitter of reading two clocks.
pub(super) const CLOCK_STEP_MS: i64 = 5_000;
/// An iteration that came this much later than its planned sleep (ms) is a stall: far beyond a
/// tick's and a flush's usual milliseconds.
pub(super) const STALL_MS: i64 = 5_000;

/// What happened between two iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Jump {
    /// The wall clock moved this much beyond the monotonic clock (ms; negative: back).
    pub step_ms: Option<i64>,
    /// The iteration came this much later than planned (ms).
    pub stall_ms: Option<i64>,
}

/// Pure: the wall clock moved `wall_ms` and the monotonic clock `mono_ms` since the previous
/// iteration, which planned to sleep `planned_ms`.
pub(super) fn judge(wall_ms: i64, mono_ms: i64, planned_ms: i64) -> Jump {
    let step = wall_ms.saturating_sub(mono_ms);
    let late = mono_ms.saturating_sub(planned_ms);
    Jump {
        step_ms: (step.saturating_abs() > CLOCK_STEP_MS).then_some(step),
        stall_ms: (late > STALL_MS).then_some(late),
    }
}

/// The previous iteration's clocks and planned sleep.
#[derive(Debug, Default)]
pub(super) struct Jumps {
    last: Option<(i64, Instant, Duration)>,
}

impl Jumps {
    /// Call at the start of each iteration with the wall clock (ms); logs a step or a stall
    /// since the previous one. `planned`: the sleep this iteration is about to take is noted
    /// with [`Jumps::planned`].
    pub(super) fn iteration(&mut self, wall_ms: i64, now: Instant) {
        if let Some((wall0, mono0, planned)) = self.last {
            let mono = i64::try_from(now.duration_since(mono0).as_millis()).unwrap_or(i64::MAX);
            let planned = i64::try_from(planned.as_millis()).unwrap_or(i64::MAX);
            let j = judge(wall_ms.saturating_sub(wall0), mono, planned);
            if let Some(step_ms) = j.step_ms {
                log::warn!(
                    step_ms = step_ms,
                    error_type = "clock_step";
                    "the wall clock stepped by {step_ms} ms between two iterations"
                );
            }
            if let Some(stall_ms) = j.stall_ms {
                log::warn!(
                    stall_ms = stall_ms,
                    error_type = "loop_stall";
                    "the collection loop stalled: an iteration came {stall_ms} ms later than planned"
                );
            }
        }
        self.last = Some((wall_ms, now, Duration::ZERO));
    }

    /// The sleep the loop plans after this iteration's work.
    pub(super) fn planned(&mut self, wait: Duration) {
        if let Some(last) = &mut self.last {
            last.2 = wait;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_stalls_beyond_five_seconds() {
        let none = Jump::default();
        let table = [
            // (wall moved, mono moved, planned sleep) → jump
            ((200, 200, 200), none),
            ((1_000, 200, 200), none),
            ((5_200, 200, 200), none),
            (
                (5_201, 200, 200),
                Jump {
                    step_ms: Some(5_001),
                    ..none
                },
            ),
            (
                (-86_400_000, 200, 200),
                Jump {
                    step_ms: Some(-86_400_200),
                    ..none
                },
            ),
            ((5_200, 5_200, 200), none),
            (
                (7_201, 7_201, 200),
                Jump {
                    stall_ms: Some(7_001),
                    ..none
                },
            ),
            (
                (60_000, 7_201, 200),
                Jump {
                    step_ms: Some(52_799),
                    stall_ms: Some(7_001),
                },
            ),
        ];
        for ((wall, mono, planned), want) in table {
            assert_eq!(judge(wall, mono, planned), want, "{wall} {mono} {planned}");
        }
    }
}
