//! A private DNS server for tests: dnsmasq on 127.0.0.1, a free high port, serving only the
//! records the test gives it (no upstream, no hosts file, no system configuration).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use interop_tests::dns::{Dnsmasq, Record};
//! let dns = Dnsmasq::start(&[
//!     Record::srv("_sip._udp.srs.test", "a.srs.test", 5070, 10, 50),
//!     Record::host("a.srs.test", "127.0.0.2".parse()?),
//! ])
//! .await?;
//! println!("nameserver {}", dns.addr());
//! # Ok(()) }
//! ```
//!
//! dnsmasq is killed when the [`Dnsmasq`] is dropped. Every top-level domain used by a
//! record is served as local (`--local=/TLD/`): other names under it get NXDOMAIN at once,
//! so a resolver never waits for an upstream that does not exist.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

/// How to install dnsmasq, for the failure message.
pub const INSTALL: &str =
    "apt-get install -y dnsmasq-base (Debian; the binary only, no system service), \
     or run `bash .ci/test`, which installs it";

/// One DNS record served by [`Dnsmasq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// SRV (`--srv-host`): `name` is the owner, e.g. `_sip._udp.srs.test`.
    Srv {
        /// Owner name.
        name: String,
        /// Target host.
        target: String,
        /// Port.
        port: u16,
        /// Priority (lower first).
        priority: u16,
        /// Weight.
        weight: u16,
    },
    /// A or AAAA (`--host-record`).
    Host {
        /// Host name.
        name: String,
        /// Address.
        ip: IpAddr,
    },
    /// NAPTR (`--naptr-record`), empty regexp.
    Naptr {
        /// Owner name.
        name: String,
        /// Order.
        order: u16,
        /// Preference.
        preference: u16,
        /// Flags, `s` for SRV.
        flags: String,
        /// Service, e.g. `SIP+D2T`.
        service: String,
        /// Replacement (an SRV owner name).
        replacement: String,
    },
}

impl Record {
    /// An SRV record.
    pub fn srv(name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Record {
        Record::Srv {
            name: name.into(),
            target: target.into(),
            port,
            priority,
            weight,
        }
    }

    /// An A (IPv4) or AAAA (IPv6) record.
    pub fn host(name: &str, ip: IpAddr) -> Record {
        Record::Host {
            name: name.into(),
            ip,
        }
    }

    /// A NAPTR record with flag `s` pointing at an SRV owner name.
    pub fn naptr(
        name: &str,
        order: u16,
        preference: u16,
        service: &str,
        replacement: &str,
    ) -> Record {
        Record::Naptr {
            name: name.into(),
            order,
            preference,
            flags: "s".into(),
            service: service.into(),
            replacement: replacement.into(),
        }
    }

    fn owner(&self) -> &str {
        match self {
            Record::Srv { name, .. } | Record::Host { name, .. } | Record::Naptr { name, .. } => {
                name
            }
        }
    }

    fn arg(&self) -> String {
        match self {
            Record::Srv {
                name,
                target,
                port,
                priority,
                weight,
            } => format!("--srv-host={name},{target},{port},{priority},{weight}"),
            Record::Host { name, ip } => format!("--host-record={name},{ip}"),
            Record::Naptr {
                name,
                order,
                preference,
                flags,
                service,
                replacement,
            } => format!(
                "--naptr-record={name},{order},{preference},{flags},{service},,{replacement}"
            ),
        }
    }
}

/// The dnsmasq binary, or a panic that says how to install it (tests never skip).
pub fn dnsmasq_path() -> PathBuf {
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let p = dir.join("dnsmasq");
        if p.is_file() {
            return p;
        }
    }
    panic!("`dnsmasq` is required by this test but not installed: {INSTALL}");
}

/// A running dnsmasq; killed on drop.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq with these records and returns once it has answered a query.
    pub async fn start(records: &[Record]) -> anyhow::Result<Dnsmasq> {
        let bin = dnsmasq_path();
        let mut last = None;
        // A free port can be taken between probing it and dnsmasq binding it: retry a few.
        for _ in 0..5 {
            let port = free_port().await?;
            match Self::spawn(&bin, port, records).await {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("dnsmasq did not start")))
    }

    async fn spawn(bin: &PathBuf, port: u16, records: &[Record]) -> anyhow::Result<Dnsmasq> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tlds: BTreeSet<String> = records
            .iter()
            .filter_map(|r| r.owner().trim_end_matches('.').rsplit('.').next())
            .map(str::to_ascii_lowercase)
            .collect();
        let mut cmd = Command::new(bin);
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--pid-file",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .args(tlds.iter().map(|t| format!("--local=/{t}/")))
        .args(records.iter().map(Record::arg))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot run dnsmasq")?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no dnsmasq stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        let mut dns = Dnsmasq { child, addr };
        // dnsmasq logs "started" once its sockets are bound, or an error and exits.
        let started = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await? {
                let ok = line.contains("started, version");
                log.push(line);
                if ok {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match started {
            Ok(Ok(true)) => {}
            _ => {
                let _ = dns.child.kill().await;
                bail!("dnsmasq did not start on {addr}: {}", log.join(" | "));
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        dns.await_answer().await?;
        Ok(dns)
    }

    /// Sends a query until one is answered (bounded by a total deadline, no fixed sleeps).
    async fn await_answer(&mut self) -> anyhow::Result<()> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        sock.connect(self.addr).await?;
        let query = probe_query(0x5a17);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("dnsmasq exited: {status}");
            }
            sock.send(&query).await?;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(250), sock.recv(&mut buf)).await
            {
                if n >= 2 && buf.get(..2) == query.get(..2) {
                    return Ok(());
                }
            }
        }
        bail!("dnsmasq on {} never answered", self.addr)
    }

    /// Its address (127.0.0.1, UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1, from the ephemeral range.
async fn free_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let port = udp.local_addr()?.port();
        if tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(port);
        }
    }
    bail!("no free port for dnsmasq")
}

/// A DNS query for `probe.invalid. A` (RFC 1035 §4.1), recursion desired.
fn probe_query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(40);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["probe", "invalid"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
