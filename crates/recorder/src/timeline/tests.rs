//! Scenario tests in virtual time: `t0 + n * 20 ms`, never a sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::{repair_wav_header, MemoryOutput, MemorySink, WavSpoolWriter};

const PKT: usize = 160; // 20 ms at 8 kHz
const L: i16 = 1000;
const R: i16 = -1000;

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn slot(t0: Instant, i: u32) -> Instant {
    at(t0, 20 * u64::from(i))
}

fn mem_timeline(t0: Instant) -> (Timeline, MemoryOutput) {
    mem_timeline_with(t0, TimelineConfig::default())
}

fn mem_timeline_with(t0: Instant, config: TimelineConfig) -> (Timeline, MemoryOutput) {
    let (sink, out) = MemorySink::new();
    (Timeline::new(t0, config, Box::new(sink)).unwrap(), out)
}

/// `[from, to)` of `v` all equal `value`.
fn assert_run(v: &[i16], from: usize, to: usize, value: i16) {
    if let Some((i, x)) = v[from..to].iter().enumerate().find(|(_, x)| **x != value) {
        panic!(
            "sample {} is {x}, expected {value} throughout [{from}, {to})",
            from + i
        );
    }
}

/// Push packets `range` of a 20 ms stream, each at its own slot.
fn push_run(
    tl: &mut Timeline,
    t0: Instant,
    id: StreamId,
    ssrc: u32,
    ts0: u32,
    range: std::ops::Range<u32>,
    v: i16,
) {
    for i in range {
        tl.push(slot(t0, i), id, ssrc, ts0.wrapping_add(160 * i), &[v; PKT])
            .unwrap();
    }
}

/// Per slot in `range`: stream `l` pushes L; stream `r` pushes R from slot `r_from` on.
fn push_pair(
    tl: &mut Timeline,
    t0: Instant,
    l: StreamId,
    r: StreamId,
    range: std::ops::Range<u32>,
    r_from: u32,
) {
    for i in range {
        let now = slot(t0, i);
        tl.push(now, l, 1, 160 * i, &[L; PKT]).unwrap();
        if i >= r_from {
            tl.push(
                now,
                r,
                2,
                555u32.wrapping_add(160 * (i - r_from)),
                &[R; PKT],
            )
            .unwrap();
        }
    }
}

#[test]
fn two_streams_constant_values_exact_length() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    for i in 0..50u32 {
        let now = slot(t0, i);
        tl.push(now, l, 0x1111, 1000 + 160 * i, &[L; PKT]).unwrap();
        tl.push(now, r, 0x2222, 77_777 + 160 * i, &[R; PKT])
            .unwrap();
    }
    let stats = tl.finish(at(t0, 1000)).unwrap();
    assert_eq!(stats.duration_samples, 8000);
    assert_eq!(stats.duration(), Duration::from_secs(1));
    assert_eq!(stats.sample_rate, 8000);
    assert!(stats.pauses.is_empty());
    assert_eq!(out.frames(), 8000);
    assert_run(&out.channel(0), 0, 8000, L);
    assert_run(&out.channel(1), 0, 8000, R);
    for s in &stats.streams {
        assert_eq!(s.samples_placed, 8000);
        assert_eq!(s.reanchors, 0);
        assert_eq!(s.late_dropped_samples, 0);
    }
    assert!(out.is_finalized());
}

#[test]
fn streams_are_aligned_by_arrival_between_each_other() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    for i in 0..50u32 {
        tl.push(slot(t0, i), l, 1, 160 * i, &[L; PKT]).unwrap();
        // The right leg's packets arrive 7 ms later: 56 samples.
        let now = slot(t0, i) + Duration::from_millis(7);
        tl.push(now, r, 2, 999 + 160 * i, &[R; PKT]).unwrap();
    }
    tl.finish(at(t0, 1000)).unwrap();
    let right = out.channel(1);
    assert_eq!(right.len(), 8000);
    assert_run(&right, 0, 56, 0);
    assert_run(&right, 56, 8000, R);
    assert_run(&out.channel(0), 0, 8000, L);
}

#[test]
fn loss_gives_exact_length_silence() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    for i in (0..50u32).filter(|i| !(10..15).contains(i)) {
        tl.push(slot(t0, i), l, 5, 160 * i, &[L; PKT]).unwrap();
    }
    let stats = tl.finish(at(t0, 1000)).unwrap();
    let left = out.channel(0);
    assert_eq!(left.len(), 8000);
    assert_run(&left, 0, 1600, L);
    assert_run(&left, 1600, 2400, 0);
    assert_run(&left, 2400, 8000, L);
    assert_eq!(stats.streams[0].reanchors, 0);
}

