//! RTP timestamp unwrapping (32-bit wrap → 64-bit).

/// The 64-bit value with the low 32 bits `ts` that is closest to `reference` (an
/// earlier unwrapped timestamp): steps of less than 2^31 either way are taken as the true
/// distance, so both wraps and reordering across a wrap come out right.
pub fn extend_timestamp(reference: u64, ts: u32) -> u64 {
    let delta = i64::from(ts.wrapping_sub(reference as u32) as i32);
    reference.saturating_add_signed(delta)
}

/// Unwraps the 32-bit RTP timestamps of one stream into a monotonic-where-the-sender-is
/// 64-bit timeline.
///
/// Values are offset by 2^32: the first timestamp `t` maps to `2^32 + t`, so a packet
/// reordered to just before the first one (even across a wrap) still gets a smaller value
/// without underflow. Only differences between unwrapped values are meaningful. Reset it
/// when the source changes ([`crate::Verdict::NewSource`]).
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    /// Highest unwrapped value so far.
    highest: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing.
    pub const fn new() -> TimestampUnwrapper {
        TimestampUnwrapper { highest: None }
    }

    /// Unwraps `ts` relative to the highest timestamp seen so far.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = match self.highest {
            None => (1u64 << 32) + u64::from(ts),
            Some(highest) => extend_timestamp(highest, ts),
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Forgets the history (next timestamp starts a new timeline).
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSET: u64 = 1 << 32;

    #[test]
    fn wraps_forward() {
        let mut u = TimestampUnwrapper::new();
        let start = u32::MAX - 319;
        let a = u.unwrap(start);
        assert_eq!(a, OFFSET + u64::from(start));
        assert_eq!(u.unwrap(start.wrapping_add(160)) - a, 160);
        assert_eq!(u.unwrap(start.wrapping_add(320)) - a, 320); // 0
        assert_eq!(u.unwrap(start.wrapping_add(480)) - a, 480); // 160 after the wrap
                                                                // Three full wraps in big steps (anything below 2^31 is a forward step).
        let step = 1u32 << 20;
        let mut ts = start;
        let mut last = u.unwrap(ts);
        for _ in 0..(3 * (1u64 << 32) / u64::from(step)) {
            ts = ts.wrapping_add(step);
            let v = u.unwrap(ts);
            assert_eq!(v - last, u64::from(step));
            last = v;
        }
        assert!(last > 4 * OFFSET);
    }

    #[test]
    fn reordered_near_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        let a = u.unwrap(u32::MAX - 100);
        let b = u.unwrap(60); // wrapped: 161 later
        assert_eq!(b - a, 161);
        let late = u.unwrap(u32::MAX - 20); // arrives after the wrapped one
        assert_eq!(late - a, 80);
        assert!(late < b);
        assert_eq!(u.unwrap(220) - b, 160, "highest is still b");
    }

    #[test]
    fn reordered_before_the_first_across_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        let a = u.unwrap(100);
        let before = u.unwrap(u32::MAX - 59); // 160 before, across the wrap
        assert_eq!(a - before, 160);
        u.reset();
        assert_eq!(u.unwrap(5), OFFSET + 5);
    }

    #[test]
    fn extend_is_closest() {
        assert_eq!(extend_timestamp(OFFSET + 10, 5), OFFSET + 5);
        assert_eq!(extend_timestamp(2 * OFFSET - 5, 5), 2 * OFFSET + 5);
        assert_eq!(extend_timestamp(2 * OFFSET + 5, u32::MAX), 2 * OFFSET - 1);
        // No underflow / overflow at the ends.
        assert_eq!(extend_timestamp(3, u32::MAX), 0);
        assert_eq!(extend_timestamp(u64::MAX - 1, 10), u64::MAX);
    }
}
