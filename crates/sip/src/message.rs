//! SIP messages: parsing (with compact-form and Content-Length handling), printing, header
//! look-ups, responses built from requests, branch/tag generation and transaction keys.
//!
//! One parse per message: [`parse_message`] tokenises the bytes itself (sizes, unfolding,
//! compact names, Content-Length, mandatory headers, start line; the Request-URI through
//! [`crate::uri::SipUri`], IPv6 references included) and fills rsip's message types directly.
//! rsip holds and prints messages; it never parses received bytes.
//!
//! Everything is used as `siprec_sip::message::*`; the files: `parse` (bytes → rsip types),
//! `print`, `lookup` (header names ↔ rsip variants, look-ups by name, option-tag lists),
//! `values` (header values taken apart and the typed accessors), `response` (responses,
//! branches, tags, Call-IDs), `keys` (transaction keys).

use std::hash::{Hash, Hasher};

use rand::Rng;
pub use rsip;
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

use crate::error::{excerpt, Error};
use crate::uri::{parse_host_port, Host, SipUri, UriError};

/// Largest message [`parse_message`] accepts, in bytes (64 KiB, the largest UDP datagram).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Most header fields (after unfolding) a message may carry.
pub const MAX_HEADERS: usize = 256;

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Compact header forms: RFC 3261 §7.3.3 and the IANA SIP header registry.
const COMPACT_FORMS: [(&str, &str); 20] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("f", "From"),
    ("t", "To"),
    ("v", "Via"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("e", "Content-Encoding"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
    ("a", "Accept-Contact"),
    ("j", "Reject-Contact"),
    ("d", "Request-Disposition"),
    ("y", "Identity"),
    ("n", "Identity-Info"),
];

/// The long name of a compact header name (`"i"` → `"Call-ID"`, case-insensitive); any other
/// name is returned unchanged.
pub fn expand_compact_name(name: &str) -> &str {
    if name.len() == 1 {
        for (short, long) in COMPACT_FORMS {
            if short.eq_ignore_ascii_case(name) {
                return long;
            }
        }
    }
    name
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

mod keys;
mod lookup;
mod parse;
mod print;
mod response;
mod values;
pub use keys::*;
pub use lookup::*;
pub use parse::*;
pub use print::*;
pub use response::*;
pub use values::*;

#[cfg(test)]
mod tests;