/// Run one stream whose packet `order[k]` arrives in slot `k`; return the left channel.
fn run_order(order: &[u32]) -> Vec<i16> {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    for (k, &i) in order.iter().enumerate() {
        // Each packet carries its own index so misplacement shows.
        let v = 100 + i as i16;
        tl.push(slot(t0, k as u32), l, 5, 3_000_000 + 160 * i, &[v; PKT])
            .unwrap();
    }
    let stats = tl.finish(at(t0, 20 * order.len() as u64)).unwrap();
    assert_eq!(stats.streams[0].late_dropped_samples, 0);
    assert_eq!(stats.streams[0].reanchors, 0);
    out.channel(0)
}

#[test]
fn reordering_within_window_matches_in_order_output() {
    let in_order: Vec<u32> = (0..60).collect();
    let expected = run_order(&in_order);
    for (i, chunk) in expected.chunks(PKT).enumerate() {
        assert_run(chunk, 0, PKT, 100 + i as i16);
    }

    // Pairwise swaps (packet 0 stays first: it sets the anchor).
    let mut swapped = in_order.clone();
    for k in (1..59).step_by(2) {
        swapped.swap(k, k + 1);
    }
    assert_eq!(run_order(&swapped), expected);

    // Packet 20 held back 200 ms (10 slots), still inside the 300 ms window.
    let mut delayed: Vec<u32> = in_order.iter().copied().filter(|&i| i != 20).collect();
    delayed.insert(30, 20);
    assert_eq!(run_order(&delayed), expected);
}

#[test]
fn same_stream_writing_twice_overwrites_and_streams_sum() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let a = tl.add_stream(0, 8000);
    let b = tl.add_stream(0, 8000);
    for i in 0..50u32 {
        let now = slot(t0, i);
        tl.push(now, a, 1, 160 * i, &[1000; PKT]).unwrap();
        tl.push(now, b, 2, 50_000 + 160 * i, &[500; PKT]).unwrap();
        // Duplicate of a's packet, a little later.
        let dup = now + Duration::from_millis(5);
        tl.push(dup, a, 1, 160 * i, &[1000; PKT]).unwrap();
    }
    let stats = tl.finish(at(t0, 1000)).unwrap();
    assert_run(&out.channel(0), 0, 8000, 1500);
    assert_run(&out.channel(1), 0, 8000, 0);
    assert_eq!(stats.streams[a.0].samples_placed, 16_000);
    assert_eq!(stats.streams[a.0].reanchors, 0);
}

#[test]
fn mixing_saturates_the_true_sum() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let a = tl.add_stream(0, 8000);
    let b = tl.add_stream(0, 8000);
    let c = tl.add_stream(0, 8000);
    let d = tl.add_stream(1, 8000);
    let e = tl.add_stream(1, 8000);
    for i in 0..10u32 {
        let now = slot(t0, i);
        tl.push(now, a, 1, 160 * i, &[30_000; PKT]).unwrap();
        tl.push(now, b, 2, 160 * i, &[30_000; PKT]).unwrap();
        tl.push(now, c, 3, 160 * i, &[-30_000; PKT]).unwrap();
        tl.push(now, d, 4, 160 * i, &[-30_000; PKT]).unwrap();
        tl.push(now, e, 5, 160 * i, &[-30_000; PKT]).unwrap();
    }
    tl.finish(at(t0, 200)).unwrap();
    // 30000 + 30000 - 30000 = 30000, not a saturated intermediate.
    assert_run(&out.channel(0), 0, 1600, 30_000);
    assert_run(&out.channel(1), 0, 1600, i16::MIN);
}

#[test]
fn a_second_stream_on_a_channel_mid_recording_is_summed_from_then_on() {
    // One stream per channel is flushed by interleaving; a second stream on a channel
    // switches to summing, and the audio before and after the switch is the same.
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    let mut extra = None;
    for i in 0..20u32 {
        let now = slot(t0, i);
        tl.push(now, l, 1, 160 * i, &[1000; PKT]).unwrap();
        tl.push(now, r, 2, 160 * i, &[-2000; PKT]).unwrap();
        if i == 10 {
            extra = Some(tl.add_stream(0, 8000));
        }
        if let (Some(x), true) = (extra, i > 10) {
            tl.push(now, x, 3, 160 * i, &[500; PKT]).unwrap();
        }
    }
    tl.finish(at(t0, 400)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 160 * 11, 1000);
    assert_run(&left, 160 * 11, 160 * 20, 1500);
    assert_run(&out.channel(1), 0, 160 * 20, -2000);
}

