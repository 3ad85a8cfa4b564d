//! Header values taken apart (lists, name-addr, parameters, Via, media types,
//! Session-Expires) and the typed accessors of the headers the cores read (From, To, Contact,
//! Record-Route, Via, Call-ID, CSeq, Max-Forwards, Content-Type, Session-Expires; extension
//! headers by name).

use super::*;

/// Splits a header value on the commas that separate list elements (RFC 3261 §7.3.1), leaving
/// commas inside quoted strings and `<...>` alone. Elements are trimmed; empties dropped.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Splits on `sep` outside quoted strings (empty pieces kept).
pub(crate) fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = find_unquoted(rest, sep) {
        out.push(rest.get(..i).unwrap_or_default());
        rest = rest.get(i + sep.len_utf8()..).unwrap_or_default();
    }
    out.push(rest);
    out
}

/// Position of the first `c` outside quoted strings.
pub(super) fn find_unquoted(s: &str, wanted: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits a name-addr or addr-spec header value (From, To, Contact, Route, Record-Route) into
/// display name, URI and the header-parameter text after it (starting at `;` or empty).
/// For the addr-spec form (no `<>`) parameters after the URI are header parameters
/// (RFC 3261 §20.10).
pub fn split_name_addr(value: &str) -> (Option<String>, &str, &str) {
    let value = value.trim();
    if let Some(lt) = find_unquoted(value, '<') {
        let display = value.get(..lt).unwrap_or_default().trim();
        let rest = value.get(lt + 1..).unwrap_or_default();
        let (uri, params) = match rest.find('>') {
            Some(gt) => (
                rest.get(..gt).unwrap_or_default(),
                rest.get(gt + 1..).unwrap_or_default(),
            ),
            None => (rest, ""),
        };
        let display = if display.is_empty() {
            None
        } else {
            Some(unquote(display))
        };
        (display, uri.trim(), params.trim())
    } else {
        let (uri, params) = split_at_params(value);
        (None, uri.trim(), params)
    }
}

/// A value and its parameters at the first `;`: `("1800", ";refresher=uac")`; the second
/// part is empty without parameters (what [`parse_params`] reads).
fn split_at_params(value: &str) -> (&str, &str) {
    match value.find(';') {
        Some(i) => value.split_at(i),
        None => (value, ""),
    }
}

/// Removes surrounding double quotes and backslash escapes from a quoted string; other
/// text is returned trimmed.
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => s.to_string(),
    }
}

/// Parses `;name=value;flag` parameter text into (lowercased name, unquoted value) pairs; a
/// flag parameter has an empty value.
pub fn parse_params(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while let Some(r) = rest.strip_prefix(';') {
        let end = find_unquoted(r, ';').unwrap_or(r.len());
        let item = r.get(..end).unwrap_or_default().trim();
        rest = r.get(end..).unwrap_or_default();
        if item.is_empty() {
            continue;
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), unquote(v)),
            None => (item, String::new()),
        };
        out.push((name.to_ascii_lowercase(), value));
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// The value of header parameter `name` (case-insensitive) of a name-addr / addr-spec value
/// (From, To, Contact, ...): `Some("")` for a flag parameter such as `;+sip.src`.
pub fn header_param(value: &str, name: &str) -> Option<String> {
    let (_, _, params) = split_name_addr(value);
    parse_params(params)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The `tag` parameter of a From or To value, if non-empty.
pub fn tag_of(value: &str) -> Option<String> {
    header_param(value, "tag").filter(|t| !t.is_empty())
}

/// The URI inside a name-addr / addr-spec value, without URI headers (`?...`).
pub fn uri_of(value: &str) -> &str {
    let (_, uri, _) = split_name_addr(value);
    match uri.find('?') {
        Some(q) => uri.get(..q).unwrap_or(uri),
        None => uri,
    }
}

/// A name-addr or addr-spec header value (From, To, Contact, Route, Record-Route) taken
/// apart (RFC 3261 §20.10, §20.20, §20.39). Parameters after an addr-spec without angle
/// brackets are header parameters, not URI parameters (§20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted, if any.
    pub display_name: Option<String>,
    /// The URI as written (without `<>`).
    pub uri: String,
    /// Header parameters in order, names lowercased (flags have empty values).
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    /// Takes one element of a From, To or Contact value apart. Never fails: a value without a
    /// URI gives an empty [`NameAddr::uri`], which [`NameAddr::sip_uri`] refuses.
    pub fn parse(value: &str) -> NameAddr {
        let (display_name, uri, params) = split_name_addr(value);
        NameAddr {
            display_name,
            uri: uri.to_string(),
            params: parse_params(params),
        }
    }

    /// The value of a header parameter (`Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `tag` parameter (RFC 3261 §19.3), if present and non-empty.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }

    /// The URI as a sip:/sips: URI (IPv6 references included).
    pub fn sip_uri(&self) -> Result<SipUri, UriError> {
        SipUri::parse(&self.uri)
    }

    /// The header parameters printed as `;name=value...` (empty when there are none; values
    /// quoted where needed, flags bare).
    pub fn params_text(&self) -> String {
        Params {
            params: &self.params,
            hosts: true,
        }
        .to_string()
    }

    /// The URI without URI headers (`?...`), as [`uri_of`] gives it: what a Contact names as
    /// a remote target.
    pub fn uri_without_headers(&self) -> &str {
        match self.uri.find('?') {
            Some(q) => self.uri.get(..q).unwrap_or(&self.uri),
            None => &self.uri,
        }
    }
}

