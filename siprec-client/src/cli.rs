//! The command line: `siprec-client record …` simulates a call with two legs, runs the node's
//! activities at the given times and prints one line per SRS and activity, then a summary.
//! `main` only calls [`main`].

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use siprec_core::client::{
    parse_server_list, Activity, CallContext, CallDirection, Host, Outcome, Party, Reply,
    SrsReport, LOG_ESTABLISHED, LOG_SRS_STOPPED,
};
use tokio::sync::broadcast;

use crate::media::{MediaSource, Silence, ToneSource, WavSource};
use crate::recorder::{ClientConfig, ClientEvent, Recorder};
use crate::Error;

const FORMATS: &str = "\
Call Recording Server formats (what the Call Recording Node accepts):
  Single SRS by hostname             sip:siprec.example.com
  Single SRS by hostname with port   sip:siprec.example.com:5060
  Single SRS by IP address           sip:3.208.57.175
  Single SRS over TLS                sips:siprec.example.com
  Multiple parallel recorders        sip:srs1.example.com,sip:srs2.example.com
Entries are trimmed; IPv6 literals go in brackets (sip:[2001:db8::1]:5060); a URI may carry
;transport=udp|tcp|tls. One recording session is opened per URI, in parallel; the recording
starts when at least one SRS accepts within the start timeout. A host without a port is
resolved with DNS (RFC 3263: NAPTR, SRV, then A/AAAA; see --dns).
Not accepted: WebSocket URLs (ws://, wss://), HTTP URLs (http://, https://), plain host names
or IP addresses without the sip:/sips: scheme (siprec.example.com, 10.0.0.5).

Media: --caller/--callee take a WAV file (any rate and channel count; converted to 16 kHz
mono), tone:HZ, or silence. The caller is the left channel (label 1), the callee the right.
--codecs sets what is offered (PCMU,PCMA by default; G722 and opus carry 16 kHz audio).

Exit status: 0 when the recording started and stopped cleanly (BYE answered 2xx) on at least
one SRS; 1 otherwise (the reason is printed); 2 for a usage error.

Examples:
  siprec-client record --server sip:127.0.0.1:5060 --duration 10s
  siprec-client record --server 'sip:srs1.example.com, sip:srs2.example.com;transport=tcp' \\
      --recording-id rec-42 --caller alice.wav --callee tone:880 \\
      --duration 30s --pause-at 10s --resume-at 15s
  siprec-client record --server sips:siprec.example.com --ca ca.pem --json";

/// `siprec-client`.
#[derive(Debug, Parser)]
#[command(
    name = "siprec-client",
    version,
    about = "SIPREC recording client (RFC 7866): records a call on one or many SRSs, like the Call Recording Node",
    after_long_help = FORMATS
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a call and record it: start at 0 s, pause/resume at the given times, stop at
    /// --duration.
    #[command(after_long_help = FORMATS)]
    Record(Box<RecordArgs>),
    /// Check an SRS: run a battery of recording sessions against it and report PASS / FAIL /
    /// WARN / SKIP per rule (exit status 1 on any FAIL).
    #[command(after_long_help = CHECK_HELP)]
    Check(Box<CheckArgs>),
    /// Sit in live calls as a B2BUA: relay SIP and RTP between the caller and --forward, and
    /// record the call on SRSs when its INFO says so (or every call with --record-all).
    #[command(after_long_help = crate::gateway::GATEWAY_HELP)]
    Gateway(Box<crate::gateway::GatewayArgs>),
}

const CHECK_HELP: &str = "\
Each check opens real recording sessions (SIP, SDP, RTP) against the SRS and names the rule it
judges (RFC section). FAIL: the SRS broke a rule recording depends on; WARN: allowed, but an SRC
must cope with it; SKIP: not exercised (e.g. UDP checks against a sips: URI).

Exit status: 0 when no check failed, 1 when one did, 2 when the check could not run (a usage
error, an unreadable CA file, no socket, a name that does not resolve).

Examples:
  siprec-client check sip:127.0.0.1:5060
  siprec-client check 'sip:srs.example.com;transport=tcp' --sessions 20 --junit check.xml
  siprec-client check sips:srs.example.com --ca ca.pem --json";

