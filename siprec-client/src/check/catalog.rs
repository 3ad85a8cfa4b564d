//! The catalogue of checks: one [`Check`] per rule, with its wire id (what the text, JSON and
//! JUnit reports print), the rule it comes from and a few words on what it looks at, and the
//! [`Group`] (the file of `check/` that runs it). [`Check::ALL`] is the report order.

use std::fmt;

/// One check of the battery. Every result the runner records names one of these, so a check
/// that does not exist cannot be recorded; [`Check::id`] is the stable id reports and scripts
/// compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// `tls`: over `sips:` the TLS connection comes up and the SRS's certificate verifies for
    /// the URI's host (RFC 3261 §26.2.2, RFC 5922). SKIP for a `sip:` URI.
    Tls,
    /// `options`: an OPTIONS outside any dialog gets a 2xx, as an INVITE would
    /// (RFC 3261 §11.2).
    Options,
    /// `invite`: a SIPREC INVITE (Require: siprec, `+sip.src`, SDP offer and metadata in a
    /// multipart body) is accepted with a 2xx (RFC 7866 §6.1.1, §6.2).
    Invite,
    /// `answer-sdp`: the 2xx to an INVITE that carried the offer carries the SDP answer
    /// (RFC 3261 §13.3.1.4).
    AnswerSdp,
    /// `answer-mlines`: the answer has the offer's m-lines, in the offer's order, with any
    /// repeated `a=label` on its own m-line (RFC 3264 §6).
    AnswerMlines,
    /// `answer-direction`: every accepted stream of the answer is `recvonly` or `inactive`
    /// (RFC 3264 §6.1, RFC 7866 §7.2: the SRS receives only).
    AnswerDirection,
    /// `answer-codec`: each accepted stream's first audio codec is one the offer listed
    /// (RFC 3264 §6.1).
    AnswerCodec,
    /// `answer-ports`: each stream has a connection address and a non-zero, unprivileged
    /// port (RFC 3264 §6).
    AnswerPorts,
    /// `contact`: the 2xx has a Contact, with the `+sip.srs` feature tag
    /// (RFC 3261 §12.1.1, RFC 7866 §6.2; WARN without the tag).
    Contact,
    /// `audio`: RTP sent to the answered ports is taken: no ICMP port-unreachable, no BYE from
    /// the SRS while it streams (RFC 7866 §8).
    Audio,
    /// `ack`: the SRS takes our ACK: no copy of its 2xx arrives well after the ACK
    /// (RFC 3261 §13.3.1.4).
    Ack,
    /// `pause`: a re-INVITE with every stream `a=inactive` is accepted, and the answer keeps
    /// them inactive (RFC 7866 §7.1.1.2).
    Pause,
    /// `resume`: a re-INVITE with `a=sendonly` again is accepted with `a=recvonly` streams
    /// (RFC 7866 §7.1.1.2; WARN when recording stays inactive).
    Resume,
    /// `session-refresh`: a re-INVITE repeating the last offer is accepted
    /// (RFC 4028 §9, RFC 3261 §14.2).
    SessionRefresh,
    /// `metadata-update`: an UPDATE carrying only a full metadata document is accepted
    /// (RFC 7866 §9, RFC 3311 §5.2).
    MetadataUpdate,
    /// `partial-metadata`: an UPDATE carrying a partial metadata document (changes only) is
    /// accepted (RFC 7866 §9, RFC 7865).
    PartialMetadata,
    /// `bye`: BYE ends the recording session with a 2xx (RFC 3261 §15.1.2).
    Bye,
    /// `large-udp`: a SIPREC INVITE over 1300 bytes is accepted over UDP (RFC 3261 §18.1.1).
    LargeUdp,
    /// `large-tcp`: a SIPREC INVITE over 1300 bytes is accepted over TCP
    /// (RFC 3261 §18.1.1, §18.2.1).
    LargeTcp,
    /// `no-require`: an INVITE without `Require: siprec` gets a 2xx or a 420, nothing else
    /// (RFC 7866 §6.1.1, RFC 3261 §8.2.2.3).
    NoRequire,
    /// `cancel`: a CANCEL before the answer ends the INVITE with a 487 (or the 2xx came
    /// first) (RFC 3261 §9.2).
    Cancel,
    /// `garbage-body`: an INVITE whose body is no multipart document is refused with a 4xx
    /// (RFC 3261 §8.2.3, §13.3.1.3).
    GarbageBody,
    /// `unknown-dialog`: a BYE for a dialog the SRS never had gets a 481 (RFC 3261 §12.2.2).
    UnknownDialog,
    /// `parallel`: every one of [`CheckConfig::sessions`](super::CheckConfig::sessions)
    /// recording sessions opened at once is accepted (the Call Recording Node opens one RS
    /// per recorded call).
    Parallel,
}

