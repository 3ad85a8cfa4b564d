//! One live recording as the SIP driver sees it: its spool entry, metadata, channel plan and
//! pauses, and the controls that run its media session on a shard (the `media` module). The
//! per-packet decisions are [`siprec_recorder::session::MediaSession`]'s; file operations run
//! on the spool worker (the `spool_io` module); this module decides neither.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siprec_core::channels::ChannelPlan;
use siprec_core::{SessionId, StreamPlan};
use siprec_recorder::session::{
    MediaSession, Payload, SessionConfig, SessionReport, StreamReport, StreamSetup,
};
use siprec_recorder::{TimelineConfig, WavSpoolWriter};
use siprec_rtp::Codec;
use siprec_storage::{
    ChannelInfo, ChannelMapping, Manifest, ParticipantInfo, PauseInterval, StreamInfo,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Span;

use crate::media::{Control, MediaNote, ShardHandle};
use crate::ports::PortPool;
use crate::spool::{format_time, Journal, SpoolEntry};
use crate::spool_io::SpoolIo;

/// Recording settings from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct RecordingConfig {
    /// No RTP for this long (not paused) ends the session.
    pub media_timeout: Duration,
    /// Timeline jitter window.
    pub jitter: Duration,
    /// Spool checkpoint interval.
    pub checkpoint: Duration,
    /// Media clock speed.
    pub media_clock_rate: f64,
    /// Latch each stream on the first RTP source (else: only the SDP's address).
    pub rtp_latching: bool,
    /// WAV sample rate; 0 picks 16000 when any stream's codec is wideband, else 8000.
    pub recording_rate: u32,
}

/// The report a shard sends back when a session finishes.
pub(crate) type FinishReply = oneshot::Receiver<Result<SessionReport, siprec_recorder::Error>>;

/// What the driver keeps per recording.
#[derive(Debug)]
pub struct Recording {
    /// The recording session in the SRS core.
    pub id: SessionId,
    /// SIP Call-ID of the recording session's dialog; the storage key's last fallback (see
    /// [`recording_key`]).
    pub call_id: String,
    /// The `recording` tracing span (session id, Call-ID) of the driver's and the shard's log
    /// lines about this recording.
    pub span: Span,
    /// The spool directory: WAV, metadata documents, journal.
    pub spool: SpoolEntry,
    /// Wall-clock start, written to the journal and the manifest.
    pub start_utc: time::OffsetDateTime,
    start: Instant,
    /// Pauses in seconds since the start (wall clock), for the journal; the final manifest
    /// takes the timeline's exact ones.
    pause_log: Vec<(f64, Option<f64>)>,
    paused: bool,
    /// The streams as the offers described them, for the journal (the packet figures are the
    /// shard's and come with the final report).
    streams: Vec<StreamReport>,
    /// m-lines whose socket went to the shard.
    receiving: Vec<usize>,
    shard: ShardHandle,
    /// Set by the spool worker once the session is open on its shard.
    opened: Arc<AtomicBool>,
    /// The metadata documents (RFC 7865) as received, in order, byte for byte.
    pub metadata_docs: Vec<Vec<u8>>,
    /// Parse problems of those documents (they are stored all the same).
    pub metadata_errors: Vec<String>,
    /// The current metadata state (complete document plus partial updates), if any.
    pub metadata: Option<rs_metadata::Recording>,
    /// Which stream goes to which WAV channel, and the participants heard on each.
    pub channels: ChannelPlan,
    /// The WAV's sample rate, in Hz (see [`recording_rate`]).
    pub sample_rate: u32,
}