#[test]
fn late_beyond_window_is_dropped_and_counted() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    for i in 0..50u32 {
        if i == 5 || i == 10 {
            continue; // held back
        }
        tl.push(slot(t0, i), l, 9, 160 * i, &[L; PKT]).unwrap();
        if i == 25 {
            // Packet 5 (positions 800..960) arrives 400 ms late: written out already.
            tl.push(slot(t0, i), l, 9, 160 * 5, &[L; PKT]).unwrap();
            // Packet 10 (1600..1760) arrives when 1680 frames are written: half late.
            tl.push(at(t0, 510), l, 9, 160 * 10, &[L; PKT]).unwrap();
        }
    }
    let stats = tl.finish(at(t0, 1000)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 800, L);
    assert_run(&left, 800, 960, 0);
    assert_run(&left, 960, 1600, L);
    assert_run(&left, 1600, 1680, 0);
    assert_run(&left, 1680, 8000, L);
    let s = stats.streams[0];
    assert_eq!(s.late_dropped_samples, 160 + 80);
    assert_eq!(
        s.late_dropped_packets, 1,
        "the half-late packet is placed in part"
    );
    assert_eq!(s.samples_placed, 48 * 160 + 80);
    assert_eq!(s.reanchors, 0);
}

/// 3 s call, paused from 1 s to 2 s; after resume the timestamps follow `ts_after(i)`.
fn pause_scenario(ts_after: impl Fn(u32) -> u32) {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    for i in 0..150u32 {
        let now = slot(t0, i);
        if i == 50 {
            tl.set_paused(now, true).unwrap();
            assert!(tl.is_paused());
        }
        if i == 100 {
            tl.set_paused(now, false).unwrap();
            assert!(!tl.is_paused());
        }
        let ts = if i < 100 { 160 * i } else { ts_after(i) };
        tl.push(now, l, 1, ts, &[L; PKT]).unwrap();
        tl.push(now, r, 2, ts, &[R; PKT]).unwrap();
    }
    let stats = tl.finish(at(t0, 3000)).unwrap();
    assert_eq!(stats.duration_samples, 24_000);
    assert_eq!(stats.pauses, vec![(8000, 16_000)]);
    for (ch, v) in [(0, L), (1, R)] {
        let c = out.channel(ch);
        assert_eq!(c.len(), 24_000);
        assert_run(&c, 0, 8000, v);
        assert_run(&c, 8000, 16_000, 0);
        assert_run(&c, 16_000, 24_000, v);
    }
    for s in &stats.streams {
        assert_eq!(s.ignored_while_paused, 50 * 160);
        assert_eq!(s.reanchors, 1);
        assert_eq!(s.late_dropped_samples, 0);
    }
}

#[test]
fn pause_is_exact_silence_and_resume_reanchors_when_timestamps_continued() {
    // The SRC stopped sending and its timestamps carry on as if nothing happened.
    pause_scenario(|i| 160 * (i - 50));
}

#[test]
fn pause_resume_with_jumped_timestamps() {
    pause_scenario(|i| 0x9abc_def0_u32.wrapping_add(160 * i));
}

#[test]
fn pause_clears_audio_already_queued_past_the_pause_start() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    // The first packet was delayed 100 ms (the next ones arrive with it), the later ones not:
    // they land 100 ms ahead of their arrival.
    for i in 0..50u32 {
        let now = at(t0, (20 * u64::from(i)).max(100));
        tl.push(now, l, 1, 160 * i, &[L; PKT]).unwrap();
    }
    // Audio up to 1100 ms (position 8800) is queued; pause at 1000 ms.
    tl.set_paused(at(t0, 1000), true).unwrap();
    tl.set_paused(at(t0, 1000), true).unwrap(); // no-op
    tl.advance(at(t0, 1500)).unwrap();
    let stats = tl.finish(at(t0, 2000)).unwrap();
    let left = out.channel(0);
    assert_eq!(left.len(), 16_000);
    assert_run(&left, 0, 800, 0);
    assert_run(&left, 800, 8000, L);
    assert_run(&left, 8000, 16_000, 0);
    assert_eq!(stats.pauses, vec![(8000, 16_000)]);
}