/// Arguments of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The SRS: one sip: or sips: URI.
    #[arg(value_name = "SRS-URI")]
    pub uri: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// TLS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Sessions opened at once by the parallel check.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub sessions: usize,
    /// How long to wait for each final response.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long the audio check streams RTP.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub audio: Duration,
    /// DNS server for resolving the SRS host name (default: the system's).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub dns: Option<SocketAddr>,
    /// Our address for SIP and RTP (default: the one that routes to the SRS).
    #[arg(long, value_name = "IP")]
    pub local_ip: Option<IpAddr>,
}

/// Runs `check`: the battery, a progress line on a terminal's stderr, the report on `out`
/// (colour when `colour`), the JUnit file if asked for.
pub async fn check(
    args: CheckArgs,
    out: &mut dyn Write,
    colour: bool,
) -> Result<crate::check::Report, Error> {
    use std::io::IsTerminal;
    let cfg = crate::check::CheckConfig {
        uri: args.uri.clone(),
        sessions: args.sessions,
        ca: args.tls.ca.clone(),
        client_cert: args.tls.client_cert(),
        dns: args.dns,
        local_ip: args.local_ip,
        timeout: args.timeout,
        audio: args.audio,
    };
    if args.sessions == 0 {
        return Err(Error::Usage("--sessions must be at least 1".into()));
    }
    let tty = std::io::stderr().is_terminal();
    let began = Instant::now();
    let report = crate::check::run(&cfg, |step, total, id| {
        if tty {
            let elapsed = clock(began.elapsed());
            eprint!("\r\x1b[2K[{step:>2}/{total}] {elapsed} {id}…");
        }
    })
    .await?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    let text = if args.json {
        format!("{}\n", crate::check::report::json(&report))
    } else {
        crate::check::report::text(&report, colour)
    };
    out.write_all(text.as_bytes())?;
    if let Some(path) = &args.junit {
        std::fs::write(path, crate::check::report::junit(&report))
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(report)
}

/// TLS arguments of `record` and `check`.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// CA file (PEM) to verify sips: SRSs (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM chain) for SRSs that require mutual TLS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// `--tls-cert` and `--tls-key` together.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }
}

/// Arguments of `record`.
#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Call Recording Server: one SIP URI or a comma-separated list (see below).
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub server: String,
    /// Call Recording ID, forwarded to the SRS in the metadata (optional).
    #[arg(long, value_name = "ID")]
    pub recording_id: Option<String>,
    /// Leg 1 (caller, left channel): WAV file, tone:HZ or silence.
    #[arg(long, value_name = "FILE|tone:HZ", default_value = "tone:440")]
    pub caller: String,
    /// Leg 2 (callee, right channel): WAV file, tone:HZ or silence.
    #[arg(long, value_name = "FILE|tone:HZ", default_value = "tone:880")]
    pub callee: String,
    /// Length of the call; the recording is stopped then.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Pause the recording at this time (repeatable).
    #[arg(long = "pause-at", value_name = "T", value_parser = parse_duration)]
    pub pause_at: Vec<Duration>,
    /// Resume the recording at this time (repeatable).
    #[arg(long = "resume-at", value_name = "T", value_parser = parse_duration)]
    pub resume_at: Vec<Duration>,
    /// How long a start waits for the first SRS to accept.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// TLS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// When to offer SRTP (RTP/SAVP with an SDES key): sips (for sips: SRSs), always, never.
    #[arg(long, value_name = "WHEN", default_value = "sips", value_parser = ["sips", "always", "never"])]
    pub srtp: String,
    /// SRTP suites offered, in preference order: 80 (AES_CM_128_HMAC_SHA1_80), 32
    /// (AES_CM_128_HMAC_SHA1_32), comma-separated; one a=crypto line each.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "80,32",
        value_delimiter = ',',
        value_parser = ["80", "32"]
    )]
    pub srtp_suite: Vec<String>,
    /// Codecs offered, in preference order: PCMU, PCMA, G722, opus (comma-separated).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "PCMU,PCMA",
        value_delimiter = ','
    )]
    pub codecs: Vec<String>,
    /// DNS server for resolving SRS host names (default: the system's).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub dns: Option<SocketAddr>,
    /// Our address for SIP and RTP (default: the one that routes to the first SRS).
    #[arg(long, value_name = "IP")]
    pub local_ip: Option<IpAddr>,
    /// Our SIP port for UDP and TCP (default: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub sip_port: u16,
    /// Caller's display name.
    #[arg(long, default_value = "Caller")]
    pub caller_name: String,
    /// Caller's address of record.
    #[arg(long, default_value = "sip:caller@siprec-client.invalid")]
    pub caller_aor: String,
    /// Callee's display name.
    #[arg(long, default_value = "Callee")]
    pub callee_name: String,
    /// Callee's address of record.
    #[arg(long, default_value = "sip:callee@siprec-client.invalid")]
    pub callee_aor: String,
    /// Call-ID of the simulated call (default: a random one).
    #[arg(long)]
    pub call_id: Option<String>,
    /// Direction of the simulated call.
    #[arg(long, default_value = "inbound", value_parser = ["inbound", "outbound"])]
    pub direction: String,
}

