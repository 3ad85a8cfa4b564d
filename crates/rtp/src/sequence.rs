//! Per-stream sequence number tracking: duplicates, reordering, loss, SSRC changes.

/// How far back (in packets) duplicates are detected; older packets are [`Verdict::TooOld`].
pub const DEDUPE_WINDOW: u16 = 512;

/// RFC 3550 Appendix A.1 `MAX_DROPOUT`: a forward step of more than this many sequence
/// numbers is a jump, accepted only once the next packet confirms it.
pub const MAX_DROPOUT: u16 = 3000;

const WINDOW: u64 = DEDUPE_WINDOW as u64;
const WORDS: usize = DEDUPE_WINDOW as usize / 64;
/// Extended sequence numbers start this high so that packets reordered before the first
/// one never go below zero.
const EXT_BASE: u64 = 1 << 16;

/// What to do with a packet, from [`SequenceTracker::on_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Next in order (possibly after a gap: the missing ones count as lost until they
    /// arrive). Accept.
    InOrder,
    /// Earlier than the highest sequence number seen, not seen before. Accept.
    Reordered,
    /// Seen before (within the last [`DEDUPE_WINDOW`] packets). Drop.
    Duplicate,
    /// The SSRC changed, or the sequence numbers restarted (a jump confirmed by a second
    /// packet, RFC 3550 A.1): the tracker was reset. Accept.
    NewSource,
    /// Outside the window: older than [`DEDUPE_WINDOW`] packets behind, or a jump of more
    /// than [`MAX_DROPOUT`] ahead not yet confirmed by the next packet. Drop.
    TooOld,
}

impl Verdict {
    /// True for the verdicts whose packet should be used (InOrder, Reordered, NewSource).
    pub fn accepted(self) -> bool {
        matches!(
            self,
            Verdict::InOrder | Verdict::Reordered | Verdict::NewSource
        )
    }
}

/// Counters of one stream since the tracker was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamStats {
    /// Packets accepted (InOrder, Reordered, NewSource).
    pub received: u64,
    /// Packets lost, RFC 3550 A.3: expected minus received, per segment (SSRC or sequence
    /// restart), summed. Never negative; a late packet lowers it again.
    pub lost: u64,
    /// Duplicates dropped.
    pub duplicated: u64,
    /// Packets accepted out of order.
    pub reordered: u64,
    /// SSRC changes (not counting the first SSRC).
    pub ssrc_changes: u32,
    /// Packets dropped as [`Verdict::TooOld`] (too old, or an unconfirmed jump).
    pub too_old: u64,
    /// Sequence restarts within one SSRC (confirmed jumps).
    pub seq_restarts: u32,
}

