//! srs-server configuration.
//!
//! Every setting is declared once, in the `settings!` list below: its doc, type, default,
//! environment variable and clap attributes. From that one list come
//! - [`Config`]: the settings as typed fields, their TOML keys and [`Config::default`];
//! - [`Overrides`]: the same settings as `--flags` and `SRS_*` environment variables, each
//!   `None` unless given, merged by [`Config::apply`];
//! - [`SETTINGS`]: each setting's key, flag, variable, doc and default, which `--help`, the
//!   error messages and the README's settings table (checked by a test) are written from.
//!
//! Precedence, lowest first: the default, the TOML file (`--config`), the environment
//! variable, the flag ([`CommandLine::into_config`]). [`Config::validate`] then checks each
//! setting and returns the typed [`Validated`] form, or a [`ConfigError`] that names the
//! setting by its TOML key, flag and variable.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use siprec_sip::transaction::Transport;
use siprec_sip_tokio::{ListenAddr, TlsServer};
use siprec_storage::S3Options;

/// Generates [`Config`], its `Default`, [`Overrides`], [`Config::apply`], one [`Setting`]
/// constant per setting and [`SETTINGS`] from a list of entries:
///
/// ```text
/// /// Doc: the field's rustdoc, its `--help` text and its meaning in the README.
/// #[arg(env = "SRS_NAME", value_name = "VALUE", <more clap attributes>)]
/// name: Type = default, shown "how --help and the README show the default";
/// ```
///
/// `Type` is the [`Config`] field's; the flag takes a `Type`, or a `T` for an `Option<T>`
/// setting (whose default must be `None`). `, shown "…"` is optional: without it the default
/// is shown from its value. The flag is `--name` (underscores as dashes), the TOML key `name`.
macro_rules! settings {
    // Normalises each entry to `[docs] [env] [clap] name: ConfigType, FlagType = default,
    // [shown];` — an `Option<T>` setting first, since a `$t:ty` cannot be taken apart later.
    (@norm [$($done:tt)*]
        $(#[doc = $doc:literal])*
        #[arg(env = $env:literal, $($arg:tt)*)]
        $name:ident: Option<$t:ty> = None $(, shown $shown:literal)?;
        $($rest:tt)*
    ) => {
        settings!(@norm [$($done)*
            [$($doc)*] [$env] [$($arg)*] $name: Option<$t>, $t = None, [$($shown)?];
        ] $($rest)*);
    };
    (@norm [$($done:tt)*]
        $(#[doc = $doc:literal])*
        #[arg(env = $env:literal, $($arg:tt)*)]
        $name:ident: $t:ty = $default:expr $(, shown $shown:literal)?;
        $($rest:tt)*
    ) => {
        settings!(@norm [$($done)*
            [$($doc)*] [$env] [$($arg)*] $name: $t, $t = $default, [$($shown)?];
        ] $($rest)*);
    };
    (@norm [$($done:tt)*]) => { settings!(@emit $($done)*); };
    (@emit $(
        [$($doc:literal)*] [$env:literal] [$($arg:tt)*]
        $name:ident: $ty:ty, $flag_ty:ty = $default:expr, [$($shown:literal)?];
    )*) => {
        /// The whole configuration: one field per setting (see [`SETTINGS`]), each with its
        /// default, read from TOML by the same names.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                ///
                #[doc = concat!("Default: ", shown_in_rustdoc!($default $(, $shown)?), ".")]
                pub $name: $ty,
            )*
            /// S3 settings for an `s3://bucket/prefix` storage (TOML table `[s3]` only); unset
            /// fields come from `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
            /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`.
            ///
            /// Default: empty.
            pub s3: S3Options,
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($name: DeclaredDefault::into_value($default),)*
                    s3: S3Options::default(),
                }
            }
        }

        /// The settings given as flags or environment variables (a flag wins over its
        /// variable): `None` unless given. [`Config::apply`] lays them over a [`Config`].
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct Overrides {
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, $($arg)*, help = help_text(&Setting::$name))]
                pub $name: Option<$flag_ty>,
            )*
        }

        impl Config {
            /// Sets every setting `overrides` gives; leaves the others as they are.
            #[allow(clippy::useless_conversion)] // `Option<T>` settings take a `T`.
            pub fn apply(&mut self, overrides: Overrides) {
                $(
                    if let Some(v) = overrides.$name {
                        self.$name = v.into();
                    }
                )*
            }
        }

        #[allow(non_upper_case_globals)] // Named as the TOML key, like the field.
        impl Setting {
            $(
                #[doc = concat!("[`Config::", stringify!($name), "`].")]
                pub const $name: Setting = Setting {
                    key: stringify!($name),
                    env: $env,
                    doc: concat!($($doc),*),
                    shown: shown_text!($($shown)?),
                    default: |c| ShowDefault::show(&c.$name),
                };
            )*
        }

        /// Every setting, in the order of `--help` and the README.
        pub const SETTINGS: &[Setting] = &[$(Setting::$name),*];
    };
    ($($entries:tt)*) => { settings!(@norm [] $($entries)*); };
}

/// The default as the rustdoc of a [`Config`] field shows it: its `shown` text, else the
/// declared value.
macro_rules! shown_in_rustdoc {
    ($default:expr, $shown:literal) => {
        $shown
    };
    ($default:expr) => {
        concat!("`", stringify!($default), "`")
    };
}

macro_rules! shown_text {
    () => {
        None
    };
    ($shown:literal) => {
        Some($shown)
    };
}

settings! {
    // SIP.

    /// SIP listeners: `udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT` (TLS needs
    /// `--tls-cert` and `--tls-key`).
    #[arg(env = "SRS_LISTEN", value_name = "TRANSPORT:HOST:PORT", value_delimiter = ',')]
    listen: Vec<String> = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"];

    /// PEM certificate chain (leaf first) of the `tls:` listeners.
    #[arg(env = "SRS_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf> = None;

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(env = "SRS_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf> = None;

    /// Mutual TLS: a PEM CA bundle; `tls:` listeners then require a client certificate that
    /// chains to it (handshakes without one fail).
    #[arg(env = "SRS_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf> = None, shown "none: no client certificate asked";

    /// Source networks (CIDR such as `10.0.0.0/8` or `2001:db8::/32`, or single addresses)
    /// allowed to send SIP; UDP requests from elsewhere get
    /// `403 Forbidden (source not allowed)`, TCP/TLS connections from elsewhere are closed at
    /// accept (before any TLS handshake).
    #[arg(env = "SRS_SIP_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    sip_allow: Vec<String> = [], shown "empty: any source";

    /// Most TCP/TLS connections open at once (handshakes in progress count); beyond it new
    /// ones are closed at accept.
    #[arg(env = "SRS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: usize = siprec_sip_tokio::DEFAULT_MAX_CONNECTIONS;

    /// Most concurrent recording sessions; beyond it INVITEs get `503` + `Retry-After: 5`.
    #[arg(env = "SRS_MAX_SESSIONS", value_name = "N")]
    max_sessions: usize = 1000;

    /// New recording sessions per second from one source address (token bucket); beyond it
    /// INVITEs get `503 Rate Limited` + `Retry-After: 1`. 0 = no limit.
    #[arg(env = "SRS_INVITE_RATE", value_name = "N")]
    invite_rate: f64 = 100.0;

    /// INVITEs one source may send at once before `--invite-rate` applies.
    #[arg(env = "SRS_INVITE_BURST", value_name = "N")]
    invite_burst: u32 = 500;

    /// Largest metadata document in KiB, 1 to 64; larger ones get
    /// `413 Request Entity Too Large`.
    #[arg(env = "SRS_MAX_METADATA_KB", value_name = "KIB")]
    max_metadata_kb: u64 = 32;

    // Media.

    /// RTP port range, `LOW-HIGH` (even ports are used).
    #[arg(env = "SRS_RTP_PORTS", value_name = "LOW-HIGH")]
    rtp_ports: String = "20000-29999";

    /// Address announced in SDP answers; RTP sockets bind to it.
    #[arg(env = "SRS_MEDIA_IP", value_name = "IP")]
    media_ip: Option<IpAddr> = None,
        shown "the listen address if specific, else the address the OS uses to reach the SRC";

    /// RTP latching (SRCs behind NAT): each stream takes RTP from the first source that sends
    /// it and drops packets from any other (counted as `packets_foreign`); `false`: only RTP
    /// from the address the SDP offer named is taken.
    #[arg(env = "SRS_RTP_LATCHING", value_name = "BOOL")]
    rtp_latching: bool = true;

    /// Codecs accepted in offers (SDP encoding names, optionally `NAME/RATE`); the offer's
    /// order decides among them.
    #[arg(env = "SRS_CODECS", value_name = "LIST", value_delimiter = ',')]
    codecs: Vec<String> = ["PCMU", "PCMA", "G722", "opus"];

    /// SRTP with SDES keys (RFC 4568): `optional` records RTP/AVP and RTP/SAVP, `required`
    /// answers RTP/AVP-only offers `488`, `off` declines RTP/SAVP streams.
    #[arg(env = "SRS_SRTP", value_name = "POLICY")]
    srtp: String = "optional";

    /// WAV sample rate: 8000, 16000 or 48000; 0 = 16000 when any recorded stream is G.722 or
    /// Opus, else 8000.
    #[arg(env = "SRS_RECORDING_RATE", value_name = "HZ")]
    recording_rate: u32 = 0, shown "`0` (auto)";

    /// Seconds without RTP (never counted while paused) before the SRS ends the session with
    /// BYE.
    #[arg(env = "SRS_MEDIA_TIMEOUT", value_name = "SECS")]
    media_timeout: u64 = 60;

    /// Jitter window in ms, 0 to 5000: audio is held back this long so late and reordered
    /// packets land in place.
    #[arg(env = "SRS_JITTER_MS", value_name = "MS")]
    jitter_ms: u64 = 60;

    /// Every this many ms of audio, 10 to 10000, the new frames go to the spool WAV with one
    /// `write` (the header follows within a second; recovery repairs it), so a process killed
    /// with SIGKILL loses at most `jitter_ms + checkpoint_ms`.
    #[arg(env = "SRS_CHECKPOINT_MS", value_name = "MS")]
    checkpoint_ms: u64 = 20;

    /// Media clock speed relative to the wall clock, for test senders only: one that sends N
    /// seconds of RTP per second sets N, so its audio is placed by RTP timestamp instead of
    /// being squeezed. 1 for real calls.
    #[arg(env = "SRS_MEDIA_CLOCK_RATE", value_name = "RATE")]
    media_clock_rate: f64 = 1.0;

    /// Media threads: each owns the RTP sockets of its share of the recordings and reads them
    /// in `recvmmsg` batches. 0 = one per CPU core.
    #[arg(env = "SRS_MEDIA_THREADS", value_name = "N")]
    media_threads: usize = 0, shown "`0` (one per core)";

    /// How a media thread learns that RTP arrived: 0 = epoll (a batched read per ready
    /// socket); N = a timer reads every socket every N ms, 1 to 50 (fewer wake-ups; packets
    /// wait up to N ms, which must stay below `jitter_ms`).
    #[arg(env = "SRS_MEDIA_SWEEP_MS", value_name = "MS")]
    media_sweep_ms: u64 = 0, shown "`0` (epoll)";

    // Storage.

    /// Where recordings are published: a directory or `file://` URL (object_store
    /// `LocalFileSystem`), or `s3://BUCKET[/PREFIX]` (S3 settings from the `[s3]` table of
    /// the TOML file, else `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP`).
    #[arg(env = "SRS_STORAGE", value_name = "PATH_OR_URL")]
    storage: String = "./recordings";

    /// Spool directory: recordings in progress and waiting for storage.
    #[arg(env = "SRS_SPOOL", value_name = "DIR")]
    spool: PathBuf = "./spool";

    /// Largest spool in MiB (recordings in progress and waiting for storage); beyond it new
    /// INVITEs get `503 Spool Full` with `Retry-After`. 0 = no limit.
    #[arg(env = "SRS_SPOOL_MAX_MB", value_name = "MIB")]
    spool_max_mb: u64 = 10240;

    /// Longest wait between two upload attempts while storage fails, in seconds (the wait
    /// starts at 1 s and doubles).
    #[arg(env = "SRS_UPLOAD_RETRY_MAX", value_name = "SECS")]
    upload_retry_max: u64 = 30;

    /// Instance id written into `recording.json`.
    #[arg(env = "SRS_INSTANCE_ID", value_name = "ID")]
    instance_id: Option<String> = None, shown "the host name";

    // Shutdown.

    /// On SIGTERM: seconds live sessions get to end by themselves before the SRS sends BYE
    /// (new INVITEs get `503` at once).
    #[arg(env = "SRS_SHUTDOWN_GRACE", value_name = "SECS")]
    shutdown_grace: u64 = 30;

    /// On SIGTERM: seconds to wait for pending uploads; the rest stays in the spool and is
    /// published at the next start.
    #[arg(env = "SRS_SHUTDOWN_UPLOAD_WAIT", value_name = "SECS")]
    shutdown_upload_wait: u64 = 60;

    // HTTP.

    /// Serves `/metrics` (Prometheus), `/healthz`, `/readyz` and the recordings browser on
    /// this address (`IP:PORT`, e.g. `127.0.0.1:8080`); an address other than loopback needs
    /// `--http-token`.
    #[arg(env = "SRS_HTTP", value_name = "IP:PORT")]
    http: Option<String> = None, shown "none: no HTTP server";

    /// Bearer token every HTTP request but `/healthz` must carry
    /// (`Authorization: Bearer TOKEN`, or `?token=TOKEN` for links and the audio player).
    #[arg(env = "SRS_HTTP_TOKEN", value_name = "TOKEN")]
    http_token: Option<String> = None, shown "none: no token (loopback only)";
}

/// The command line: `--config FILE` and every setting as a flag or `SRS_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommandLine {
    /// TOML file with the settings below by their TOML key (e.g. `rtp_ports =
    /// "20000-20999"`, `listen = ["udp:0.0.0.0:5060"]`) and an `[s3]` table (endpoint,
    /// region, access_key_id, secret_access_key, allow_http, virtual_hosted_style).
    #[arg(long, env = "SRS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings given as flags or environment variables.
    #[command(flatten)]
    pub overrides: Overrides,
}

impl CommandLine {
    /// The configuration: the defaults, then the TOML file, then the environment and the
    /// flags (clap takes a flag over its variable).
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(file) => Config::from_toml_file(file)?,
            None => Config::default(),
        };
        config.apply(self.overrides);
        Ok(config)
    }
}