/// The families of checks; each is run by the file of `check/` of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Reaching the SRS (`transport.rs`): TLS, OPTIONS, an INVITE too large for UDP's MTU.
    Transport,
    /// The SIPREC INVITE and its answer (`invite.rs`), and INVITEs the SRS should refuse or
    /// may accept (no `Require: siprec`, a broken body).
    Invite,
    /// RTP to the answered ports (`media.rs`).
    Media,
    /// Requests in an established recording session (`dialog.rs`): pause, resume, session
    /// refresh, metadata UPDATEs, BYE.
    Dialog,
    /// Transaction and dialog matching (`transaction.rs`): ACK, CANCEL, a request in an
    /// unknown dialog.
    Transaction,
    /// Several recording sessions at once (`parallel.rs`).
    Parallel,
}

impl Group {
    /// `transport`, `invite`, `media`, `dialog`, `transaction`, `parallel`.
    pub fn name(self) -> &'static str {
        match self {
            Group::Transport => "transport",
            Group::Invite => "invite",
            Group::Media => "media",
            Group::Dialog => "dialog",
            Group::Transaction => "transaction",
            Group::Parallel => "parallel",
        }
    }
}

impl Check {
    /// Every check, in the order the battery runs them and the reports list them.
    pub const ALL: &'static [Check] = &[
        Check::Tls,
        Check::Options,
        Check::Invite,
        Check::AnswerSdp,
        Check::AnswerMlines,
        Check::AnswerDirection,
        Check::AnswerCodec,
        Check::AnswerPorts,
        Check::Contact,
        Check::Audio,
        Check::Ack,
        Check::Pause,
        Check::Resume,
        Check::SessionRefresh,
        Check::MetadataUpdate,
        Check::PartialMetadata,
        Check::Bye,
        Check::LargeUdp,
        Check::LargeTcp,
        Check::NoRequire,
        Check::Cancel,
        Check::GarbageBody,
        Check::UnknownDialog,
        Check::Parallel,
    ];

    /// The stable identifier (`answer-direction`, `bye`…) the reports print.
    pub fn id(self) -> &'static str {
        match self {
            Check::Tls => "tls",
            Check::Options => "options",
            Check::Invite => "invite",
            Check::AnswerSdp => "answer-sdp",
            Check::AnswerMlines => "answer-mlines",
            Check::AnswerDirection => "answer-direction",
            Check::AnswerCodec => "answer-codec",
            Check::AnswerPorts => "answer-ports",
            Check::Contact => "contact",
            Check::Audio => "audio",
            Check::Ack => "ack",
            Check::Pause => "pause",
            Check::Resume => "resume",
            Check::SessionRefresh => "session-refresh",
            Check::MetadataUpdate => "metadata-update",
            Check::PartialMetadata => "partial-metadata",
            Check::Bye => "bye",
            Check::LargeUdp => "large-udp",
            Check::LargeTcp => "large-tcp",
            Check::NoRequire => "no-require",
            Check::Cancel => "cancel",
            Check::GarbageBody => "garbage-body",
            Check::UnknownDialog => "unknown-dialog",
            Check::Parallel => "parallel",
        }
    }

    /// Where the rule comes from (`RFC 3264 §6.1`), or `node: …` for what the Call Recording
    /// Node needs.
    pub fn rule(self) -> &'static str {
        match self {
            Check::Tls => "RFC 3261 §26.2.2, RFC 5922",
            Check::Options => "RFC 3261 §11.2",
            Check::Invite => "RFC 7866 §6.1.1, §6.2",
            Check::AnswerSdp => "RFC 3261 §13.3.1.4",
            Check::AnswerMlines => "RFC 3264 §6",
            Check::AnswerDirection => "RFC 3264 §6.1, RFC 7866 §7.2",
            Check::AnswerCodec => "RFC 3264 §6.1",
            Check::AnswerPorts => "RFC 3264 §6",
            Check::Contact => "RFC 3261 §12.1.1, RFC 7866 §6.2",
            Check::Audio => "RFC 7866 §8",
            Check::Ack => "RFC 3261 §13.3.1.4",
            Check::Pause => "RFC 7866 §7.1.1.2",
            Check::Resume => "RFC 7866 §7.1.1.2",
            Check::SessionRefresh => "RFC 4028 §9, RFC 3261 §14.2",
            Check::MetadataUpdate => "RFC 7866 §9, RFC 3311 §5.2",
            Check::PartialMetadata => "RFC 7866 §9, RFC 7865",
            Check::Bye => "RFC 3261 §15.1.2",
            Check::LargeUdp => "RFC 3261 §18.1.1",
            Check::LargeTcp => "RFC 3261 §18.1.1, §18.2.1",
            Check::NoRequire => "RFC 7866 §6.1.1, RFC 3261 §8.2.2.3",
            Check::Cancel => "RFC 3261 §9.2",
            Check::GarbageBody => "RFC 3261 §8.2.3, §13.3.1.3",
            Check::UnknownDialog => "RFC 3261 §12.2.2",
            Check::Parallel => "node: one RS per recorded call",
        }
    }

    /// What is checked, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Check::Tls => "TLS connection, certificate verified",
            Check::Options => "OPTIONS answered",
            Check::Invite => "SIPREC INVITE accepted",
            Check::AnswerSdp => "2xx carries an SDP answer",
            Check::AnswerMlines => "answer keeps m-line count and order",
            Check::AnswerDirection => "each stream recvonly or inactive",
            Check::AnswerCodec => "codec chosen from the offer",
            Check::AnswerPorts => "usable address and ports",
            Check::Contact => "Contact present, with +sip.srs",
            Check::Audio => "RTP taken: no ICMP unreachable, no BYE",
            Check::Ack => "ACK taken: the 2xx is not retransmitted after it",
            Check::Pause => "pause re-INVITE (a=inactive) accepted",
            Check::Resume => "resume re-INVITE (a=sendonly) accepted",
            Check::SessionRefresh => "session refresh re-INVITE accepted",
            Check::MetadataUpdate => "metadata-only UPDATE accepted",
            Check::PartialMetadata => "partial metadata document accepted",
            Check::Bye => "BYE answered 2xx",
            Check::LargeUdp => "INVITE over 1300 bytes over UDP",
            Check::LargeTcp => "INVITE over 1300 bytes over TCP",
            Check::NoRequire => "INVITE without Require: siprec",
            Check::Cancel => "CANCEL before the answer",
            Check::GarbageBody => "garbage body refused with a 4xx",
            Check::UnknownDialog => "request in an unknown dialog gets 481",
            Check::Parallel => "parallel sessions all accepted",
        }
    }

    /// The family the check belongs to (and the file that runs it).
    pub fn group(self) -> Group {
        match self {
            Check::Tls | Check::Options | Check::LargeUdp | Check::LargeTcp => Group::Transport,
            Check::Invite
            | Check::AnswerSdp
            | Check::AnswerMlines
            | Check::AnswerDirection
            | Check::AnswerCodec
            | Check::AnswerPorts
            | Check::Contact
            | Check::NoRequire
            | Check::GarbageBody => Group::Invite,
            Check::Audio => Group::Media,
            Check::Pause
            | Check::Resume
            | Check::SessionRefresh
            | Check::MetadataUpdate
            | Check::PartialMetadata
            | Check::Bye => Group::Dialog,
            Check::Ack | Check::Cancel | Check::UnknownDialog => Group::Transaction,
            Check::Parallel => Group::Parallel,
        }
    }
}