#[test]
fn packets_reordered_across_a_resume_stay_out_of_the_pause() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 1, 0, 0..50, L);
    tl.set_paused(slot(t0, 50), true).unwrap();
    tl.set_paused(slot(t0, 60), false).unwrap();
    // New anchor at 1200 ms = 9600 with ts 160*60, then an older packet (ts 160*58).
    tl.push(slot(t0, 60), l, 1, 160 * 60, &[L; PKT]).unwrap();
    tl.push(slot(t0, 60), l, 1, 160 * 58, &[L; PKT]).unwrap();
    push_run(&mut tl, t0, l, 1, 0, 61..75, L);
    let stats = tl.finish(slot(t0, 75)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 8000, L);
    assert_run(&left, 8000, 9600, 0);
    assert_run(&left, 9600, 12_000, L);
    assert_eq!(stats.streams[0].ignored_while_paused, 160);
    assert_eq!(stats.pauses, vec![(8000, 9600)]);
}

#[test]
fn pause_open_at_finish_is_closed_at_the_end() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 1, 0, 0..25, L);
    tl.set_paused(slot(t0, 25), true).unwrap();
    push_run(&mut tl, t0, l, 1, 0, 25..50, L);
    let stats = tl.finish(at(t0, 1000)).unwrap();
    assert_eq!(stats.pauses, vec![(4000, 8000)]);
    assert_run(&out.channel(0), 4000, 8000, 0);
    assert_eq!(stats.streams[0].ignored_while_paused, 25 * 160);
}

#[test]
fn ssrc_change_with_new_timestamp_base_continues_at_arrival() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 0xaaaa, 1000, 0..50, L);
    push_run(&mut tl, t0, l, 0xbbbb, 0xdead_beef, 50..51, L);
    // A straggler of the old SSRC right after the change is dropped, not re-anchored to.
    tl.push(at(t0, 1010), l, 0xaaaa, 1000 + 160 * 49, &[7; PKT])
        .unwrap();
    push_run(&mut tl, t0, l, 0xbbbb, 0xdead_beef, 51..150, L);
    let stats = tl.finish(at(t0, 3000)).unwrap();
    assert_run(&out.channel(0), 0, 24_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
    assert_eq!(stats.streams[0].late_dropped_samples, 160);
}

#[test]
fn ssrc_change_after_a_real_gap_keeps_exactly_that_gap() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 0xaaaa, 1000, 0..50, L);
    // 100 ms without packets, then the new source.
    push_run(&mut tl, t0, l, 0xbbbb, 0x7777_0000, 55..150, L);
    let stats = tl.finish(at(t0, 3000)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 8000, L);
    assert_run(&left, 8000, 8800, 0);
    assert_run(&left, 8800, 24_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
}

#[test]
fn silent_stream_gives_full_length_zeros_and_late_starter_leading_silence() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let _silent = tl.add_stream(1, 8000);
    push_run(&mut tl, t0, l, 1, 0, 0..150, L);
    let stats = tl.finish(at(t0, 3000)).unwrap();
    assert_eq!(out.frames(), 24_000);
    assert_run(&out.channel(1), 0, 24_000, 0);
    assert_eq!(stats.streams[1], StreamTimelineStats::default());

    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    // The right stream starts 2 s late.
    push_pair(&mut tl, t0, l, r, 0..150, 100);
    tl.finish(at(t0, 3000)).unwrap();
    let right = out.channel(1);
    assert_eq!(right.len(), 24_000);
    assert_run(&right, 0, 16_000, 0);
    assert_run(&right, 16_000, 24_000, R);
}

#[test]
fn one_advance_over_several_checkpoint_positions_checkpoints_once_after_its_last_frame() {
    let t0 = Instant::now();
    let config = TimelineConfig {
        checkpoint_interval: Duration::from_millis(20),
        jitter_window: Duration::from_millis(60),
        ..TimelineConfig::default()
    };
    let (mut tl, out) = mem_timeline_with(t0, config);
    tl.add_stream(0, 8000);
    // 300 ms minus the 60 ms jitter window: 240 ms written, twelve checkpoint positions.
    tl.advance(at(t0, 300)).unwrap();
    assert_eq!(tl.position(), 1920);
    assert_eq!(out.checkpoints(), 1);
    // Less than one more interval: no checkpoint; crossing the next position: one.
    tl.advance(at(t0, 310)).unwrap();
    assert_eq!(out.checkpoints(), 1);
    tl.advance(at(t0, 325)).unwrap();
    assert_eq!(out.checkpoints(), 2);
}

#[test]
fn nothing_pushed_still_writes_the_whole_session() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    tl.add_stream(0, 8000);
    tl.add_stream(1, 8000);
    for k in 0..50u64 {
        tl.advance(at(t0, 100 * k)).unwrap();
    }
    assert_eq!(tl.position(), 4900 * 8 - 2400);
    let stats = tl.finish(at(t0, 5000)).unwrap();
    assert_eq!(stats.duration_samples, 40_000);
    assert_eq!(out.frames(), 40_000);
    assert!(out.interleaved().iter().all(|&s| s == 0));
    assert_eq!(out.checkpoints(), 5);
}