/// One setting of [`Config`] as errors, `--help` and the README show it: its TOML key, flag,
/// environment variable, doc and default.
#[derive(Clone, Copy)]
pub struct Setting {
    key: &'static str,
    env: &'static str,
    doc: &'static str,
    shown: Option<&'static str>,
    default: fn(&Config) -> String,
}

impl Setting {
    /// The TOML key, also the [`Config`] field: `rtp_ports`.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The flag: `--rtp-ports`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The environment variable: `SRS_RTP_PORTS`.
    pub fn env(&self) -> &'static str {
        self.env
    }

    /// What the setting does (Markdown, one paragraph).
    pub fn doc(&self) -> &'static str {
        self.doc.trim()
    }

    /// The default as `--help` and the README show it (Markdown).
    pub fn default_text(&self) -> String {
        match self.shown {
            Some(text) => text.to_string(),
            None => (self.default)(&Config::default()),
        }
    }
}

impl fmt::Display for Setting {
    /// `rtp_ports (--rtp-ports, SRS_RTP_PORTS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.key, self.flag(), self.env)
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Setting({})", self.key)
    }
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Setting {}

/// The `--help` text of a setting: its doc and its default (without Markdown backticks).
fn help_text(setting: &Setting) -> String {
    let default = setting.default_text().replace('`', "");
    format!("{} [default: {default}]", setting.doc())
}

