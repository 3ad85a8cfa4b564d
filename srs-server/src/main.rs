//! srs-server command line: flags, environment and TOML → [`srs_server::Config`] → `run`.

use anyhow::Context;
use clap::Parser;

/// SIPREC recording server (RFC 7865/7866): records each recording session to a stereo WAV
/// (one participant per channel) and publishes audio, metadata and recording.json to storage.
///
/// Settings come from, in increasing priority: built-in defaults, the TOML file (--config),
/// environment variables, flags.
#[derive(Debug, Parser)]
#[command(name = "srs-server", version)]
struct Cli {
    #[command(flatten)]
    settings: srs_server::config::CommandLine,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = Cli::parse()
        .settings
        .into_config()?
        .validate()
        .context("invalid configuration")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(srs_server::run(cfg, shutdown_signal()))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// A setting given as a flag, an `SRS_*` variable and in the TOML file takes the flag,
    /// then the variable, then the file, then the default — for numbers, strings, lists,
    /// paths, booleans and the SRTP policy. (The only test of this binary that touches the
    /// environment.)
    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("srs.toml");
        let toml = r#"
            media_timeout = 5
            storage = "/file/recordings"
            codecs = ["PCMU"]
            spool = "/file/spool"
            rtp_latching = true
            srtp = "off"
            max_sessions = 8
            sip_allow = ["10.0.0.0/8"]
            tls_cert = "/file/cert.pem"
            media_clock_rate = 2.0
            jitter_ms = 100
            rtp_ports = "30000-30999"
            media_ip = "192.0.2.1"
        "#;
        std::fs::write(&file, toml).unwrap();
        let env = [
            ("SRS_CONFIG", file.to_str().unwrap()),
            ("SRS_MEDIA_TIMEOUT", "6"),
            ("SRS_STORAGE", "/env/recordings"),
            ("SRS_CODECS", "PCMA,G722"),
            ("SRS_SPOOL", "/env/spool"),
            ("SRS_RTP_LATCHING", "true"),
            ("SRS_SRTP", "required"),
            ("SRS_MAX_SESSIONS", "9"),
            ("SRS_SIP_ALLOW", "192.0.2.0/24,198.51.100.7"),
            ("SRS_TLS_CERT", "/env/cert.pem"),
            ("SRS_MEDIA_CLOCK_RATE", "3"),
        ];
        for (k, v) in env {
            std::env::set_var(k, v);
        }
        let flags = [
            "srs-server",
            "--media-timeout=7",
            "--storage=/flag/recordings",
            "--codecs=opus",
            "--codecs=G722",
            "--spool=/flag/spool",
            "--rtp-latching=false",
            "--srtp=optional",
        ];
        let cli = Cli::try_parse_from(flags);
        for (k, _) in env {
            std::env::remove_var(k);
        }
        let c = cli.unwrap().settings.into_config().unwrap();

        // The flag wins over the variable and the file.
        assert_eq!(c.media_timeout, 7);
        assert_eq!(c.storage, "/flag/recordings");
        assert_eq!(c.codecs, ["opus", "G722"]);
        assert_eq!(c.spool, Path::new("/flag/spool"));
        assert!(!c.rtp_latching);
        assert_eq!(c.srtp, "optional");
        // The variable wins over the file.
        assert_eq!(c.max_sessions, 9);
        assert_eq!(c.sip_allow, ["192.0.2.0/24", "198.51.100.7"]);
        assert_eq!(c.tls_cert.as_deref(), Some(Path::new("/env/cert.pem")));
        assert_eq!(c.media_clock_rate, 3.0);
        // The file wins over the default.
        assert_eq!(c.jitter_ms, 100);
        assert_eq!(c.rtp_ports, "30000-30999");
        assert_eq!(c.media_ip, Some("192.0.2.1".parse().unwrap()));
        // Nothing given: the default.
        let d = srs_server::Config::default();
        assert_eq!(c.invite_burst, d.invite_burst);
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.tls_key, None);

        // No file: the defaults under the flags.
        let c = Cli::try_parse_from(["srs-server", "--max-sessions", "3"])
            .unwrap()
            .settings
            .into_config()
            .unwrap();
        assert_eq!(
            c,
            srs_server::Config {
                max_sessions: 3,
                ..srs_server::Config::default()
            }
        );
    }

    /// A file that does not parse or has an unknown key stops the start and is named.
    #[test]
    fn bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("srs.toml");
        std::fs::write(&file, "rtp_port = \"1-2\"\n").unwrap();
        let arg = format!("--config={}", file.display());
        let e = Cli::try_parse_from(["srs-server", arg.as_str()])
            .unwrap()
            .settings
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("config file {}: ", file.display())),
            "{e}"
        );
        assert!(e.contains("rtp_port"), "{e}");
    }
}