/// The session's view of the offered streams.
fn setups(plans: &[StreamPlan]) -> Vec<StreamSetup> {
    plans
        .iter()
        .map(|p| {
            let formats = match (&p.format, p.formats.is_empty()) {
                (Some(f), true) => std::slice::from_ref(f),
                (Some(_), false) => &p.formats[..],
                (None, _) => &[],
            };
            StreamSetup {
                index: p.index,
                label: p.label.clone(),
                channel: p.channel,
                remote_ip: p.remote.map(|a| a.ip()),
                payloads: formats
                    .iter()
                    .map(|f| Payload::new(f.payload_type, &f.encoding, f.clock_rate))
                    .collect(),
                srtp: p.srtp.clone(),
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
impl Recording {
    /// Prepares a recording without touching the disk, and returns the job that creates its
    /// spool entry and WAV file and starts its media session on `shard` — for the spool
    /// worker. If that fails, the job reports [`MediaNote::StartFailed`] on `notes`.
    pub(crate) fn start(
        id: SessionId,
        call_id: String,
        spool_dir: &std::path::Path,
        now: Instant,
        streams: &[StreamPlan],
        channels: ChannelPlan,
        paused: bool,
        pool: &PortPool,
        rc: RecordingConfig,
        shard: ShardHandle,
        notes: mpsc::UnboundedSender<MediaNote>,
    ) -> (Recording, impl FnOnce() + Send + 'static) {
        let span = tracing::info_span!("recording", session = id.0, call_id = %call_id);
        let spool = SpoolEntry::named_in(spool_dir);
        let sample_rate = recording_rate(rc.recording_rate, streams);
        let config = SessionConfig {
            media_timeout: rc.media_timeout,
            timeline: TimelineConfig {
                jitter_window: rc.jitter,
                checkpoint_interval: rc.checkpoint,
                sample_rate,
                ..TimelineConfig::default()
            },
            media_clock_rate: rc.media_clock_rate,
            rtp_latching: rc.rtp_latching,
        };
        let mut rec = Recording {
            id,
            call_id,
            span: span.clone(),
            spool: spool.clone(),
            start_utc: time::OffsetDateTime::now_utc(),
            start: now,
            pause_log: if paused {
                vec![(0.0, None)]
            } else {
                Vec::new()
            },
            paused,
            streams: Vec::new(),
            receiving: Vec::new(),
            shard: shard.clone(),
            opened: Arc::new(AtomicBool::new(false)),
            metadata_docs: Vec::new(),
            metadata_errors: Vec::new(),
            metadata: None,
            channels,
            sample_rate,
        };
        let setups = setups(streams);
        rec.mirror(&setups);
        let sockets = rec.take_sockets(streams, pool);
        let opened = Arc::clone(&rec.opened);
        let job = move || {
            let started = spool
                .create_dirs()
                .map_err(|e| format!("spool directory {}: {e}", spool.dir.display()))
                .and_then(|()| {
                    let path = spool.audio();
                    WavSpoolWriter::create(&path, sample_rate)
                        .map_err(|e| format!("spool file {}: {e}", path.display()))
                })
                .and_then(|wav| {
                    MediaSession::new(now, config, Box::new(wav), paused)
                        .map_err(|e| format!("media session: {e}"))
                });
            match started {
                Ok(mut session) => {
                    session.update(now, &setups, paused);
                    shard.send(Control::Open {
                        id,
                        session: Box::new(session),
                        sockets,
                        span,
                    });
                    opened.store(true, Ordering::Release);
                }
                Err(e) => {
                    let _ = notes.send(MediaNote::StartFailed(id, e));
                }
            }
        };
        (rec, job)
    }

    /// Takes the pool's sockets of recorded streams that have none yet.
    fn take_sockets(
        &mut self,
        plans: &[StreamPlan],
        pool: &PortPool,
    ) -> Vec<(usize, std::net::UdpSocket)> {
        let mut out = Vec::new();
        for p in plans {
            if p.channel.is_none() || self.receiving.contains(&p.index) {
                continue;
            }
            if let Some(sock) = p.local_port.and_then(|port| pool.take_socket(port)) {
                self.receiving.push(p.index);
                out.push((p.index, sock));
            }
        }
        out
    }

    /// Keeps the journal's view of the streams up to date.
    fn mirror(&mut self, setups: &[StreamSetup]) {
        for p in setups {
            let i = match self.streams.iter().position(|s| s.index == p.index) {
                Some(i) => i,
                None => {
                    self.streams.push(StreamReport {
                        index: p.index,
                        label: p.label.clone(),
                        channel: p.channel,
                        codecs: Vec::new(),
                        rtp: Default::default(),
                        late: 0,
                        foreign: 0,
                        srtp: false,
                        auth_failed: 0,
                    });
                    self.streams.len() - 1
                }
            };
            let s = &mut self.streams[i];
            s.srtp = p.srtp.is_some();
            if let Some(name) = p.payloads.first().map(Payload::name) {
                if !s.codecs.contains(&name) {
                    s.codecs.push(name);
                }
            }
        }
    }

    /// Gives `control` to the recording's media session: straight to its shard once the
    /// session is open there (the shard's queue keeps the order), else behind the spool job
    /// that opens it.
    pub(crate) fn send_media(&self, spool_io: &SpoolIo, control: Control) {
        if self.opened.load(Ordering::Acquire) {
            self.shard.send(control);
        } else {
            let shard = self.shard.clone();
            spool_io.run(move || {
                shard.send(control);
            });
        }
    }

    /// Applies a (new) media plan: returns the control that gives it to the media session
    /// (new streams start receiving, codecs, keys and the pause state change).
    pub(crate) fn apply_plans(
        &mut self,
        now: Instant,
        plans: &[StreamPlan],
        paused: bool,
        pool: &PortPool,
    ) -> Control {
        let setups = setups(plans);
        self.mirror(&setups);
        let sockets = self.take_sockets(plans, pool);
        if self.paused != paused {
            self.paused = paused;
            let at = now.saturating_duration_since(self.start).as_secs_f64();
            if paused {
                self.pause_log.push((at, None));
            } else if let Some(last) = self.pause_log.last_mut() {
                last.1.get_or_insert(at);
            }
        }
        Control::Update {
            id: self.id,
            now,
            setups,
            paused,
            sockets,
        }
    }

    /// The control that ends the media session at `now`, and where its report will come.
    pub(crate) fn finish_control(&self, now: Instant) -> (Control, FinishReply) {
        let (reply, rx) = oneshot::channel();
        (
            Control::Finish {
                id: self.id,
                now,
                reply,
            },
            rx,
        )
    }

    /// The final manifest from the session's report.
    pub fn final_manifest(
        &self,
        report: &SessionReport,
        ended_by: &str,
        instance_id: &str,
    ) -> Manifest {
        self.manifest(
            &report.streams,
            Some(&report.timeline),
            ended_by,
            instance_id,
        )
    }

    /// The journal: the manifest as far as it is known now, for crash recovery.
    pub fn journal(&self, instance_id: &str) -> Journal {
        Journal {
            version: 1,
            start_utc: format_time(self.start_utc),
            manifest: self.manifest(&self.streams, None, "recovered", instance_id),
        }
    }

    /// The manifest from the current state; `stats` when the timeline has finished.
    fn manifest(
        &self,
        reports: &[StreamReport],
        stats: Option<&siprec_recorder::TimelineStats>,
        ended_by: &str,
        instance_id: &str,
    ) -> Manifest {
        let md = self.metadata.as_ref();
        let stop_utc = time::OffsetDateTime::now_utc();
        let rate = self.sample_rate.max(1) as f64;
        let (key, key_source, recording_id) = recording_key(md, &self.call_id);
        let streams = reports
            .iter()
            .map(|s| StreamInfo {
                index: s.index,
                label: s.label.clone(),
                stream_id: s.label.as_deref().and_then(|l| {
                    md.and_then(|m| m.stream_by_label(l))
                        .map(|st| st.stream_id.clone())
                }),
                channel: s.channel,
                codecs: s.codecs.clone(),
                packets_received: s.rtp.received,
                packets_lost: s.rtp.lost,
                packets_duplicated: s.rtp.duplicated,
                packets_reordered: s.rtp.reordered,
                packets_late: s.late,
                ssrc_changes: s.rtp.ssrc_changes,
                packets_foreign: s.foreign,
                srtp: s.srtp,
                packets_auth_failed: s.auth_failed,
            })
            .collect();
        let participants = md
            .map(|m| {
                m.participants
                    .iter()
                    .map(|p| {
                        let (name, aor) = m.participant_display(&p.participant_id);
                        ParticipantInfo {
                            id: p.participant_id.clone(),
                            name,
                            aor,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut left = ChannelInfo {
            participants: self.channels.left_participants.clone(),
            streams: Vec::new(),
        };
        let mut right = ChannelInfo {
            participants: self.channels.right_participants.clone(),
            streams: Vec::new(),
        };
        for s in reports {
            match s.channel {
                Some(0) => left.streams.push(s.index),
                Some(_) => right.streams.push(s.index),
                None => {}
            }
        }
        let pauses = match stats {
            Some(st) => st
                .pauses
                .iter()
                .map(|(a, b)| PauseInterval {
                    start: *a as f64 / rate,
                    end: *b as f64 / rate,
                })
                .collect(),
            // Journal: an open pause has end 0 (recovery closes it at the end of the audio).
            None => self
                .pause_log
                .iter()
                .map(|(a, b)| PauseInterval {
                    start: *a,
                    end: b.unwrap_or(0.0),
                })
                .collect(),
        };
        let duration_samples = stats.map(|s| s.duration_samples).unwrap_or(0);
        Manifest {
            recording_key: key,
            recording_key_source: key_source.into(),
            recording_id,
            call_id: self.call_id.clone(),
            complete: stats.is_some(),
            instance_id: instance_id.to_string(),
            session_ids: md
                .map(|m| m.sessions.iter().map(|s| s.session_id.clone()).collect())
                .unwrap_or_default(),
            sip_session_ids: md
                .map(|m| {
                    m.sessions
                        .iter()
                        .flat_map(|s| s.sip_session_ids.iter().cloned())
                        .collect()
                })
                .unwrap_or_default(),
            participants,
            channels: ChannelMapping {
                left,
                right,
                reason: self.channels.reason.clone(),
            },
            streams,
            start_time: format_time(self.start_utc),
            stop_time: if stats.is_some() {
                format_time(stop_utc)
            } else {
                String::new()
            },
            pauses,
            sample_rate: self.sample_rate,
            duration_samples,
            duration_seconds: duration_samples as f64 / rate,
            ended_by: ended_by.to_string(),
            metadata_documents: (1..=self.metadata_docs.len())
                .map(|i| format!("metadata/{i:04}.xml"))
                .collect(),
            metadata_errors: self.metadata_errors.clone(),
        }
    }
}

/// The recording key: Recording ID from the metadata, else the RS session id, else the
/// Call-ID. Returns (key, source, raw recording id). Sanitised later by the storage crate.
pub fn recording_key(
    md: Option<&rs_metadata::Recording>,
    call_id: &str,
) -> (String, &'static str, Option<String>) {
    if let Some(id) = md.and_then(|m| m.recording_id()) {
        return (id.clone(), "recording_id", Some(id));
    }
    if let Some(s) = md.and_then(|m| m.sessions.first()) {
        if !s.session_id.trim().is_empty() {
            return (s.session_id.clone(), "session_id", None);
        }
    }
    (call_id.to_string(), "call_id", None)
}

/// The WAV rate: the configured one, else 16 kHz when any recorded stream is wideband
/// (G.722, Opus), else 8 kHz.
pub fn recording_rate(configured: u32, streams: &[StreamPlan]) -> u32 {
    if configured != 0 {
        return configured;
    }
    let wideband = streams.iter().any(|p| {
        p.channel.is_some()
            && p.format
                .as_ref()
                .is_some_and(|f| Codec::from_encoding(&f.encoding).is_wideband())
    });
    if wideband {
        16000
    } else {
        8000
    }
}