/// The id, as the reports print it.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_id_is_unique_and_every_check_has_a_rule_and_a_title() {
        let mut ids = HashSet::new();
        for c in Check::ALL {
            assert!(!c.id().is_empty(), "{c:?}");
            assert!(ids.insert(c.id()), "duplicate id {}", c.id());
            assert!(
                c.rule().starts_with("RFC ") || c.rule().starts_with("node: "),
                "{c}: {}",
                c.rule()
            );
            assert!(!c.title().is_empty(), "{c}");
            assert!(!c.group().name().is_empty(), "{c}");
        }
        assert_eq!(Check::Bye.to_string(), "bye");
    }

    #[test]
    fn all_holds_each_variant_once_in_declaration_order() {
        // Exhaustive on purpose (no `_` arm): a new variant does not compile until it is
        // named here, and then in `EVERY`, which is compared with `ALL` below.
        fn named(c: Check) {
            match c {
                Check::Tls
                | Check::Options
                | Check::Invite
                | Check::AnswerSdp
                | Check::AnswerMlines
                | Check::AnswerDirection
                | Check::AnswerCodec
                | Check::AnswerPorts
                | Check::Contact
                | Check::Audio
                | Check::Ack
                | Check::Pause
                | Check::Resume
                | Check::SessionRefresh
                | Check::MetadataUpdate
                | Check::PartialMetadata
                | Check::Bye
                | Check::LargeUdp
                | Check::LargeTcp
                | Check::NoRequire
                | Check::Cancel
                | Check::GarbageBody
                | Check::UnknownDialog
                | Check::Parallel => {}
            }
        }
        const EVERY: [Check; 24] = [
            Check::Tls,
            Check::Options,
            Check::Invite,
            Check::AnswerSdp,
            Check::AnswerMlines,
            Check::AnswerDirection,
            Check::AnswerCodec,
            Check::AnswerPorts,
            Check::Contact,
            Check::Audio,
            Check::Ack,
            Check::Pause,
            Check::Resume,
            Check::SessionRefresh,
            Check::MetadataUpdate,
            Check::PartialMetadata,
            Check::Bye,
            Check::LargeUdp,
            Check::LargeTcp,
            Check::NoRequire,
            Check::Cancel,
            Check::GarbageBody,
            Check::UnknownDialog,
            Check::Parallel,
        ];
        for c in EVERY {
            named(c);
            let n = Check::ALL.iter().filter(|a| **a == c).count();
            assert_eq!(n, 1, "{c:?} is in Check::ALL {n} times");
        }
        assert_eq!(Check::ALL.len(), EVERY.len());
        // `ALL[i]` is the i-th declared variant: the report order is the declaration order.
        for (i, c) in Check::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
        let distinct: HashSet<Check> = Check::ALL.iter().copied().collect();
        assert_eq!(distinct.len(), Check::ALL.len());
    }
}
