//! srs-server as a child process, for what an in-process server cannot show: SIGKILL in the
//! middle of a call, SIGTERM handling and the exit status, the process's memory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The srs-server binary of this workspace's target directory (built if missing).
pub fn srs_server_bin() -> anyhow::Result<PathBuf> {
    workspace_bin("srs-server")
}

/// A binary (`srs-server`, `siprec-client`, ...) of this workspace's target directory, built
/// if missing.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    // Test executables live in target/<profile>/deps; binaries in target/<profile>.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .ok_or_else(|| anyhow!("cannot tell the target directory from {}", exe.display()))?
        .to_path_buf();
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // Whole-workspace feature resolution, as `cargo test --workspace` has: only the
        // binary is linked, no dependency is rebuilt with other features.
        cmd.args(["build", "--workspace", "--bin", name]);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().with_context(|| format!("building {name}"))?;
        if !st.success() || !bin.is_file() {
            bail!("cannot build {}", bin.display());
        }
    }
    Ok(bin)
}

/// A free loopback port for both UDP and TCP (best effort: bound, then released).
pub fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = t.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running srs-server process; its stderr (the log) is read line by line.
#[derive(Debug)]
pub struct SrsProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every log line seen so far.
    pub log: Vec<String>,
}

impl SrsProcess {
    /// Starts `srs-server ARGS` with extra environment variables and waits for its
    /// "srs-server listening" line.
    pub async fn spawn(args: &[String], env: &[(String, String)]) -> anyhow::Result<SrsProcess> {
        let mut cmd = Command::new(srs_server_bin()?);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting srs-server")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut p = SrsProcess {
            child,
            lines,
            log: Vec::new(),
        };
        p.wait_for_log("srs-server listening", Duration::from_secs(20))
            .await?;
        Ok(p)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Waits for a log line containing `needle` (lines seen before are searched too).
    pub async fn wait_for_log(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return Ok(l.clone());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return Ok(l);
                    }
                }
                Ok(None) => bail!(
                    "srs-server exited before logging {needle:?}; log:\n{}",
                    self.log.join("\n")
                ),
                Err(_) => bail!(
                    "no {needle:?} from srs-server within {timeout:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Counts log lines containing `needle`, waiting until there are `n` of them.
    pub async fn wait_for_count(
        &mut self,
        needle: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.log.iter().filter(|l| l.contains(needle)).count() < n {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => self.log.push(l),
                _ => bail!(
                    "fewer than {n} {needle:?} lines from srs-server within {timeout:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
        Ok(())
    }

    /// SIGKILL, as a crash or the OOM killer would: nothing is flushed or finished.
    pub async fn kill9(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !st.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// Waits for the process to exit, reading its log to the end; returns the exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let st = tokio::time::timeout(timeout, self.child.wait())
            .await
            .map_err(|_| anyhow!("srs-server did not exit within {timeout:?}"))??;
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(2), self.lines.recv()).await
        {
            self.log.push(l);
        }
        Ok(st.code())
    }

    /// Resident set size now and its peak (VmRSS, VmHWM), in KiB, from /proc.
    pub fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}
