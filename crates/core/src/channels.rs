//! Which recorded stream goes to which channel of the stereo file.
//!
//! Order of trust (siprec-notes §4): participantstreamassoc `send` → stream → label → m-line;
//! else m-line order (first = left). Two participants with more than two streams: each
//! participant's streams are mixed into that participant's channel. More than two
//! participants: left = first participant, right = mix of the others.

use rs_metadata::Recording;
use siprec_sdp::SessionDescription;

/// The channel assignment of a recording session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelPlan {
    /// Per m-line index: the channel (0 left, 1 right), or `None` when not recorded.
    pub channel_of: Vec<Option<u8>>,
    /// Participant ids on the left channel.
    pub left_participants: Vec<String>,
    /// Participant ids on the right channel.
    pub right_participants: Vec<String>,
    /// Why this mapping (written to recording.json).
    pub reason: String,
}

impl ChannelPlan {
    /// Adds to each channel every participant the metadata says sends one of its streams
    /// (RFC 7865 §5.4: participantstreamassoc `send` → stream → label → m-line), keeping
    /// those already listed: after a transfer a channel lists both parties it carried.
    pub fn add_heard(&mut self, offer: &SessionDescription, md: &Recording) {
        let mut heard: Vec<(u8, String)> = Vec::new();
        for (i, ch) in self.channel_of.iter().enumerate() {
            let Some(ch) = ch else { continue };
            let Some(label) = offer.media.get(i).and_then(|m| m.label.as_deref()) else {
                continue;
            };
            let Some(stream) = md.stream_by_label(label) else {
                continue;
            };
            for a in &md.participant_stream_assocs {
                if a.send.iter().any(|s| s.trim() == stream.stream_id) {
                    heard.push((*ch, a.participant_id.clone()));
                }
            }
        }
        for (ch, pid) in heard {
            let list = if ch == 0 {
                &mut self.left_participants
            } else {
                &mut self.right_participants
            };
            if !list.contains(&pid) {
                list.push(pid);
            }
        }
    }
}

/// Maps the accepted m-lines of `offer` (`accepted[i]`) to channels.
pub fn map_channels(
    offer: &SessionDescription,
    accepted: &[bool],
    metadata: Option<&Recording>,
) -> ChannelPlan {
    let recorded: Vec<usize> = (0..offer.media.len())
        .filter(|&i| accepted.get(i).copied().unwrap_or(false))
        .collect();
    let n = offer.media.len();
    if let Some(md) = metadata {
        match by_metadata(offer, &recorded, md) {
            Ok(plan) => return plan,
            Err(why) => {
                let mut plan = by_order(n, &recorded);
                plan.reason = format!("m-line order ({why})");
                return plan;
            }
        }
    }
    let mut plan = by_order(n, &recorded);
    plan.reason = "m-line order (no metadata)".into();
    plan
}

fn by_order(n: usize, recorded: &[usize]) -> ChannelPlan {
    let mut channel_of = vec![None; n];
    for (k, &i) in recorded.iter().enumerate() {
        channel_of[i] = Some(if k == 0 { 0 } else { 1 });
    }
    ChannelPlan {
        channel_of,
        ..ChannelPlan::default()
    }
}

/// Why the metadata cannot place the recorded streams: the SRC's SDP and metadata do not
/// agree (RFC 7866 §8.1: a stream's `a=label` names its `<stream>`; RFC 7865 §5.4:
/// participantstreamassoc `send` names its sender). The mapping falls back to m-line order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoMapping {
    /// No m-line is recorded.
    #[error("no recorded stream")]
    RecordedStream,
    /// A recorded m-line without `a=label`.
    #[error("m-line {0} has no a=label")]
    Label(usize),
    /// A label no `<stream>` carries.
    #[error("no <stream> with label {0:?}")]
    Stream(String),
    /// A stream no participant sends.
    #[error("no participant sends stream {0:?}")]
    Sender(String),
}

fn by_metadata(
    offer: &SessionDescription,
    recorded: &[usize],
    md: &Recording,
) -> Result<ChannelPlan, NoMapping> {
    if recorded.is_empty() {
        return Err(NoMapping::RecordedStream);
    }
    // Sender participant of each recorded m-line.
    let mut sender_of = Vec::with_capacity(recorded.len());
    for &i in recorded {
        let m = &offer.media[i];
        let label = m.label.as_deref().ok_or(NoMapping::Label(i))?;
        let stream = md
            .stream_by_label(label)
            .ok_or_else(|| NoMapping::Stream(label.to_string()))?;
        let sender = md
            .sender_of_stream(&stream.stream_id)
            .ok_or_else(|| NoMapping::Sender(stream.stream_id.clone()))?;
        sender_of.push((i, sender.to_string()));
    }
    // Participants in document order, keeping only those who send a recorded stream.
    let mut order: Vec<String> = Vec::new();
    for p in &md.participants {
        if sender_of.iter().any(|(_, s)| s == &p.participant_id)
            && !order.contains(&p.participant_id)
        {
            order.push(p.participant_id.clone());
        }
    }
    for (_, s) in &sender_of {
        if !order.contains(s) {
            order.push(s.clone());
        }
    }
    let mut plan = ChannelPlan {
        channel_of: vec![None; offer.media.len()],
        ..ChannelPlan::default()
    };
    for (i, s) in &sender_of {
        let ch = if Some(s) == order.first() { 0 } else { 1 };
        plan.channel_of[*i] = Some(ch);
    }
    plan.left_participants = order.first().cloned().into_iter().collect();
    plan.right_participants = order.iter().skip(1).cloned().collect();
    plan.reason = match order.len() {
        1 => "participantstreamassoc send -> stream -> label -> m-line (one sending participant; right channel silent)".into(),
        2 => "participantstreamassoc send -> stream -> label -> m-line".into(),
        k => format!(
            "participantstreamassoc send -> stream -> label -> m-line ({k} participants: left = first, right = mix of the others)"
        ),
    };
    Ok(plan)
}