#[test]
fn timestamp_wrap_mid_stream_is_seamless() {
    let base = u32::MAX - 160 * 20 + 1; // wraps at packet 20
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    for k in 0..100u32 {
        // Packets 19 and 20 swapped: reordering across the wrap.
        let i = match k {
            19 => 20,
            20 => 19,
            _ => k,
        };
        let v = 100 + i as i16;
        tl.push(slot(t0, k), l, 3, base.wrapping_add(160 * i), &[v; PKT])
            .unwrap();
    }
    let stats = tl.finish(at(t0, 2000)).unwrap();
    let left = out.channel(0);
    assert_eq!(left.len(), 16_000);
    for (i, chunk) in left.chunks(PKT).enumerate() {
        assert_run(chunk, 0, PKT, 100 + i as i16);
    }
    assert_eq!(stats.streams[0].reanchors, 0);
}

#[test]
fn timestamp_jump_beyond_max_skew_reanchors_without_gap() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 1, 0, 0..50, L);
    push_run(&mut tl, t0, l, 1, 8000 * 5, 50..100, L); // +5 s
    let stats = tl.finish(at(t0, 2000)).unwrap();
    assert_run(&out.channel(0), 0, 16_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
}

#[test]
fn timestamp_jump_beyond_the_ring_reanchors_instead_of_overflowing() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 1, 0, 0..50, L);
    push_run(&mut tl, t0, l, 1, 4000, 50..100, L); // +500 ms: within max_skew
    let stats = tl.finish(at(t0, 2000)).unwrap();
    assert_run(&out.channel(0), 0, 16_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
    assert_eq!(stats.streams[0].oversize_dropped_samples, 0);
}

#[test]
fn persistently_late_stream_reanchors_after_one_window() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    push_run(&mut tl, t0, l, 1, 100_000, 0..50, L);
    // From packet 50 on the timestamps are 500 ms behind (more than the window, less than
    // max_skew): everything is late until a whole window has passed (packet 65).
    push_run(&mut tl, t0, l, 1, 100_000 - 4000, 50..150, L);
    let stats = tl.finish(at(t0, 3000)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 8000, L);
    assert_run(&left, 8000, 10_400, 0);
    assert_run(&left, 10_400, 24_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
    assert_eq!(stats.streams[0].late_dropped_samples, 15 * 160);
    assert_eq!(stats.streams[0].late_dropped_packets, 15);
}

#[test]
fn clock_rate_differs_from_recording_rate_and_changes_mid_call() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 48_000); // e.g. Opus decoded to 8 kHz
    for i in 0..50u32 {
        tl.push(slot(t0, i), l, 1, 960 * i, &[L; PKT]).unwrap();
    }
    tl.set_stream_clock_rate(l, 16_000);
    tl.set_stream_clock_rate(StreamId(99), 16_000); // ignored
    for i in 50..100u32 {
        tl.push(slot(t0, i), l, 1, 777 + 320 * i, &[L; PKT])
            .unwrap();
    }
    let stats = tl.finish(at(t0, 2000)).unwrap();
    assert_run(&out.channel(0), 0, 16_000, L);
    assert_eq!(stats.streams[0].reanchors, 1);
}

#[test]
fn oversize_packet_is_cut_not_overflowed() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    let l = tl.add_stream(0, 8000);
    tl.advance(at(t0, 1000)).unwrap();
    // 1 s of audio in one packet: the ring reaches 250 ms past arrival.
    tl.push(at(t0, 1000), l, 1, 0, &[L; 8000]).unwrap();
    let s = tl.stream_stats(l).unwrap();
    assert_eq!(s.samples_placed, 2000);
    assert_eq!(s.oversize_dropped_samples, 6000);
    tl.finish(at(t0, 2000)).unwrap();
    let left = out.channel(0);
    assert_run(&left, 0, 8000, 0);
    assert_run(&left, 8000, 10_000, L);
    assert_run(&left, 10_000, 16_000, 0);
}

#[test]
fn unknown_stream_and_odd_inputs() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline(t0);
    assert!(matches!(
        tl.push(t0, StreamId(0), 1, 0, &[0; PKT]),
        Err(Error::UnknownStream)
    ));
    let s = tl.add_stream(7, 0); // channel clamped to 1, clock rate defaults to 8000
    tl.push(t0, s, 1, 0, &[]).unwrap();
    push_run(&mut tl, t0, s, 1, 0, 0..10, R);
    // Time going backwards writes nothing and breaks nothing.
    tl.advance(t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0))
        .unwrap();
    tl.push(at(t0, 100), s, 1, 160 * 5, &[R; PKT]).unwrap();
    assert_eq!(tl.stream_count(), 1);
    let stats = tl.finish(at(t0, 200)).unwrap();
    assert_run(&out.channel(1), 0, 1600, R);
    assert_run(&out.channel(0), 0, 1600, 0);
    assert_eq!(stats.duration_samples, 1600);
}