/// Prints `"display" <uri>;name=value...` (the display name quoted, `<>` always), which
/// [`NameAddr::parse`] reads back to the same value.
impl std::fmt::Display for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.display_name {
            let quoted = d.replace('\\', "\\\\").replace('"', "\\\"");
            write!(f, "\"{quoted}\" ")?;
        }
        let params = Params {
            params: &self.params,
            hosts: true,
        };
        write!(f, "<{}>{params}", self.uri)
    }
}

/// The From header value as written (trimmed), RFC 3261 §20.20: for a dialog's local or
/// remote party, which is copied into later requests unchanged (§12.1.1, §12.1.2).
pub fn from_value(headers: &Headers) -> Option<String> {
    header_value(headers, "From")
}

/// The To header value as written (trimmed), RFC 3261 §20.39 (see [`from_value`]).
pub fn to_value(headers: &Headers) -> Option<String> {
    header_value(headers, "To")
}

/// The From header of a message, taken apart.
pub fn from_addr(headers: &Headers) -> Option<NameAddr> {
    from_value(headers).map(|v| NameAddr::parse(&v))
}

/// The To header of a message, taken apart.
pub fn to_addr(headers: &Headers) -> Option<NameAddr> {
    to_value(headers).map(|v| NameAddr::parse(&v))
}

/// The From tag (RFC 3261 §19.3), if present and non-empty.
pub fn from_tag(headers: &Headers) -> Option<String> {
    from_addr(headers).and_then(|a| a.tag().map(str::to_string))
}

/// The To tag (RFC 3261 §19.3), if present and non-empty.
pub fn to_tag(headers: &Headers) -> Option<String> {
    to_addr(headers).and_then(|a| a.tag().map(str::to_string))
}

/// The first Contact of a message (first element of the first Contact header), taken apart.
pub fn contact_addr(headers: &Headers) -> Option<NameAddr> {
    contact_elements(headers).next()
}

/// Every Contact of a message, RFC 3261 §20.10: each element of each Contact header (`m` in
/// compact form), in message order, taken apart. A `*` Contact (REGISTER only) is an element
/// whose URI is `*`.
pub fn contacts(headers: &Headers) -> Vec<NameAddr> {
    contact_elements(headers).collect()
}

pub(super) fn contact_elements(headers: &Headers) -> impl Iterator<Item = NameAddr> + '_ {
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case("Contact"))
        .flat_map(|(_, v)| {
            split_list(v)
                .into_iter()
                .map(NameAddr::parse)
                .collect::<Vec<_>>()
        })
}

