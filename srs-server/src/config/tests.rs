use super::*;

#[test]
fn security_settings_validate_with_clear_errors() {
    let v = Config {
        sip_allow: vec![
            "10.0.0.0/8".into(),
            " 192.0.2.7 ".into(),
            "2001:db8::/32".into(),
        ],
        ..Config::default()
    }
    .validate()
    .unwrap();
    assert_eq!(v.sip_allow.len(), 3);
    assert_eq!(v.max_connections, 10_000);
    let e = Config {
        max_connections: 0,
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "max_connections (--max-connections, SRS_MAX_CONNECTIONS) = 0: expected at least 1"
    );
    assert!(v.sip_allow[1].contains(&"192.0.2.7".parse::<IpAddr>().unwrap()));
    assert_eq!(v.max_metadata_bytes, 32 * 1024);
    assert!(v.rtp_latching);
    let e = Config {
        sip_allow: vec!["10.0.0.0/33".into()],
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("sip_allow (--sip-allow, SRS_SIP_ALLOW) = \"10.0.0.0/33\": expected"),
        "{e}"
    );
    let e = Config {
        tls_client_ca: Some("/nonexistent/ca.pem".into()),
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tls_client_ca (--tls-client-ca, SRS_TLS_CLIENT_CA) = \"/nonexistent/ca.pem\" needs \
             tls_cert (--tls-cert, SRS_TLS_CERT) and tls_key (--tls-key, SRS_TLS_KEY)"
    );
    for (rate, burst, md, bad) in [
        (-1.0, 1, 32, Setting::invite_rate),
        (f64::NAN, 1, 32, Setting::invite_rate),
        (f64::INFINITY, 1, 32, Setting::invite_rate),
        (1.0, 0, 32, Setting::invite_burst),
        (1.0, 1, 65, Setting::max_metadata_kb),
    ] {
        let c = Config {
            invite_rate: rate,
            invite_burst: burst,
            max_metadata_kb: md,
            ..Config::default()
        };
        match c.validate() {
            Err(ConfigError::Invalid { setting, .. }) => assert_eq!(setting, bad),
            other => panic!("{rate} {burst} {md}: {other:?}"),
        }
    }
}

#[test]
fn http_needs_a_token_beyond_loopback() {
    let c = |http: &str, token: Option<&str>| Config {
        http: Some(http.into()),
        http_token: token.map(String::from),
        ..Config::default()
    };
    let v = c("127.0.0.1:8080", None).validate().unwrap();
    assert_eq!(v.http, Some("127.0.0.1:8080".parse().unwrap()));
    assert!(c("[::1]:0", None).validate().is_ok());
    let e = c("0.0.0.0:8080", None).validate().unwrap_err().to_string();
    assert_eq!(
            e,
            "http (--http, SRS_HTTP) = \"0.0.0.0:8080\" needs http_token (--http-token, SRS_HTTP_TOKEN)"
        );
    let v = c("0.0.0.0:8080", Some("s3cret")).validate().unwrap();
    assert_eq!(v.http_token.as_deref(), Some("s3cret"));
    let e = c("localhost", None).validate().unwrap_err().to_string();
    assert!(
        e.starts_with("http (--http, SRS_HTTP) = \"localhost\": expected IP:PORT"),
        "{e}"
    );
    let e = c("127.0.0.1:1", Some(" "))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("http_token (--http-token"), "{e}");
    assert!(!e.contains(' ') || !e.contains("\" \""), "{e}");
    assert_eq!(Config::default().validate().unwrap().http, None);
}

#[test]
fn defaults_validate() {
    let v = Config::default().validate().unwrap();
    assert_eq!(v.rtp_ports, (20000, 29999));
    assert_eq!(v.listen.len(), 2);
    assert_eq!(v.media_timeout, Duration::from_secs(60));
    assert_eq!(v.spool_max_bytes, Some(10 << 30));
    assert_eq!(v.srtp, siprec_core::SrtpPolicy::Optional);
    assert_eq!(v.codecs, ["PCMU", "PCMA", "G722", "opus"]);
}