/// How a declared default becomes the field's value: a string or path from `"text"`, a list
/// from `["a", "b"]`, anything else as is.
trait DeclaredDefault<T> {
    fn into_value(self) -> T;
}

impl<T> DeclaredDefault<T> for T {
    fn into_value(self) -> T {
        self
    }
}

impl DeclaredDefault<String> for &str {
    fn into_value(self) -> String {
        self.to_string()
    }
}

impl DeclaredDefault<PathBuf> for &str {
    fn into_value(self) -> PathBuf {
        PathBuf::from(self)
    }
}

impl<const N: usize> DeclaredDefault<Vec<String>> for [&str; N] {
    fn into_value(self) -> Vec<String> {
        self.map(String::from).to_vec()
    }
}

/// A default value as `--help` and the README show it (Markdown).
trait ShowDefault {
    fn show(&self) -> String;
}

macro_rules! show_with_display {
    ($($t:ty),*) => {$(
        impl ShowDefault for $t {
            fn show(&self) -> String {
                format!("`{self}`")
            }
        }
    )*};
}

show_with_display!(String, IpAddr, bool, u32, u64, usize, f64);

impl ShowDefault for PathBuf {
    fn show(&self) -> String {
        format!("`{}`", self.display())
    }
}

impl ShowDefault for Vec<String> {
    fn show(&self) -> String {
        if self.is_empty() {
            return "empty".into();
        }
        let items: Vec<String> = self.iter().map(ShowDefault::show).collect();
        items.join(", ")
    }
}