/// The arguments of `siprec-client record ARGS…` (without the program and subcommand
/// names); the error is clap's message.
pub fn parse_record_args(args: &[&str]) -> Result<RecordArgs, clap::Error> {
    let all = ["siprec-client", "record"]
        .into_iter()
        .chain(args.iter().copied());
    match Cli::try_parse_from(all)?.command {
        Command::Record(a) => Ok(*a),
        _ => Err(clap::Error::raw(
            clap::error::ErrorKind::InvalidSubcommand,
            "not a record command",
        )),
    }
}

/// The arguments of `siprec-client check ARGS…` (without the program and subcommand names);
/// the error is clap's message.
pub fn parse_check_args(args: &[&str]) -> Result<CheckArgs, clap::Error> {
    let all = ["siprec-client", "check"]
        .into_iter()
        .chain(args.iter().copied());
    match Cli::try_parse_from(all)?.command {
        Command::Check(a) => Ok(*a),
        _ => Err(clap::Error::raw(
            clap::error::ErrorKind::InvalidSubcommand,
            "not a check command",
        )),
    }
}

/// `M:SS` (or `H:MM:SS`) of a duration, whole seconds.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The progress line of `record` on a terminal: `recording 0:12 / 1:00 (20%)`.
fn progress_line(elapsed: Duration, total: Duration) -> String {
    let e = elapsed.min(total);
    let pct = (e.as_secs_f64() / total.as_secs_f64().max(1e-9) * 100.0).floor();
    format!("recording {} / {} ({pct}%)", clock(e), clock(total))
}

