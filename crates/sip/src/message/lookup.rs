//! Header look-ups by name: the table between header names and rsip's variants,
//! [`header_values`], and the option-tag and method lists (Require, Supported, Unsupported,
//! Allow).

use super::*;

/// One table for both directions between rsip's named headers and their names: the
/// variant a received name is stored in ([`make_header`]) and the name a header prints with
/// ([`header_name_value`]).
macro_rules! named_headers {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The name (as printed) and raw value of any header, `Header::Other` included.
        pub fn header_name_value(h: &Header) -> (&str, &str) {
            match h {
                Header::Other(name, value) => (name.as_str(), value.as_str()),
                $(Header::$variant(inner) => ($name, inner.value()),)*
            }
        }

        /// The rsip header for a received name (long form, any case) and value. The value is
        /// stored as received (rsip's headers are text until `.typed()`); only the name chooses
        /// the variant.
        pub(super) fn make_header(name: &str, value: String) -> Header {
            $(if name.eq_ignore_ascii_case($name) {
                return Header::$variant(rsip::headers::$variant::new(value));
            })*
            Header::Other(name.to_string(), value)
        }
    };
}

named_headers!(
    Accept => "Accept",
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CSeq => "CSeq",
    CallId => "Call-ID",
    CallInfo => "Call-Info",
    Contact => "Contact",
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding",
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length",
    ContentType => "Content-Type",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event",
    Expires => "Expires",
    From => "From",
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    Organization => "Organization",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RecordRoute => "Record-Route",
    ReplyTo => "Reply-To",
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    Server => "Server",
    Subject => "Subject",
    SubscriptionState => "Subscription-State",
    Supported => "Supported",
    Timestamp => "Timestamp",
    To => "To",
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via",
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
);

/// The raw values of every header called `name` (case-insensitive; compact forms match their
/// long names), in message order. Works for rsip's named headers and `Header::Other` alike.
/// One entry per header line: comma-separated lists are not split.
pub fn header_values(headers: &Headers, name: &str) -> Vec<String> {
    let want = expand_compact_name(name);
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case(want))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The first value of the header called `name`, if any (see [`header_values`]).
pub fn header_value(headers: &Headers, name: &str) -> Option<String> {
    let want = expand_compact_name(name);
    headers
        .iter()
        .map(header_name_value)
        .find(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case(want))
        .map(|(_, v)| v.trim().to_string())
}

/// The option tags or methods of comma-separated headers such as Require, Supported, Allow
/// and Unsupported: every value of every such header, split on commas, trimmed, lowercased,
/// empties dropped.
pub fn header_tokens(headers: &Headers, name: &str) -> Vec<String> {
    header_values(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The option tags of Require (RFC 3261 §20.32), lowercased, from every Require header.
pub fn require(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Require")
}

/// The option tags of Supported (`k` in compact form, RFC 3261 §20.37), lowercased.
pub fn supported(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Supported")
}

/// The option tags of Unsupported (RFC 3261 §20.40), lowercased.
pub fn unsupported(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Unsupported")
}

/// The methods of Allow (RFC 3261 §20.5), lowercased.
pub fn allow(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Allow")
}
