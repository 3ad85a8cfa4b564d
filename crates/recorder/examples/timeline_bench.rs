//! Throughput of the timeline into the real WAV spool writer.
//!
//! One hour (virtual time) of two 20 ms streams at 8 kHz, with a little network jitter, pushed
//! through `Timeline` into a `WavSpoolWriter` in a temporary directory.
//!
//! ```text
//! cargo run --release -p siprec-recorder --example timeline_bench [seconds]
//! ```

use std::time::{Duration, Instant};

use siprec_recorder::{Timeline, TimelineConfig, WavSpoolWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u32 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 3600,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.wav");
    let config = TimelineConfig::default();
    let t0 = Instant::now();
    let sink = WavSpoolWriter::create(&path, config.sample_rate)?;
    let mut timeline = Timeline::new(t0, config, Box::new(sink))?;
    let left = timeline.add_stream(0, 8000);
    let right = timeline.add_stream(1, 8000);

    let packets_per_stream = seconds * 50;
    let mut pcm_l = [0i16; 160];
    let mut pcm_r = [0i16; 160];
    let wall = Instant::now();
    for i in 0..packets_per_stream {
        let now = t0 + Duration::from_millis(20 * u64::from(i) + u64::from(i % 3) * 5);
        for (k, (l, r)) in pcm_l.iter_mut().zip(pcm_r.iter_mut()).enumerate() {
            *l = ((i as usize * 160 + k) % 2000) as i16 - 1000;
            *r = -*l;
        }
        timeline.push(now, left, 0x1111_1111, 160u32.wrapping_mul(i), &pcm_l)?;
        timeline.push(
            now,
            right,
            0x2222_2222,
            12_345u32.wrapping_add(160 * i),
            &pcm_r,
        )?;
        if i % 5 == 0 {
            timeline.advance(now)?;
        }
    }
    let end = t0 + Duration::from_secs(u64::from(seconds));
    let stats = timeline.finish(end)?;
    let elapsed = wall.elapsed();

    let packets = u64::from(packets_per_stream) * 2;
    let file_len = std::fs::metadata(&path)?.len();
    println!(
        "{seconds} s of 2 x 20 ms streams: {packets} packets, {} frames, {:.1} MB WAV",
        stats.duration_samples,
        file_len as f64 / 1e6
    );
    println!(
        "{:.3} s wall: {:.0} packets/s, {:.0} ns/packet, {:.0}x real time",
        elapsed.as_secs_f64(),
        packets as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / packets as f64,
        f64::from(seconds) / elapsed.as_secs_f64()
    );
    let check = hound::WavReader::open(&path)?;
    assert_eq!(u64::from(check.duration()), stats.duration_samples);
    Ok(())
}