impl<T: ShowDefault> ShowDefault for Option<T> {
    fn show(&self) -> String {
        self.as_ref()
            .map_or_else(|| "none".into(), ShowDefault::show)
    }
}

/// A configuration problem, naming the setting and what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting's value is malformed or out of range.
    #[error("{setting} = {value}: expected {expected}")]
    Invalid {
        /// The setting.
        setting: Setting,
        /// Its value, as Rust debug-prints it (strings quoted).
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A setting that works only with others that are not set: a TLS listener, certificate
    /// or client CA without the certificate or key.
    #[error("{setting} = {value} needs {}", join(needs, " and "))]
    Needs {
        /// The setting given.
        setting: Setting,
        /// Its value, as Rust debug-prints it.
        value: String,
        /// The settings missing.
        needs: Vec<Setting>,
    },
    /// A certificate, key or CA file cannot be read, holds no usable PEM, or the key does
    /// not match the certificate (the message names the file).
    #[error("{}: {source}", join(settings, ", "))]
    Tls {
        /// The settings that name the files.
        settings: Vec<Setting>,
        /// What is wrong.
        source: siprec_sip_tokio::Error,
    },
    /// The storage location or its S3 settings cannot be used.
    #[error("{storage} or [s3]: {0}", storage = Setting::storage)]
    Storage(siprec_storage::Error),
    /// The TOML file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn join(settings: &[Setting], sep: &str) -> String {
    let names: Vec<String> = settings.iter().map(Setting::to_string).collect();
    names.join(sep)
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Listeners.
    pub listen: Vec<ListenAddr>,
    /// RTP range, inclusive.
    pub rtp_ports: (u16, u16),
    /// Storage location.
    pub storage: String,
    /// Spool directory.
    pub spool: PathBuf,
    /// Media timeout.
    pub media_timeout: Duration,
    /// SDP address override.
    pub media_ip: Option<IpAddr>,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most open TCP/TLS connections.
    pub max_connections: usize,
    /// Instance id.
    pub instance_id: String,
    /// Certificate and key of the `tls:` listeners (loaded whenever they are configured).
    pub tls: Option<TlsServer>,
    /// S3 settings.
    pub s3: S3Options,
    /// Spool limit in bytes (`None`: no limit).
    pub spool_max_bytes: Option<u64>,
    /// Time live sessions get to end at shutdown.
    pub shutdown_grace: Duration,
    /// Time pending uploads get at shutdown.
    pub shutdown_upload_wait: Duration,
    /// Cap of the upload retry back-off.
    pub upload_retry_max: Duration,
    /// Timeline jitter window.
    pub jitter: Duration,
    /// Spool checkpoint interval.
    pub checkpoint: Duration,
    /// Media clock speed.
    pub media_clock_rate: f64,
    /// Media threads (resolved: at least 1).
    pub media_threads: usize,
    /// `Some(interval)`: media threads read every socket on a timer instead of epoll.
    pub media_sweep: Option<Duration>,
    /// Networks allowed to send SIP (empty: any).
    pub sip_allow: Vec<ipnet::IpNet>,
    /// New sessions per second per source (0: no limit).
    pub invite_rate: f64,
    /// INVITE burst per source.
    pub invite_burst: u32,
    /// Largest metadata document, bytes.
    pub max_metadata_bytes: usize,
    /// RTP latching on.
    pub rtp_latching: bool,
    /// WAV rate (0: auto).
    pub recording_rate: u32,
    /// Accepted codecs.
    pub codecs: Vec<String>,
    /// SRTP policy.
    pub srtp: siprec_core::SrtpPolicy,
    /// Address of the HTTP endpoints (`None`: off).
    pub http: Option<std::net::SocketAddr>,
    /// Bearer token of the HTTP endpoints (`None`: none, loopback only).
    pub http_token: Option<String>,
}