/// Each check names its setting by key, flag and variable, and shows the value.
#[test]
fn bad_values_name_the_setting() {
    let cases: Vec<(Config, Setting, &str)> = vec![
        (
            Config {
                rtp_ports: "30000-20000".into(),
                ..Config::default()
            },
            Setting::rtp_ports,
            "\"30000-20000\"",
        ),
        (
            Config {
                listen: vec!["ws:0.0.0.0:80".into()],
                ..Config::default()
            },
            Setting::listen,
            "\"ws:0.0.0.0:80\"",
        ),
        (
            Config {
                listen: vec![],
                ..Config::default()
            },
            Setting::listen,
            "[]",
        ),
        (
            Config {
                media_timeout: 0,
                ..Config::default()
            },
            Setting::media_timeout,
            "0",
        ),
        (
            Config {
                checkpoint_ms: 1,
                ..Config::default()
            },
            Setting::checkpoint_ms,
            "1",
        ),
        (
            Config {
                jitter_ms: 5001,
                ..Config::default()
            },
            Setting::jitter_ms,
            "5001",
        ),
        (
            Config {
                media_clock_rate: f64::NAN,
                ..Config::default()
            },
            Setting::media_clock_rate,
            "NaN",
        ),
        (
            Config {
                upload_retry_max: 0,
                ..Config::default()
            },
            Setting::upload_retry_max,
            "0",
        ),
        (
            Config {
                max_sessions: 0,
                ..Config::default()
            },
            Setting::max_sessions,
            "0",
        ),
        (
            Config {
                spool_max_mb: u64::MAX,
                ..Config::default()
            },
            Setting::spool_max_mb,
            "18446744073709551615",
        ),
        (
            Config {
                recording_rate: 44100,
                ..Config::default()
            },
            Setting::recording_rate,
            "44100",
        ),
        (
            Config {
                codecs: vec!["PCMU".into(), "H264".into()],
                ..Config::default()
            },
            Setting::codecs,
            "\"H264\"",
        ),
        (
            Config {
                codecs: vec![],
                ..Config::default()
            },
            Setting::codecs,
            "[]",
        ),
        (
            Config {
                srtp: "mandatory".into(),
                ..Config::default()
            },
            Setting::srtp,
            "\"mandatory\"",
        ),
    ];
    for (config, setting, value) in cases {
        let e = config.validate().unwrap_err();
        let ConfigError::Invalid { setting: s, .. } = &e else {
            panic!("{setting:?}: {e:?}");
        };
        assert_eq!(*s, setting, "{e}");
        let start = format!("{setting} = {value}: expected ");
        assert!(e.to_string().starts_with(&start), "{e}");
        assert!(e.to_string().contains(&setting.flag()), "{e}");
    }
}

#[test]
fn tls_listener_needs_a_valid_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Config {
        listen: vec!["tls:127.0.0.1:5061".into()],
        ..Config::default()
    };
    let e = tls.validate().unwrap_err();
    assert!(
        matches!(&e, ConfigError::Needs { setting, .. } if *setting == Setting::listen),
        "{e}"
    );
    assert!(e.to_string().contains("tls:127.0.0.1:5061"), "{e}");
    assert!(e.to_string().contains("--tls-cert"), "{e}");
    assert!(e.to_string().contains("--tls-key"), "{e}");

    let cert = dir.path().join("srs.crt");
    let key = dir.path().join("srs.key");
    let c = Config {
        tls_cert: Some(cert.clone()),
        ..tls.clone()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("tls_cert (--tls-cert, SRS_TLS_CERT) = "),
        "{e}"
    );
    assert!(e.ends_with("needs tls_key (--tls-key, SRS_TLS_KEY)"), "{e}");

    // Unreadable file: the message names it.
    let c = Config {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.clone()),
        ..tls.clone()
    };
    let e = c.validate().unwrap_err();
    assert!(matches!(e, ConfigError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("srs.crt"), "{e}");
    assert!(e.to_string().starts_with("tls_cert (--tls-cert"), "{e}");

    // Invalid PEM.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    std::fs::write(&key, "").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("srs.crt") && e.contains("PEM"), "{e}");

    // A real certificate and key.
    let ck = rcgen::generate_simple_self_signed(vec!["srs.test".into()]).unwrap();
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("srs.key") && e.contains("private key"), "{e}");
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let v = c.validate().unwrap();
    assert!(v.tls.is_some());
    assert_eq!(v.listen[0].transport, Transport::Tls);

    // A client CA that is not PEM: named by its setting.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let c = Config {
        tls_client_ca: Some(ca),
        ..c
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("tls_client_ca (--tls-client-ca"), "{e}");

    let t: Config = toml::from_str(
        "listen = [\"tls:0.0.0.0:5061\"]\ntls_cert = \"a.pem\"\ntls_key = \"b.pem\"\n",
    )
    .unwrap();
    assert_eq!(t.tls_cert.as_deref(), Some(Path::new("a.pem")));
    assert_eq!(t.tls_key.as_deref(), Some(Path::new("b.pem")));
}

#[test]
fn toml_round_trip_and_unknown_keys_rejected() {
    let c: Config = toml::from_str("rtp_ports = \"40000-40100\"\nmedia_timeout = 5\n").unwrap();
    assert_eq!(c.rtp_ports, "40000-40100");
    assert_eq!(c.media_timeout, 5);
    assert_eq!(c.storage, "./recordings");
    assert!(toml::from_str::<Config>("rtp_port = \"1-2\"").is_err());
    let c: Config = toml::from_str(
            "storage = \"s3://recordings/srs\"\nspool_max_mb = 5\n[s3]\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\nallow_http = true\n",
        )
        .unwrap();
    assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    let v = c.validate().unwrap();
    assert_eq!(v.spool_max_bytes, Some(5 * 1024 * 1024));
    assert!(toml::from_str::<Config>("[s3]\nbucket = \"x\"\n").is_err());
}

#[test]
fn storage_is_checked() {
    let c = Config {
        storage: "s3://".into(),
        ..Config::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("storage (--storage, SRS_STORAGE) or [s3]: "),
        "{e}"
    );
    assert!(e.contains("no bucket"), "{e}");
}

