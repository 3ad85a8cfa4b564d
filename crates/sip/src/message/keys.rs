//! Transaction keys.

use super::*;

/// Identifies a transaction: branch of the top Via, method, and (server side) sent-by.
///
/// - Server side (RFC 3261 §17.2.3): branch + sent-by + method, where an ACK takes the method
///   `INVITE` so that the ACK for a non-2xx final response finds its INVITE transaction.
/// - Client side (RFC 3261 §17.1.3): branch + CSeq method; `sent_by` is empty.
///
/// A top Via without a branch (RFC 2543 peers) gets a stand-in branch made of Call-ID, CSeq
/// number and From tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxKey {
    /// Branch parameter (or the RFC 2543 stand-in).
    pub branch: String,
    /// Method (`INVITE` for ACK on the server side).
    pub method: Method,
    /// Top Via sent-by, lowercased (empty for client keys).
    pub sent_by: String,
}

impl Hash for TxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        std::mem::discriminant(&self.method).hash(state);
        self.sent_by.hash(state);
    }
}

impl std::fmt::Display for TxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sent_by.is_empty() {
            write!(f, "{} {}", self.method, self.branch)
        } else {
            write!(f, "{} {} {}", self.method, self.branch, self.sent_by)
        }
    }
}

pub(super) fn branch_or_stand_in(headers: &Headers, via: &TopVia) -> Option<String> {
    if let Some(b) = &via.branch {
        return Some(b.clone());
    }
    let call_id = call_id(headers)?;
    let (seq, _) = cseq(headers)?;
    let from_tag = from_tag(headers).unwrap_or_default();
    Some(format!("rfc2543:{call_id}:{seq}:{from_tag}"))
}

impl TxKey {
    /// The server-transaction key of a received request (RFC 3261 §17.2.3).
    pub fn for_request(req: &Request) -> Option<TxKey> {
        let via = top_via(&req.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&req.headers, &via)?,
            method: match req.method {
                Method::Ack => Method::Invite,
                m => m,
            },
            sent_by: via.sent_by.to_ascii_lowercase(),
        })
    }

    /// The client-transaction key of a request we send (RFC 3261 §17.1.3).
    pub fn for_sent_request(req: &Request) -> Option<TxKey> {
        let via = top_via(&req.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&req.headers, &via)?,
            method: req.method,
            sent_by: String::new(),
        })
    }

    /// The client-transaction key a received response belongs to (RFC 3261 §17.1.3).
    pub fn for_response(resp: &Response) -> Option<TxKey> {
        let via = top_via(&resp.headers)?;
        let (_, method) = cseq(&resp.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&resp.headers, &via)?,
            method,
            sent_by: String::new(),
        })
    }
}