/// Parses `10s`, `1.5s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            s.get(i..).unwrap_or_default(),
        ),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| ValueError::NotADuration(s.to_string()))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(ValueError::UnknownUnit {
                value: s.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(ValueError::DurationOutOfRange(s.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `HOST:PORT` resolved to one socket address.
pub fn parse_host_port(s: &str) -> Result<SocketAddr, ValueError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| ValueError::Unresolvable {
            value: s.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ValueError::NoAddress(s.to_string()))
}

/// Why a command-line value was refused by [`parse_duration`], [`parse_host_port`] or
/// [`crate::gateway::parse_port_range`]; clap prints the message after the option name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A duration whose number does not parse.
    #[error("{0:?} is not a duration (e.g. 10s, 1.5s, 500ms, 2m)")]
    NotADuration(String),
    /// A duration with a unit other than ms, s, m (min) and h.
    #[error("{value:?}: unknown unit {unit:?} (ms, s, m, h)")]
    UnknownUnit {
        /// The value as given (trimmed).
        value: String,
        /// The unit in it.
        unit: String,
    },
    /// A duration below 0 or over 24 h.
    #[error("{0:?} is out of range (0 to 24 h)")]
    DurationOutOfRange(String),
    /// A `HOST:PORT` that cannot be resolved.
    #[error("{value:?}: {reason}")]
    Unresolvable {
        /// The value as given.
        value: String,
        /// The resolver's error.
        reason: String,
    },
    /// A `HOST:PORT` that resolves to no address.
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    /// A port range without `-`.
    #[error("{0:?}: expected LOW-HIGH")]
    NotARange(String),
    /// One end of a port range is not a port number.
    #[error("{0:?} is not a port")]
    NotAPort(String),
    /// A port range starting at 0 or with fewer than 4 ports.
    #[error("{0:?}: need 1 <= LOW and at least 4 ports")]
    TooFewPorts(String),
}

/// A leg's media from its command-line value.
pub fn media_source(spec: &str) -> Result<Box<dyn MediaSource>, Error> {
    let s = spec.trim();
    if s.eq_ignore_ascii_case("silence") {
        return Ok(Box::new(Silence));
    }
    if let Some(hz) = s.strip_prefix("tone:") {
        let f: f64 = hz
            .trim()
            .parse()
            .ok()
            .filter(|f: &f64| *f > 0.0 && *f < 4000.0)
            .ok_or_else(|| Error::Usage(format!("{s:?}: expected tone:HZ with 0 < HZ < 4000")))?;
        return Ok(Box::new(ToneSource::new(f, 8000.0)));
    }
    Ok(Box::new(WavSource::open(std::path::Path::new(s))?))
}

/// Our address towards the first SRS given as an IP literal, else towards the default
/// route, else loopback. (A UDP `connect` sends nothing; it only picks the route.)
pub fn detect_local_ip(server: &str) -> IpAddr {
    let first_ip = parse_server_list(server).ok().and_then(|uris| {
        uris.iter().find_map(|u| match u.host {
            Host::Ip(ip) => Some(ip),
            Host::Name(_) => None,
        })
    });
    let probe = |dest: IpAddr| -> Option<IpAddr> {
        let bind: SocketAddr = if dest.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(SocketAddr::new(dest, 5060)).ok()?;
        s.local_addr().ok().map(|a| a.ip())
    };
    first_ip
        .and_then(probe)
        .or_else(|| probe(IpAddr::from([198, 51, 100, 1])))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Prints lines as text or JSON, with the time since the call started.
#[derive(Clone)]
struct Printer {
    json: bool,
    t0: Instant,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer").field("json", &self.json).finish()
    }
}

fn json_str(s: &str) -> serde_json::Value {
    serde_json::Value::String(s.to_string())
}

impl Printer {
    fn line(&self, text: String, json: serde_json::Value) {
        let t = self.t0.elapsed().as_secs_f64();
        let Ok(mut out) = self.out.lock() else { return };
        if self.json {
            let mut v = json;
            if let Some(o) = v.as_object_mut() {
                o.insert("t".into(), serde_json::json!((t * 1000.0).round() / 1000.0));
            }
            let _ = writeln!(out, "{v}");
        } else {
            let _ = writeln!(out, "[{t:>8.3}s] {text}");
        }
        let _ = out.flush();
    }

    fn srs(&self, what: &str, r: &SrsReport) {
        let status = r.status.map_or("---".into(), |s| s.to_string());
        let detail = if r.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.detail)
        };
        self.line(
            format!("{what:<7}  {}  {status}  {}{detail}", r.entry, r.line),
            serde_json::json!({
                "kind": "srs",
                "activity": what,
                "srs": json_str(&r.entry),
                "target": r.target.map(|t| t.to_string()),
                "status": r.status,
                "ok": r.ok,
                "log": r.line,
                "detail": json_str(&r.detail),
            }),
        );
    }

    fn outcome(&self, o: &Outcome) {
        for r in &o.srs {
            self.srs(o.activity.as_str(), r);
        }
        let reason = o
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        self.line(
            format!(
                "{:<7}  {} {}{reason}",
                o.activity.as_str(),
                o.reply.code(),
                o.reply.log_line()
            ),
            serde_json::json!({
                "kind": "outcome",
                "activity": o.activity.as_str(),
                "code": o.reply.code(),
                "log": o.reply.log_line(),
                "reason": o.reason,
            }),
        );
    }
}

/// What a `record` run concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The start's reply.
    pub start: Option<Reply>,
    /// SRSs that accepted (at start or later).
    pub established: Vec<String>,
    /// SRSs whose BYE was answered 2xx at the stop.
    pub stopped_cleanly: Vec<String>,
    /// The stop's reply.
    pub stop: Option<Reply>,
    /// Exit status 0?
    pub ok: bool,
    /// One sentence.
    pub message: String,
}