#[test]
fn timeline_and_writer_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Timeline>();
    assert_send::<WavSpoolWriter>();
    assert_send::<Error>();
}

#[test]
fn config_validation() {
    assert!(TimelineConfig::default().validate().is_ok());
    let d = TimelineConfig::default();
    let bad = [
        TimelineConfig {
            sample_rate: 0,
            ..d
        },
        TimelineConfig {
            sample_rate: 1_000_000,
            ..d
        },
        TimelineConfig {
            jitter_window: Duration::from_secs(6),
            ..d
        },
        TimelineConfig {
            max_skew: Duration::ZERO,
            ..d
        },
        TimelineConfig {
            checkpoint_interval: Duration::ZERO,
            ..d
        },
        TimelineConfig {
            checkpoint_interval: Duration::from_millis(9),
            ..d
        },
    ];
    for c in bad {
        assert!(
            matches!(c.validate(), Err(Error::InvalidConfig(_))),
            "{c:?}"
        );
        let (sink, _) = MemorySink::new();
        assert!(Timeline::new(Instant::now(), c, Box::new(sink)).is_err());
    }
    // Default ring: 300 ms + 250 ms at 8 kHz.
    assert_eq!(d.ring_len(), 4400);
    let zero_window = TimelineConfig {
        jitter_window: Duration::ZERO,
        ..d
    };
    assert!(zero_window.validate().is_ok());
}

#[test]
fn zero_jitter_window_still_exact() {
    let t0 = Instant::now();
    let config = TimelineConfig {
        jitter_window: Duration::ZERO,
        sample_rate: 16_000,
        ..TimelineConfig::default()
    };
    let (mut tl, out) = mem_timeline_with(t0, config);
    let l = tl.add_stream(0, 16_000);
    for i in 0..50u32 {
        tl.push(slot(t0, i), l, 1, 320 * i, &[L; 320]).unwrap();
    }
    let stats = tl.finish(at(t0, 1000)).unwrap();
    assert_eq!(stats.duration_samples, 16_000);
    assert_run(&out.channel(0), 0, 16_000, L);
}

#[test]
fn many_pauses_are_bounded() {
    let t0 = Instant::now();
    let (mut tl, _out) = mem_timeline(t0);
    let n = MAX_RECORDED_PAUSES as u64 + 10;
    for k in 0..n {
        tl.set_paused(at(t0, 10 * k), true).unwrap();
        tl.set_paused(at(t0, 10 * k + 5), false).unwrap();
    }
    let stats = tl.finish(at(t0, 10 * n)).unwrap();
    assert_eq!(stats.pauses.len(), MAX_RECORDED_PAUSES);
    assert!(stats.pauses_truncated);
    assert_eq!(stats.pauses[1], (80, 120));
}

/// Checks every frame as it goes by; keeps nothing.
#[derive(Debug, Clone, Default)]
struct CountingSink {
    frames: Arc<AtomicU64>,
    good: Arc<AtomicU64>,
    largest_write: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
}