/// Tracks the RTP sequence numbers of one stream (RFC 3550 A.1 extended sequence numbers
/// with a wrap at 65535 → 0; A.3 loss). No allocation and no buffering: it only decides
/// about each packet as it arrives. Unlike A.1 it has no probation period: the first packet
/// of a source is accepted at once (a recorder must not lose the start of a call).
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    started: bool,
    ssrc: u32,
    /// Extended sequence number of the lowest packet of the current segment.
    base: u64,
    /// Highest extended sequence number of the current segment.
    max: u64,
    /// Unique packets accepted in the current segment.
    segment_received: u64,
    /// Bit `ext % DEDUPE_WINDOW` is set when packet `ext` (within the window) was seen.
    seen: [u64; WORDS],
    /// After an unconfirmed jump: the sequence number that would confirm it.
    confirm_jump: Option<u16>,
    /// Received and lost of the closed segments.
    closed_received: u64,
    closed_lost: u64,
    duplicated: u64,
    reordered: u64,
    too_old: u64,
    ssrc_changes: u32,
    seq_restarts: u32,
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceTracker {
    /// A tracker that has seen nothing.
    pub const fn new() -> SequenceTracker {
        SequenceTracker {
            started: false,
            ssrc: 0,
            base: 0,
            max: 0,
            segment_received: 0,
            seen: [0; WORDS],
            confirm_jump: None,
            closed_received: 0,
            closed_lost: 0,
            duplicated: 0,
            reordered: 0,
            too_old: 0,
            ssrc_changes: 0,
            seq_restarts: 0,
        }
    }

    /// The SSRC of the current segment (`None` before the first packet).
    pub fn ssrc(&self) -> Option<u32> {
        self.started.then_some(self.ssrc)
    }

    /// Decides about one packet of the stream.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16) -> Verdict {
        if !self.started {
            self.start_segment(ssrc, seq);
            return Verdict::InOrder;
        }
        if ssrc != self.ssrc {
            self.start_segment(ssrc, seq);
            self.ssrc_changes = self.ssrc_changes.saturating_add(1);
            return Verdict::NewSource;
        }
        // Signed distance from the highest sequence number, modulo 2^16 (A.1 wrap).
        let delta = i64::from(seq.wrapping_sub(self.max as u16) as i16);
        if delta > 0 && delta <= i64::from(MAX_DROPOUT) {
            let ext = self.max + delta as u64;
            self.clear_window(self.max + 1, ext);
            self.max = ext;
            self.mark(ext);
            self.segment_received += 1;
            self.confirm_jump = None;
            return Verdict::InOrder;
        }
        if delta <= 0 && delta > -(WINDOW as i64) {
            // self.max >= EXT_BASE > WINDOW, so this cannot underflow.
            let ext = self.max - delta.unsigned_abs();
            if self.is_seen(ext) {
                self.duplicated += 1;
                return Verdict::Duplicate;
            }
            self.mark(ext);
            self.segment_received += 1;
            self.reordered += 1;
            self.base = self.base.min(ext);
            return Verdict::Reordered;
        }
        // A very large jump (A.1): wait for the next packet in sequence to confirm it.
        if self.confirm_jump == Some(seq) {
            self.start_segment(ssrc, seq);
            self.seq_restarts = self.seq_restarts.saturating_add(1);
            return Verdict::NewSource;
        }
        self.confirm_jump = Some(seq.wrapping_add(1));
        self.too_old += 1;
        Verdict::TooOld
    }

    /// The counters so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            received: self.closed_received + self.segment_received,
            lost: self.closed_lost + self.segment_lost(),
            duplicated: self.duplicated,
            reordered: self.reordered,
            ssrc_changes: self.ssrc_changes,
            too_old: self.too_old,
            seq_restarts: self.seq_restarts,
        }
    }

    /// RFC 3550 A.3: expected (highest - lowest + 1) minus received, for the current segment.
    fn segment_lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.max - self.base + 1).saturating_sub(self.segment_received)
    }

    /// Closes the current segment (if any) and starts a new one at `seq`.
    fn start_segment(&mut self, ssrc: u32, seq: u16) {
        if self.started {
            self.closed_lost += self.segment_lost();
            self.closed_received += self.segment_received;
        }
        self.started = true;
        self.ssrc = ssrc;
        self.base = EXT_BASE + u64::from(seq);
        self.max = self.base;
        self.segment_received = 1;
        self.seen = [0; WORDS];
        self.mark(self.base);
        self.confirm_jump = None;
    }

    fn slot(ext: u64) -> (usize, u64) {
        let bit = ext % WINDOW;
        ((bit / 64) as usize % WORDS, 1u64 << (bit % 64))
    }

    fn mark(&mut self, ext: u64) {
        let (word, mask) = Self::slot(ext);
        if let Some(w) = self.seen.get_mut(word) {
            *w |= mask;
        }
    }

    fn is_seen(&self, ext: u64) -> bool {
        let (word, mask) = Self::slot(ext);
        self.seen.get(word).is_some_and(|w| w & mask != 0)
    }

    /// Forgets the window slots of `from..=to` (they now stand for new packets).
    fn clear_window(&mut self, from: u64, to: u64) {
        if to - from + 1 >= WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        for ext in from..=to {
            let (word, mask) = Self::slot(ext);
            if let Some(w) = self.seen.get_mut(word) {
                *w &= !mask;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn feed(t: &mut SequenceTracker, ssrc: u32, seqs: &[u16]) -> Vec<Verdict> {
        seqs.iter().map(|&s| t.on_packet(ssrc, s)).collect()
    }

    #[test]
    fn in_order() {
        let mut t = SequenceTracker::new();
        assert_eq!(t.ssrc(), None);
        assert!(feed(&mut t, 1, &[10, 11, 12, 13])
            .iter()
            .all(|v| *v == InOrder));
        let s = t.stats();
        assert_eq!(
            (s.received, s.lost, s.reordered, s.duplicated),
            (4, 0, 0, 0)
        );
        assert_eq!(t.ssrc(), Some(1));
    }

    #[test]
    fn loss_and_late_arrival() {
        let mut t = SequenceTracker::new();
        assert_eq!(feed(&mut t, 1, &[1, 2, 5, 6]), [InOrder; 4]);
        assert_eq!(t.stats().lost, 2);
        assert_eq!(t.on_packet(1, 3), Reordered);
        let s = t.stats();
        assert_eq!((s.received, s.lost, s.reordered), (5, 1, 1));
    }

    #[test]
    fn reorder_and_duplicate() {
        let mut t = SequenceTracker::new();
        let v = feed(&mut t, 7, &[100, 102, 101, 101, 102, 103, 100]);
        assert_eq!(
            v,
            [InOrder, InOrder, Reordered, Duplicate, Duplicate, InOrder, Duplicate]
        );
        let s = t.stats();
        assert_eq!(
            (s.received, s.lost, s.duplicated, s.reordered),
            (4, 0, 3, 1)
        );
    }

    #[test]
    fn reordered_before_the_first_packet() {
        let mut t = SequenceTracker::new();
        assert_eq!(
            feed(&mut t, 1, &[50, 48, 49, 48]),
            [InOrder, Reordered, Reordered, Duplicate]
        );
        assert_eq!(t.stats().lost, 0);
        assert_eq!(t.stats().received, 3);
    }

    #[test]
    fn wrap_at_65535() {
        let mut t = SequenceTracker::new();
        let v = feed(&mut t, 1, &[65533, 65534, 65535, 0, 1, 65535, 3]);
        assert_eq!(
            v,
            [InOrder, InOrder, InOrder, InOrder, InOrder, Duplicate, InOrder]
        );
        let s = t.stats();
        assert_eq!((s.received, s.lost), (6, 1));
        // A reordered packet across the wrap.
        assert_eq!(t.on_packet(1, 2), Reordered);
        assert_eq!(t.stats().lost, 0);
        // Many wraps in order: no loss, no jump.
        let mut t = SequenceTracker::new();
        for i in 0..200_000u32 {
            assert_eq!(t.on_packet(9, (i % 65536) as u16), InOrder);
        }
        assert_eq!(t.stats().lost, 0);
        assert_eq!(t.stats().received, 200_000);
    }

    #[test]
    fn ssrc_change_resets_and_sums_loss() {
        let mut t = SequenceTracker::new();
        feed(&mut t, 1, &[10, 12]); // 1 lost
        assert_eq!(t.on_packet(2, 5000), NewSource);
        assert_eq!(feed(&mut t, 2, &[5001, 5003]), [InOrder, InOrder]); // 1 lost
                                                                        // An old packet of the first SSRC now counts as another change.
        assert_eq!(t.on_packet(1, 11), NewSource);
        let s = t.stats();
        assert_eq!(s.ssrc_changes, 2);
        assert_eq!(s.received, 6);
        assert_eq!(s.lost, 2);
        assert_eq!(t.ssrc(), Some(1));
    }

    #[test]
    fn too_old_packets() {
        let mut t = SequenceTracker::new();
        for s in 0..1000u16 {
            t.on_packet(1, s);
        }
        assert_eq!(t.on_packet(1, 999 - 511), Duplicate, "inside the window");
        assert_eq!(t.on_packet(1, 999 - 512), TooOld, "just outside");
        assert_eq!(t.on_packet(1, 10), TooOld);
        let s = t.stats();
        assert_eq!(
            (s.too_old, s.duplicated, s.received, s.lost),
            (2, 1, 1000, 0)
        );
        assert!(!TooOld.accepted() && !Duplicate.accepted());
        assert!(InOrder.accepted() && Reordered.accepted() && NewSource.accepted());
    }

    #[test]
    fn window_slots_are_reused_after_a_gap() {
        let mut t = SequenceTracker::new();
        t.on_packet(1, 0);
        // Gap of 600 (> window, < MAX_DROPOUT): slot of 0 is reused by 512, which is new.
        assert_eq!(t.on_packet(1, 600), InOrder);
        assert_eq!(t.on_packet(1, 512), Reordered);
        assert_eq!(t.on_packet(1, 512), Duplicate);
        assert_eq!(t.stats().lost, 598);
        // A gap shorter than the window clears exactly the skipped slots.
        assert_eq!(t.on_packet(1, 700), InOrder);
        assert_eq!(t.on_packet(1, 650), Reordered);
        assert_eq!(t.on_packet(1, 600), Duplicate);
    }

    #[test]
    fn jump_is_confirmed_by_the_next_packet() {
        let mut t = SequenceTracker::new();
        feed(&mut t, 1, &[100, 101, 102]);
        // A stray far-ahead packet is dropped and the stream goes on.
        assert_eq!(t.on_packet(1, 40000), TooOld);
        assert_eq!(t.on_packet(1, 103), InOrder);
        assert_eq!(t.stats().lost, 0);
        // A real restart: two packets in sequence far away.
        assert_eq!(t.on_packet(1, 20000), TooOld);
        assert_eq!(t.on_packet(1, 20001), NewSource);
        assert_eq!(t.on_packet(1, 20002), InOrder);
        // A restart backwards (beyond the window) is confirmed the same way.
        assert_eq!(t.on_packet(1, 19000), TooOld);
        assert_eq!(t.on_packet(1, 19001), NewSource);
        let s = t.stats();
        assert_eq!(s.seq_restarts, 2);
        assert_eq!(s.ssrc_changes, 0);
        assert_eq!(s.lost, 0);
        assert_eq!(s.received, 4 + 2 + 1);
        assert_eq!(s.too_old, 3);
    }

    #[test]
    fn every_packet_is_counted_once_under_garbage() {
        let mut t = SequenceTracker::new();
        let mut x = 0x1234_5678_u32;
        let n = 100_000u64;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let ssrc = if x % 97 == 0 { x } else { 42 };
            t.on_packet(ssrc, (x >> 8) as u16 % 700);
        }
        let s = t.stats();
        assert_eq!(s.received + s.duplicated + s.too_old, n);
        assert!(s.reordered <= s.received);
    }
}