/// Runs `record`: the whole simulated call. Output goes to `out`.
pub async fn record(args: RecordArgs, out: Box<dyn Write + Send>) -> Result<Summary, Error> {
    if args.duration.is_zero() {
        return Err(Error::Usage("--duration must be more than 0".into()));
    }
    for t in args.pause_at.iter().chain(&args.resume_at) {
        if *t >= args.duration {
            return Err(Error::Usage(format!(
                "pause/resume time {:?} is not before the end of the call ({:?})",
                t, args.duration
            )));
        }
    }
    let caller = media_source(&args.caller)?;
    let callee = media_source(&args.callee)?;
    let local_ip = args
        .local_ip
        .unwrap_or_else(|| detect_local_ip(&args.server));
    let config = ClientConfig {
        local_ip,
        sip_port: args.sip_port,
        start_timeout: args.start_timeout,
        ca_file: args.tls.ca.clone(),
        client_cert: args.tls.client_cert(),
        dns_server: args.dns,
        codecs: args
            .codecs
            .iter()
            .map(|c| {
                siprec_sdp::Format::for_codec(c).ok_or_else(|| {
                    Error::Usage(format!(
                        "--codecs: {c:?} is not one of PCMU, PCMA, G722, opus"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        srtp: match args.srtp.as_str() {
            "always" => siprec_core::client::SrtpOffer::Always,
            "never" => siprec_core::client::SrtpOffer::Never,
            _ => siprec_core::client::SrtpOffer::Sips,
        },
        srtp_suites: args
            .srtp_suite
            .iter()
            .map(|bits| {
                if bits == "32" {
                    siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_32
                } else {
                    siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80
                }
            })
            .collect(),
        ..ClientConfig::default()
    };
    let call = CallContext {
        call_id: args
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{:016x}@siprec-client", rand::random::<u64>())),
        session_id: None,
        direction: if args.direction == "outbound" {
            CallDirection::Outbound
        } else {
            CallDirection::Inbound
        },
        caller: Party {
            name: Some(args.caller_name.clone()),
            aor: args.caller_aor.clone(),
        },
        callee: Party {
            name: Some(args.callee_name.clone()),
            aor: args.callee_aor.clone(),
        },
        ..CallContext::default()
    };
    let recorder = Recorder::new(config, call, caller, callee).await?;
    let printer = Printer {
        json: args.json,
        t0: Instant::now(),
        out: Arc::new(Mutex::new(out)),
    };
    // Per-SRS news while the call runs.
    let mut events = recorder.subscribe();
    let news_printer = printer.clone();
    let established = Arc::new(Mutex::new(Vec::<String>::new()));
    let established_news = Arc::clone(&established);
    let news = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ClientEvent::Srs(r)) => {
                    if r.ok {
                        if let Ok(mut e) = established_news.lock() {
                            if !e.contains(&r.entry) {
                                e.push(r.entry.clone());
                            }
                        }
                    }
                    news_printer.srs("srs", &r);
                }
                Ok(ClientEvent::RecordingEnded { reason }) => news_printer.line(
                    format!("ended    {reason}"),
                    serde_json::json!({"kind": "ended", "reason": reason}),
                ),
                Ok(ClientEvent::Outcome(_)) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut plan: Vec<(Duration, Activity)> = args
        .pause_at
        .iter()
        .map(|t| (*t, Activity::Pause))
        .chain(args.resume_at.iter().map(|t| (*t, Activity::Resume)))
        .collect();
    plan.sort_by_key(|(t, _)| *t);
    let t0 = tokio::time::Instant::from_std(printer.t0);

    let start = recorder
        .start(&args.server, args.recording_id.as_deref())
        .await?;
    printer.outcome(&start);
    if let Ok(mut e) = established.lock() {
        for r in start
            .srs
            .iter()
            .filter(|r| r.ok && r.line == LOG_ESTABLISHED)
        {
            if !e.contains(&r.entry) {
                e.push(r.entry.clone());
            }
        }
    }
    let mut stop: Option<Outcome> = None;
    if start.reply == Reply::Started {
        let timeline = async {
            for (t, activity) in plan {
                tokio::time::sleep_until(t0 + t).await;
                let out = match activity {
                    Activity::Pause => recorder.pause().await?,
                    _ => recorder.resume().await?,
                };
                printer.outcome(&out);
            }
            tokio::time::sleep_until(t0 + args.duration).await;
            Ok::<(), Error>(())
        };
        // On a terminal, a progress line on stderr: elapsed / total, once a second.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let progress = async {
            if !tty {
                return std::future::pending::<()>().await;
            }
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let line = progress_line(t0.elapsed(), args.duration);
                eprint!("\r\x1b[2K{line}");
            }
        };
        // Ctrl-C hangs up early: the recording is still stopped properly (BYE, CANCEL).
        let interrupted = tokio::select! {
            r = timeline => {
                r?;
                false
            }
            _ = tokio::signal::ctrl_c() => true,
            _ = progress => false,
        };
        if tty {
            eprint!("\r\x1b[2K");
        }
        if interrupted {
            printer.line(
                "interrupted: stopping the recording".into(),
                serde_json::json!({"kind": "interrupted"}),
            );
        }
        let out = recorder.stop().await?;
        printer.outcome(&out);
        stop = Some(out);
    }
    recorder.close().await?;
    let _ = news.await;
    let established = established.lock().map(|e| e.clone()).unwrap_or_default();
    let stopped_cleanly: Vec<String> = stop
        .as_ref()
        .map(|o| {
            o.srs
                .iter()
                .filter(|r| r.ok && r.line == LOG_SRS_STOPPED)
                .map(|r| r.entry.clone())
                .collect()
        })
        .unwrap_or_default();
    let ok = start.reply == Reply::Started && !stopped_cleanly.is_empty();
    let message = if ok {
        format!(
            "recorded on {} SRS ({}); stopped cleanly on {}",
            established.len(),
            established.join(", "),
            stopped_cleanly.join(", ")
        )
    } else if start.reply != Reply::Started {
        format!(
            "the recording did not start: {} {}{}",
            start.reply.code(),
            start.reply.log_line(),
            start
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    } else {
        "the recording started but no SRS confirmed the stop (every session ended early or its BYE failed)".to_string()
    };
    let summary = Summary {
        start: Some(start.reply),
        established,
        stopped_cleanly,
        stop: stop.map(|o| o.reply),
        ok,
        message,
    };
    printer.line(
        format!("summary  {}", summary.message),
        serde_json::json!({
            "kind": "summary",
            "ok": summary.ok,
            "established": summary.established,
            "stopped_cleanly": summary.stopped_cleanly,
            "message": summary.message,
        }),
    );
    Ok(summary)
}

/// The binary's entry point: parses the command line, runs, returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("siprec-client: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = match cli.command {
        Command::Record(args) => *args,
        Command::Gateway(args) => {
            gateway_logging(args.json);
            return match rt.block_on(crate::gateway::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("siprec-client gateway: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Check(args) => {
            use std::io::IsTerminal;
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            return match rt.block_on(check(*args, &mut std::io::stdout(), colour)) {
                Ok(r) if r.has_failures() => ExitCode::FAILURE,
                Ok(_) => ExitCode::SUCCESS,
                // Our side: the SRS was not judged.
                Err(e) => {
                    eprintln!("siprec-client: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match rt.block_on(record(args, Box::new(std::io::stdout()))) {
        Ok(s) if s.ok => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("siprec-client: {}", s.message);
            ExitCode::FAILURE
        }
        Err(Error::Usage(m)) => {
            eprintln!("siprec-client: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("siprec-client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The gateway's log lines are its output: info level by default (RUST_LOG overrides), on
/// stderr, as text or JSON.
fn gateway_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi && !json)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn tracing_init() {
    // Logs only when asked for (RUST_LOG), on stderr; the printed lines are the output.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line(Duration::from_secs(12), Duration::from_secs(60)),
            "recording 0:12 / 1:00 (20%)"
        );
        assert_eq!(
            progress_line(Duration::from_secs(4000), Duration::from_secs(3700)),
            "recording 1:01:40 / 1:01:40 (100%)"
        );
        assert_eq!(clock(Duration::from_millis(59_999)), "0:59");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "x", "10q", "-1s", "1e9s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_errors_say_what_was_wrong() {
        let msg = |r: Result<Duration, ValueError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(parse_duration(" x ")),
            "\"x\" is not a duration (e.g. 10s, 1.5s, 500ms, 2m)"
        );
        assert_eq!(
            msg(parse_duration("10q")),
            "\"10q\": unknown unit \"q\" (ms, s, m, h)"
        );
        assert_eq!(
            msg(parse_duration("25h")),
            "\"25h\" is out of range (0 to 24 h)"
        );
        // No port: refused before any look-up, with the resolver's reason.
        let e = parse_host_port("no-port").unwrap_err();
        assert!(matches!(e, ValueError::Unresolvable { .. }), "{e:?}");
        assert!(e.to_string().starts_with("\"no-port\": "), "{e}");
        let range = |s: &str| crate::gateway::parse_port_range(s).map_err(|e| e.to_string());
        assert_eq!(range("20000-29999"), Ok((20000, 29999)));
        assert_eq!(range("20000"), Err("\"20000\": expected LOW-HIGH".into()));
        assert_eq!(range("1-x"), Err("\"x\" is not a port".into()));
        assert_eq!(
            range("0-10"),
            Err("\"0-10\": need 1 <= LOW and at least 4 ports".into())
        );
        assert_eq!(
            range("10-12"),
            Err("\"10-12\": need 1 <= LOW and at least 4 ports".into())
        );
    }

    #[test]
    fn cli_parses_and_help_shows_the_formats() {
        let cli = Cli::try_parse_from([
            "siprec-client",
            "record",
            "--server",
            "sip:127.0.0.1:5060, sip:127.0.0.1:5070",
            "--recording-id",
            "r1",
            "--pause-at",
            "2s",
            "--resume-at",
            "3s",
            "--pause-at",
            "4s",
            "--resume-at",
            "5s",
            "--duration",
            "6s",
            "--dns",
            "127.0.0.1:5353",
            "--json",
        ])
        .unwrap();
        let Command::Record(a) = cli.command else {
            panic!("record expected");
        };
        assert_eq!(a.pause_at, [Duration::from_secs(2), Duration::from_secs(4)]);
        assert_eq!(a.resume_at.len(), 2);
        assert_eq!(a.dns, Some("127.0.0.1:5353".parse().unwrap()));
        assert!(a.json);
        let err = Cli::try_parse_from(["siprec-client", "record", "--help"]).unwrap_err();
        let help = err.to_string();
        for example in [
            "sip:siprec.example.com",
            "sip:siprec.example.com:5060",
            "sip:3.208.57.175",
            "sips:siprec.example.com",
            "sip:srs1.example.com,sip:srs2.example.com",
            "wss://",
            "https://",
        ] {
            assert!(help.contains(example), "{example} missing from --help");
        }
        assert!(Cli::try_parse_from(["siprec-client", "record"]).is_err());
    }

    #[test]
    fn srtp_suites_default_to_both_and_take_a_list() {
        let suites = |extra: &[&str]| {
            let mut argv = vec!["siprec-client", "record", "--server", "sips:127.0.0.1"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Record(a)) => Ok(a.srtp_suite),
                Ok(_) => panic!("record expected"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(suites(&[]).unwrap(), ["80", "32"]);
        assert_eq!(suites(&["--srtp-suite", "32"]).unwrap(), ["32"]);
        assert_eq!(suites(&["--srtp-suite", "32,80"]).unwrap(), ["32", "80"]);
        let err = suites(&["--srtp-suite", "80,64"]).unwrap_err();
        assert!(err.contains("64") && err.contains("--srtp-suite"), "{err}");
    }

    #[test]
    fn media_specs_and_local_ip() {
        assert!(media_source("tone:440").is_ok());
        assert!(media_source("silence").is_ok());
        assert!(media_source("tone:0").is_err());
        assert!(media_source("/no/such/file.wav").is_err());
        assert_eq!(
            detect_local_ip("sip:127.0.0.1:5060"),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}