impl FrameSink for CountingSink {
    fn write_frames(&mut self, interleaved: &[i16]) -> Result<(), Error> {
        let good = interleaved
            .chunks_exact(2)
            .filter(|f| f[0] == L && f[1] == R)
            .count();
        self.frames
            .fetch_add(interleaved.len() as u64 / 2, Ordering::Relaxed);
        self.good.fetch_add(good as u64, Ordering::Relaxed);
        self.largest_write
            .fetch_max(interleaved.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<(), Error> {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn finalize(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

#[test]
fn one_hour_call_constant_memory_exact_length() {
    let t0 = Instant::now();
    let sink = CountingSink::default();
    let mut tl = Timeline::new(t0, TimelineConfig::default(), Box::new(sink.clone())).unwrap();
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    let ring = tl.ring_len();
    let packets = 3600 * 50u32;
    for i in 0..packets {
        // 0, 10 or 20 ms of network delay; arrival order stays packet order.
        let delay = u64::from(i % 3) * 10;
        let now = slot(t0, i) + Duration::from_millis(delay);
        tl.push(
            now,
            l,
            0x1,
            0x1234_0000_u32.wrapping_add(160 * i),
            &[L; PKT],
        )
        .unwrap();
        tl.push(
            now,
            r,
            0x2,
            0xffff_0000_u32.wrapping_add(160 * i),
            &[R; PKT],
        )
        .unwrap();
        if i % 5 == 0 {
            tl.advance(now).unwrap();
        }
    }
    assert_eq!(tl.ring_len(), ring);
    let stats = tl
        .finish(t0 + Duration::from_secs(3600) + Duration::from_millis(40))
        .unwrap();
    let expected = 3600 * 8000;
    assert_eq!(stats.duration_samples, expected + 320);
    assert_eq!(sink.frames.load(Ordering::Relaxed), expected + 320);
    assert_eq!(sink.good.load(Ordering::Relaxed), expected);
    assert!(sink.largest_write.load(Ordering::Relaxed) <= 2 * CHUNK_FRAMES as u64);
    assert_eq!(sink.checkpoints.load(Ordering::Relaxed), 3600);
    for s in &stats.streams {
        assert_eq!(s.reanchors, 0);
        assert_eq!(s.late_dropped_samples, 0);
        assert_eq!(s.samples_placed, expected);
    }
}

/// A sink that fails after `ok_writes` writes.
#[derive(Debug)]
struct FailingSink {
    ok_writes: u32,
}

impl FrameSink for FailingSink {
    fn write_frames(&mut self, _: &[i16]) -> Result<(), Error> {
        if self.ok_writes == 0 {
            return Err(Error::Io(std::io::Error::other("disk full")));
        }
        self.ok_writes -= 1;
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn finalize(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

#[test]
fn sink_failure_poisons_the_timeline() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(
        t0,
        TimelineConfig::default(),
        Box::new(FailingSink { ok_writes: 2 }),
    )
    .unwrap();
    let l = tl.add_stream(0, 8000);
    let mut first_err = None;
    for i in 0..100u32 {
        if let Err(e) = tl.push(slot(t0, i), l, 1, 160 * i, &[L; PKT]) {
            first_err = Some(e);
            break;
        }
    }
    assert!(matches!(first_err, Some(Error::Io(_))));
    assert!(matches!(tl.advance(at(t0, 5000)), Err(Error::Poisoned)));
    assert!(matches!(tl.checkpoint(), Err(Error::Poisoned)));
    assert!(matches!(tl.finish(at(t0, 6000)), Err(Error::Poisoned)));
}

// --- the real WAV writer ---------------------------------------------------------------------

fn read_wav(path: &std::path::Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let samples = r.samples::<i16>().map(|s| s.unwrap()).collect();
    (spec, samples)
}

#[test]
fn wav_finish_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let t0 = Instant::now();
    let sink = WavSpoolWriter::create(&path, 8000).unwrap();
    let mut tl = Timeline::new(t0, TimelineConfig::default(), Box::new(sink)).unwrap();
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    push_pair(&mut tl, t0, l, r, 0..250, 50);
    let stats = tl.finish(at(t0, 5000)).unwrap();
    assert_eq!(stats.duration_samples, 40_000);

    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(samples.len(), 80_000);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert_run(&left, 0, 40_000, L);
    assert_run(&right, 0, 8000, 0);
    assert_run(&right, 8000, 40_000, R);
}

#[test]
fn wav_silent_call_gets_a_file_of_the_right_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.wav");
    let t0 = Instant::now();
    let sink = WavSpoolWriter::create(&path, 8000).unwrap();
    let mut tl = Timeline::new(t0, TimelineConfig::default(), Box::new(sink)).unwrap();
    tl.add_stream(0, 8000);
    tl.add_stream(1, 8000);
    tl.advance(at(t0, 1234)).unwrap();
    tl.finish(at(t0, 2500)).unwrap();
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), 2 * 20_000);
    assert!(samples.iter().all(|&s| s == 0));
}

#[test]
fn wav_is_valid_on_disk_after_checkpoint_without_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.wav");
    let t0 = Instant::now();
    let sink = WavSpoolWriter::create(&path, 8000).unwrap();
    let mut tl = Timeline::new(t0, TimelineConfig::default(), Box::new(sink)).unwrap();
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    push_pair(&mut tl, t0, l, r, 0..125, 0);
    // 2.48 s pushed: 2.18 s written, automatic checkpoints at 1 s and 2 s.
    assert_eq!(tl.position(), 17_440);
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.channels, 2);
    assert_eq!(samples.len(), 2 * 16_000);
    assert!(samples.chunks(2).all(|f| f == [L, R]));

    // A checkpoint puts every frame in the file; the header follows within a second of
    // audio, and a reader (or recovery) that wants them all repairs it.
    tl.checkpoint().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, crate::WAV_HEADER_BYTES as u64 + 4 * 17_440);
    let copy = dir.path().join("copy.wav");
    std::fs::copy(&path, &copy).unwrap();
    assert_eq!(crate::repair_wav_header(&copy).unwrap(), 17_440);
    let (_, samples) = read_wav(&copy);
    assert!(samples.chunks(2).all(|f| f == [L, R]));
    tl.finish(at(t0, 2500)).unwrap();
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), 2 * 20_000);
}