impl Config {
    /// Reads a TOML file (keys as in [`Config`], e.g. `rtp_ports = "20000-20999"`); keys it
    /// leaves out keep their defaults.
    pub fn from_toml_file(path: &Path) -> Result<Config, ConfigError> {
        let err = |reason: String| ConfigError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Checks every setting and returns the typed form.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let tls = self.check_tls()?;
        Ok(Validated {
            listen: self.check_listen(tls.is_some())?,
            tls,
            rtp_ports: check_rtp_ports(&self.rtp_ports)?,
            storage: self.check_storage()?,
            s3: self.s3.clone(),
            spool: self.spool.clone(),
            media_timeout: secs(at_least(Setting::media_timeout, self.media_timeout, 1)?),
            media_ip: self.media_ip,
            max_sessions: at_least(Setting::max_sessions, self.max_sessions, 1)?,
            max_connections: at_least(Setting::max_connections, self.max_connections, 1)?,
            instance_id: self.instance_id.clone().unwrap_or_else(host_name),
            spool_max_bytes: check_spool_max(self.spool_max_mb)?,
            shutdown_grace: secs(self.shutdown_grace),
            shutdown_upload_wait: secs(self.shutdown_upload_wait),
            upload_retry_max: secs(at_least(
                Setting::upload_retry_max,
                self.upload_retry_max,
                1,
            )?),
            jitter: ms(within(Setting::jitter_ms, self.jitter_ms, 0..=5000)?),
            checkpoint: ms(within(
                Setting::checkpoint_ms,
                self.checkpoint_ms,
                10..=10_000,
            )?),
            media_clock_rate: within(
                Setting::media_clock_rate,
                self.media_clock_rate,
                0.01..=1000.0,
            )?,
            media_threads: match self.media_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => within(Setting::media_threads, n, 1..=256)?,
            },
            media_sweep: match self.media_sweep_ms {
                0 => None,
                n => Some(ms(within(Setting::media_sweep_ms, n, 1..=50)?)),
            },
            sip_allow: check_sip_allow(&self.sip_allow)?,
            invite_rate: check_invite_rate(self.invite_rate)?,
            invite_burst: at_least(Setting::invite_burst, self.invite_burst, 1)?,
            max_metadata_bytes: within(Setting::max_metadata_kb, self.max_metadata_kb, 1..=64)?
                as usize
                * 1024,
            rtp_latching: self.rtp_latching,
            recording_rate: one_of(
                Setting::recording_rate,
                self.recording_rate,
                &[0, 8000, 16000, 48000],
            )?,
            codecs: check_codecs(&self.codecs)?,
            srtp: check_srtp(&self.srtp)?,
            http: self.check_http()?,
            http_token: self.http_token.clone(),
        })
    }

    /// The HTTP address; one other than loopback needs a token.
    fn check_http(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if let Some(t) = &self.http_token {
            if t.trim().is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                let expected = "a non-empty token without spaces";
                return Err(invalid(Setting::http_token, "(hidden)", expected));
            }
        }
        let Some(h) = &self.http else {
            return Ok(None);
        };
        let addr: std::net::SocketAddr = h.trim().parse().map_err(|_| {
            invalid(
                Setting::http,
                h,
                "IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
            )
        })?;
        if !addr.ip().is_loopback() && self.http_token.is_none() {
            return Err(needs(Setting::http, h, vec![Setting::http_token]));
        }
        Ok(Some(addr))
    }

    /// The certificate and key of the `tls:` listeners, with the client CA when set.
    fn check_tls(&self) -> Result<Option<TlsServer>, ConfigError> {
        let (cert, key, ca) = (Setting::tls_cert, Setting::tls_key, Setting::tls_client_ca);
        let server = match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(c), Some(k), _) => {
                TlsServer::from_pem_files(c, k).map_err(|source| ConfigError::Tls {
                    settings: vec![cert, key],
                    source,
                })?
            }
            (Some(c), None, _) => return Err(needs(cert, c, vec![key])),
            (None, Some(k), _) => return Err(needs(key, k, vec![cert])),
            (None, None, Some(a)) => return Err(needs(ca, a, vec![cert, key])),
            (None, None, None) => return Ok(None),
        };
        match &self.tls_client_ca {
            Some(a) => server
                .require_client_cert(a)
                .map(Some)
                .map_err(|source| ConfigError::Tls {
                    settings: vec![ca],
                    source,
                }),
            None => Ok(Some(server)),
        }
    }

    /// The listeners; a `tls:` one needs the certificate and key (`have_tls`).
    fn check_listen(&self, have_tls: bool) -> Result<Vec<ListenAddr>, ConfigError> {
        let setting = Setting::listen;
        if self.listen.is_empty() {
            return Err(invalid(setting, &self.listen, "at least one listener"));
        }
        let check = |l: &String| {
            let addr: ListenAddr = l.parse().map_err(|_| {
                let expected =
                    "udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (e.g. udp:0.0.0.0:5060)";
                invalid(setting, l, expected)
            })?;
            if addr.transport == Transport::Tls && !have_tls {
                return Err(needs(setting, l, vec![Setting::tls_cert, Setting::tls_key]));
            }
            Ok(addr)
        };
        self.listen.iter().map(check).collect()
    }

    /// The storage location. An S3 location is opened here so a bad URL or setting stops the
    /// start with a clear message (nothing is contacted yet); a directory is created only
    /// when serving.
    fn check_storage(&self) -> Result<String, ConfigError> {
        let storage = self.storage.trim();
        let s3_given = self.s3 != S3Options::default();
        let plain_dir = !storage.is_empty() && !storage.contains("://");
        if s3_given || !(plain_dir || storage.starts_with("file://")) {
            siprec_storage::Store::open_with(storage, &self.s3).map_err(ConfigError::Storage)?;
        }
        Ok(self.storage.clone())
    }
}