/// Every Record-Route entry of a message, RFC 3261 §20.30: each element of each Record-Route
/// header, in message order, as written (a dialog's route set keeps them unchanged, §12.1).
pub fn record_routes(headers: &Headers) -> Vec<String> {
    header_values(headers, "Record-Route")
        .iter()
        .flat_map(|v| {
            split_list(v)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The top Via of a message (the first element of the first Via header), taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// Transport of the sent-protocol, uppercased (`UDP`, `TCP`, `TLS`, ...).
    pub transport: String,
    /// The sent-by `host[:port]`, as written.
    pub sent_by: String,
    /// The `branch` parameter, if present and non-empty.
    pub branch: Option<String>,
    /// All parameters, names lowercased (flags have empty values, e.g. `("rport", "")`).
    pub params: Vec<(String, String)>,
}

impl TopVia {
    /// Parses one Via element such as `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport`.
    pub fn parse(element: &str) -> Option<TopVia> {
        let element = element.trim();
        let (head, params) = split_at_params(element);
        let head = head.trim();
        let sent_by = head.rsplit([' ', '\t']).next()?.trim();
        let protocol: String = head
            .get(..head.len().saturating_sub(sent_by.len()))
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if sent_by.is_empty() || protocol.is_empty() {
            return None;
        }
        let transport = protocol.rsplit('/').next()?.to_ascii_uppercase();
        let params = parse_params(params);
        let branch = params
            .iter()
            .find(|(n, _)| n == "branch")
            .map(|(_, v)| v.clone())
            .filter(|b| !b.is_empty());
        Some(TopVia {
            transport,
            sent_by: sent_by.to_string(),
            branch,
            params,
        })
    }

    /// The value of a parameter (`Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The host part of sent-by, without port and IPv6 brackets.
    pub fn host(&self) -> &str {
        host_of(&self.sent_by)
    }

    /// The sent-by, typed (RFC 3261 §20.42 `sent-by = host [ COLON port ]`, IPv6 in
    /// brackets as in `SIP/2.0/UDP [2001:db8::1]:5070`).
    pub fn sent_by(&self) -> Result<(Host, Option<u16>), UriError> {
        parse_host_port(&self.sent_by)
    }

    /// The `received` parameter as an address (RFC 3261 §18.2.1; an IPv6 address may be
    /// written with or without brackets, RFC 5118 §4.5).
    pub fn received(&self) -> Option<std::net::IpAddr> {
        Host::parse_lenient(self.param("received")?).ok()?.ip()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` for the bare flag a client sends,
    /// `Some(Some(port))` once a server filled it in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|p| p.parse().ok())
    }
}

/// The host of `host[:port]` / `[v6]:port`, without brackets.
pub(crate) fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// The top Via of these headers.
pub fn top_via(headers: &Headers) -> Option<TopVia> {
    headers.iter().find_map(|h| match h {
        Header::Via(v) => split_list(v.value()).first().and_then(|e| TopVia::parse(e)),
        _ => None,
    })
}

/// The Call-ID value.
pub fn call_id(headers: &Headers) -> Option<String> {
    header_value(headers, "Call-ID").filter(|c| !c.is_empty())
}

/// The CSeq number and method.
pub fn cseq(headers: &Headers) -> Option<(u32, Method)> {
    let v = header_value(headers, "CSeq")?;
    let (n, m) = parse_cseq(&v)?;
    Some((n, m.parse().ok()?))
}

/// RFC 3261 §20.22 Max-Forwards (`1*DIGIT`), if present and readable.
pub fn max_forwards(headers: &Headers) -> Option<u32> {
    parse_digits(&header_value(headers, "Max-Forwards")?)
}

/// `1*DIGIT` as a number; `None` for anything else (signs, spaces inside, overflow).
pub(super) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `;name=value` parameter text for printing: values that are not tokens are quoted (with
/// `hosts`, an IPv6 reference such as `[2001:db8::1]` is not: RFC 3261 §25.1 `gen-value =
/// token / host / quoted-string`); flags (empty values) are printed bare.
pub(super) struct Params<'a> {
    params: &'a [(String, String)],
    hosts: bool,
}

impl std::fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, value) in self.params {
            let v6 = self.hosts
                && value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .is_some_and(|v| {
                        v.bytes()
                            .all(|b| b.is_ascii_hexdigit() || b".:".contains(&b))
                    });
            let plain = v6 || value.bytes().all(is_token_byte);
            if value.is_empty() {
                write!(f, ";{name}")?;
            } else if plain {
                write!(f, ";{name}={value}")?;
            } else {
                let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, ";{name}=\"{quoted}\"")?;
            }
        }
        Ok(())
    }
}