#[test]
fn wav_left_by_a_killed_process_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.wav");
    let t0 = Instant::now();
    let sink = WavSpoolWriter::create(&path, 8000).unwrap();
    // No checkpoint ever: the header on disk still says 0 bytes of data.
    let config = TimelineConfig {
        checkpoint_interval: Duration::from_secs(3600),
        ..TimelineConfig::default()
    };
    let mut tl = Timeline::new(t0, config, Box::new(sink)).unwrap();
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    push_pair(&mut tl, t0, l, r, 0..500, 0);
    let written = tl.position();
    // "Kill": no finish, no drop, whatever is still in the BufWriter is lost.
    std::mem::forget(tl);

    assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 0);
    let frames = repair_wav_header(&path).unwrap();
    // Everything the BufWriter handed to the OS, in whole frames.
    let on_disk_min = (written * 4).saturating_sub(crate::SPOOL_BUFFER_BYTES as u64) / 4;
    assert!(
        frames >= on_disk_min && frames <= written,
        "{frames} of {written}"
    );
    assert!(frames > 0);
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len() as u64, 2 * frames);
    assert!(samples.chunks(2).all(|f| f == [L, R]));
}

/// Two senders whose clocks drift apart (one 0.1 % fast, one 0.1 % slow: ten times what
/// real crystals do) with 0-20 ms of jitter: after an hour of virtual time the channels are
/// still within 2 × [`DRIFT_STEP`] (plus what one window drifts) of each other and of real
/// time, where without drift tracking they would be 7.2 s apart (re-anchored only at
/// `max_skew`, so up to a second off).
#[test]
fn sender_clock_drift_keeps_channels_aligned() {
    let t0 = Instant::now();
    let (mut tl, out) = mem_timeline_with(
        t0,
        TimelineConfig {
            jitter_window: Duration::from_millis(60),
            ..TimelineConfig::default()
        },
    );
    let l = tl.add_stream(0, 8000);
    let r = tl.add_stream(1, 8000);
    let secs = 3600u64;
    // Packet i of a sender whose clock runs at `rate` × real time is sent at i × 20 ms / rate.
    let sent = |i: u64, rate: f64| t0 + Duration::from_secs_f64(i as f64 * 0.020 / rate);
    // A click at 3590 s of real time on both channels, the rest quiet.
    let click = Duration::from_secs(3590);
    let mut streams = [(l, 1.001f64, 0u64, 11u32), (r, 0.999f64, 0u64, 22u32)];
    loop {
        // The next packet in real time, from either sender.
        let (k, next) = streams
            .iter()
            .enumerate()
            .map(|(k, (_, rate, i, _))| (k, sent(*i, *rate)))
            .min_by_key(|(_, t)| *t)
            .unwrap();
        if next > t0 + Duration::from_secs(secs) {
            break;
        }
        let (id, _, i, ssrc) = &mut streams[k];
        let jitter = Duration::from_millis((*i * 7919) % 21);
        let v = if next.saturating_duration_since(t0) >= click
            && next.saturating_duration_since(t0) < click + Duration::from_millis(20)
        {
            5000
        } else {
            0
        };
        tl.push(next + jitter, *id, *ssrc, (160 * *i) as u32, &[v; PKT])
            .unwrap();
        *i += 1;
    }
    let stats = tl.finish(t0 + Duration::from_secs(secs + 1)).unwrap();
    assert!(
        stats.streams.iter().all(|s| s.drift_corrections > 10),
        "{stats:?}"
    );
    let frames = out.interleaved();
    let onset = |ch: usize| {
        frames
            .iter()
            .skip(ch)
            .step_by(2)
            .position(|&x| x == 5000)
            .expect("click recorded")
    };
    let (a, b) = (onset(0), onset(1));
    let apart_ms = a.abs_diff(b) as f64 / 8.0;
    assert!(
        apart_ms <= 25.0,
        "channels {apart_ms} ms apart ({a} vs {b})"
    );
    // And both sit where the click happened in real time, within the jitter window.
    let at = 3590 * 8000;
    assert!(
        a.abs_diff(at) <= 480 && b.abs_diff(at) <= 480,
        "{a} {b} vs {at}"
    );
}