fn invalid(setting: Setting, value: impl fmt::Debug, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: format!("{value:?}"),
        expected: expected.into(),
    }
}

fn needs(setting: Setting, value: impl fmt::Debug, needs: Vec<Setting>) -> ConfigError {
    ConfigError::Needs {
        setting,
        value: format!("{value:?}"),
        needs,
    }
}

fn at_least<T>(setting: Setting, value: T, min: T) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Debug + fmt::Display,
{
    if value >= min {
        Ok(value)
    } else {
        Err(invalid(setting, value, format!("at least {min}")))
    }
}

fn within<T>(setting: Setting, value: T, range: RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Debug + fmt::Display,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        let expected = format!("{} to {}", range.start(), range.end());
        Err(invalid(setting, value, expected))
    }
}

fn one_of<T>(setting: Setting, value: T, accepted: &[T]) -> Result<T, ConfigError>
where
    T: PartialEq + fmt::Debug + fmt::Display,
{
    if accepted.contains(&value) {
        Ok(value)
    } else {
        let list: Vec<String> = accepted.iter().map(T::to_string).collect();
        Err(invalid(
            setting,
            value,
            format!("one of {}", list.join(", ")),
        ))
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn check_rtp_ports(range: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || {
        let expected = "LOW-HIGH with 1024 <= LOW < HIGH <= 65535, e.g. 20000-29999";
        invalid(Setting::rtp_ports, range, expected)
    };
    let (lo, hi) = range.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo < 1024 || lo >= hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The spool limit in bytes (`None`: no limit).
fn check_spool_max(mb: u64) -> Result<Option<u64>, ConfigError> {
    let max = u64::MAX >> 20;
    let mb = within(Setting::spool_max_mb, mb, 0..=max)?;
    Ok((mb > 0).then_some(mb << 20))
}

fn check_sip_allow(allow: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let parse = |a: &String| {
        let a = a.trim();
        a.parse::<ipnet::IpNet>()
            .or_else(|_| a.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                let expected = "an address or a network like 10.0.0.0/8 or 2001:db8::/32";
                invalid(Setting::sip_allow, a, expected)
            })
    };
    allow.iter().map(parse).collect()
}

fn check_invite_rate(rate: f64) -> Result<f64, ConfigError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(rate)
    } else {
        let expected = "0 (no limit) or more new sessions per second";
        Err(invalid(Setting::invite_rate, rate, expected))
    }
}

fn check_codecs(codecs: &[String]) -> Result<Vec<String>, ConfigError> {
    let expected = "PCMU, PCMA, G722 or opus, optionally as NAME/RATE";
    if codecs.is_empty() {
        return Err(invalid(
            Setting::codecs,
            codecs,
            format!("at least one of {expected}"),
        ));
    }
    let check = |c: &String| {
        let name = c.split('/').next().unwrap_or("").trim();
        if siprec_rtp::Codec::from_encoding(name).is_audio() {
            Ok(c.trim().to_string())
        } else {
            Err(invalid(Setting::codecs, c, expected))
        }
    };
    codecs.iter().map(check).collect()
}

fn check_srtp(srtp: &str) -> Result<siprec_core::SrtpPolicy, ConfigError> {
    match srtp.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(siprec_core::SrtpPolicy::Off),
        "optional" => Ok(siprec_core::SrtpPolicy::Optional),
        "required" => Ok(siprec_core::SrtpPolicy::Required),
        _ => Err(invalid(Setting::srtp, srtp, "off, optional or required")),
    }
}

/// The default instance id: the host name, else `srs`.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "srs".into())
}

#[cfg(test)]
mod tests;