/// The README's settings table as the declarations give it: flag, TOML key and variable
/// from the clap arguments, default and meaning from [`SETTINGS`].
fn settings_table() -> String {
    use clap::Args;
    let cmd = CommandLine::augment_args(clap::Command::new("srs-server"));
    let arg = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| panic!("no argument {id}"))
    };
    let flag_and_env = |a: &clap::Arg| {
        let list = a.get_value_delimiter().is_some();
        let values: Vec<String> = a
            .get_value_names()
            .unwrap_or_default()
            .iter()
            .map(|v| v.to_string())
            .collect();
        let flag = format!(
            "`--{} {}`{}",
            a.get_long().unwrap(),
            values.join(" "),
            if list { " (repeatable)" } else { "" }
        );
        let env = format!(
            "`{}`{}",
            a.get_env().unwrap().to_string_lossy(),
            if list { " (comma-separated)" } else { "" }
        );
        (flag, env)
    };
    let mut t = String::from("| flag | TOML key | environment | default | meaning |\n");
    t += "|---|---|---|---|---|\n";
    let config = arg("config");
    let (flag, env) = flag_and_env(config);
    let meaning = config.get_help().unwrap().to_string();
    t += &format!("| {flag} | | {env} | none | {meaning} |\n");
    for s in SETTINGS {
        let (flag, env) = flag_and_env(arg(s.key()));
        let (key, default, meaning) = (s.key(), s.default_text(), s.doc().replace('|', "\\|"));
        t += &format!("| {flag} | `{key}` | {env} | {default} | {meaning} |\n");
    }
    t += "| | `[s3]` table | `AWS_*` | | see [Storage](#storage-a-directory-s3-or-garage) |\n";
    t
}

const REGENERATE: &str = "UPDATE_README=1 cargo test -p srs-server --lib readme";

/// The settings table of README.md (between the two marker comments) is the one the
/// declarations render; `UPDATE_README=1` rewrites it.
#[test]
fn readme_settings_table_matches_the_declarations() {
    let begin = "<!-- srs-server settings: generated from srs-server/src/config.rs";
    let end = "<!-- end of srs-server settings -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(begin)
        .expect("README.md: no settings table marker");
    let start = start + readme[start..].find('\n').unwrap() + 1;
    let stop = start + readme[start..].find(end).expect("README.md: no end marker");
    let (current, table) = (&readme[start..stop], settings_table());
    if current == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (current.lines().collect(), table.lines().collect());
    let mut diff = String::new();
    for l in old.iter().filter(|l| !new.contains(l)) {
        diff += &format!("- {l}\n");
    }
    for l in new.iter().filter(|l| !old.contains(l)) {
        diff += &format!("+ {l}\n");
    }
    if diff.is_empty() {
        diff = "(same rows, other order)\n".into();
    }
    panic!("README.md settings table differs from the declarations (- README, + declarations):\n{diff}regenerate it with: {REGENERATE}");
}

/// Flags and variables are named after the TOML key, and `--help` says the doc and the
/// default.
#[test]
fn flags_variables_and_help_follow_the_key() {
    use clap::Args;
    let cmd = Overrides::augment_args(clap::Command::new("srs-server"));
    let args: Vec<&clap::Arg> = cmd.get_arguments().collect();
    assert_eq!(args.len(), SETTINGS.len());
    for (a, s) in args.iter().zip(SETTINGS) {
        assert_eq!(a.get_id(), s.key());
        assert_eq!(format!("--{}", a.get_long().unwrap()), s.flag());
        let env = format!("SRS_{}", s.key().to_ascii_uppercase());
        assert_eq!(a.get_env().unwrap().to_str(), Some(env.as_str()));
        assert_eq!(s.env(), env);
        assert_eq!(a.get_value_names().map(|v| v.len()), Some(1), "{}", s.key());
        let help = a.get_help().unwrap().to_string();
        assert!(help.starts_with(s.doc()), "{help}");
        assert!(
            help.ends_with(']') && help.contains(" [default: "),
            "{help}"
        );
    }
    let listen = help_text(&Setting::listen);
    assert!(
        listen.ends_with("[default: udp:0.0.0.0:5060, tcp:0.0.0.0:5060]"),
        "{listen}"
    );
}

/// Overrides replace what they give and nothing else; an `Option` setting takes a plain
/// value.
#[test]
fn apply_sets_only_what_is_given() {
    let mut c = Config {
        media_timeout: 5,
        ..Config::default()
    };
    c.apply(Overrides {
        jitter_ms: Some(80),
        instance_id: Some("srs-7".into()),
        codecs: Some(vec!["opus".into()]),
        ..Overrides::default()
    });
    assert_eq!(c.media_timeout, 5);
    assert_eq!(c.jitter_ms, 80);
    assert_eq!(c.instance_id.as_deref(), Some("srs-7"));
    assert_eq!(c.codecs, ["opus"]);
    assert_eq!(c.rtp_ports, Config::default().rtp_ports);
}