/// A Content-Type value, RFC 3261 §20.15 (`media-type` of §25.1, RFC 2045 §5.1):
/// `type/subtype` (lowercased) and its parameters (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The top-level type, lowercased (`application`, `multipart`).
    pub type_: String,
    /// The subtype, lowercased (`sdp`, `mixed`, `rs-metadata+xml`).
    pub subtype: String,
    /// Parameters in order, names lowercased, values unquoted (e.g. `("boundary", "b:1")`).
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses a Content-Type value such as `multipart/mixed;boundary="b:1"`. `None` unless
    /// both type and subtype are tokens (whitespace around the `/` is allowed, §25.1 SLASH).
    pub fn parse(value: &str) -> Option<MediaType> {
        let value = value.trim();
        let (essence, params) = split_at_params(value);
        let (type_, subtype) = essence.split_once('/')?;
        let (type_, subtype) = (type_.trim(), subtype.trim());
        let token = |s: &str| !s.is_empty() && s.bytes().all(is_token_byte);
        if !token(type_) || !token(subtype) {
            return None;
        }
        Some(MediaType {
            type_: type_.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_params(params),
        })
    }

    /// `type/subtype`, lowercased, without parameters.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.type_, self.subtype)
    }

    /// `true` when this is `essence` (`"application/sdp"`, case-insensitive), whatever the
    /// parameters.
    pub fn is(&self, essence: &str) -> bool {
        essence.split_once('/').is_some_and(|(t, s)| {
            t.trim().eq_ignore_ascii_case(&self.type_)
                && s.trim().eq_ignore_ascii_case(&self.subtype)
        })
    }

    /// `true` for any `multipart/*` type (RFC 2046 §5.1).
    pub fn is_multipart(&self) -> bool {
        self.type_ == "multipart"
    }

    /// The value of a parameter (name case-insensitive; `Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The multipart `boundary` parameter (RFC 2046 §5.1.1), if present and non-empty.
    pub fn boundary(&self) -> Option<&str> {
        self.param("boundary").filter(|b| !b.is_empty())
    }
}

/// Prints `type/subtype;name=value...` (lowercased names, values quoted where needed), which
/// [`MediaType::parse`] reads back to the same value.
impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params = Params {
            params: &self.params,
            hosts: false,
        };
        write!(f, "{}/{}{params}", self.type_, self.subtype)
    }
}

/// The Content-Type of a message (`c` in compact form), RFC 3261 §20.15; `None` when missing
/// or unreadable.
pub fn content_type(headers: &Headers) -> Option<MediaType> {
    MediaType::parse(&content_type_value(headers)?)
}

/// The Content-Type value as written (trimmed), RFC 3261 §20.15: for relaying a body that is
/// not read (a B2BUA passes it on with its type unchanged). Everything else reads
/// [`content_type`].
pub fn content_type_value(headers: &Headers) -> Option<String> {
    header_value(headers, "Content-Type")
}

/// The `refresher` parameter of Session-Expires (RFC 4028 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresher {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
    /// Any other value (lowercased): present, but names neither side.
    Other(String),
}

/// A Session-Expires value, RFC 4028 §4: `delta-seconds *(SEMI se-params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds, as sent (no bounds applied).
    pub delta_seconds: u64,
    /// The `refresher` parameter, if present.
    pub refresher: Option<Refresher>,
    /// Every parameter, names lowercased (the `refresher` one included).
    pub params: Vec<(String, String)>,
}

impl SessionExpires {
    /// Parses a Session-Expires value such as `1800;refresher=uac`; `None` unless it starts
    /// with delta-seconds.
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let value = value.trim();
        let (num, params) = split_at_params(value);
        let delta_seconds = parse_digits(num)?;
        let params = parse_params(params);
        let refresher = params.iter().find(|(n, _)| n == "refresher").map(|(_, v)| {
            match v.to_ascii_lowercase().as_str() {
                "uac" => Refresher::Uac,
                "uas" => Refresher::Uas,
                other => Refresher::Other(other.to_string()),
            }
        });
        Some(SessionExpires {
            delta_seconds,
            refresher,
            params,
        })
    }
}

/// The Session-Expires of a message (`x` in compact form), RFC 4028 §4; `None` when missing
/// or unreadable.
pub fn session_expires(headers: &Headers) -> Option<SessionExpires> {
    SessionExpires::parse(&header_value(headers, "Session-Expires")?)
}

/// The value of an extension header, as written and trimmed: the first header called `name`
/// (case-insensitive). For headers no RFC gives a meaning and this module has no accessor
/// for: `X-` headers such as `X-Reason` or `X-Srs-Url`, or a header name taken from the
/// configuration. Headers with a meaning (From, To, Contact, Content-Type, Session-Expires,
/// Max-Forwards, ...) are read with their typed accessors in this module instead.
pub fn extension_header(headers: &Headers, name: &str) -> Option<String> {
    header_value(headers, name)
}
