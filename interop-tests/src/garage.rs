//! Garage (a real S3-compatible object store, <https://garagehq.deuxfleurs.fr/>, version
//! 2.5.0) on loopback for the storage tests: one node, SQLite metadata, replication factor 1,
//! consistency mode `consistent`, one bucket and one key allowed read/write/owner on it, all
//! in a temporary directory that goes away with the [`Garage`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use interop_tests::garage::Garage;
//! let mut g = Garage::start("recordings").await?; // ~1 s: the S3 API works on return
//! let c = g.credentials(); // endpoint http://127.0.0.1:PORT, region "garage", key, bucket
//! g.stop().await?; // SIGKILL: a storage outage; the data stays
//! g.start_again().await?; // same ports, same data
//! # Ok(()) }
//! ```
//!
//! **Installing Garage.** The binary is looked up in `GARAGE_BIN`, the tool cache of
//! `.ci/garage-install` (`${SIPREC_TOOLS_DIR:-~/.cache/siprec-tools}/garage-2.5.0/bin/garage`),
//! `PATH`, then `~/.cargo/bin`. Run `bash .ci/garage-install` once: it builds
//! `cargo install garage --version 2.5.0 --locked` (about 25 minutes on two cores) and caches
//! the binary; `.ci/test` does it for you. Tests that need Garage fail with that instruction
//! when it is missing; they never skip.
//!
//! **How it is set up.** The config file holds `rpc_secret` inline (Garage checks the
//! permissions of secret *files* only, so a world-readable config is fine). The CLI reaches
//! the daemon over RPC with the same config: `garage status` until it answers, `garage node
//! id -q`, `garage layout assign -z dc1 -c 1G <id>`, `garage layout apply --version 1`,
//! `garage bucket create <bucket>`, `garage key create <name>` (its `Key ID:` and `Secret
//! key:` lines are parsed), `garage bucket allow --read --write --owner <bucket> --key
//! <name>`. Then an S3 PUT, GET and DELETE of a probe object must work before
//! [`Garage::start`] returns. There is no admin API (nothing here needs it).
//!
//! **Worth knowing.** Garage 2.5.0 ignores `If-None-Match: *` on a plain PUT: object_store's
//! `PutMode::Create` overwrites an existing object instead of failing with `AlreadyExists`.
//! Do not rely on conditional writes against Garage.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::process::{Child, Command};

/// The Garage version the harness is written for (and `.ci/garage-install` installs).
pub const GARAGE_VERSION: &str = "2.5.0";

/// How to install Garage, for the failure message.
pub const INSTALL: &str = "run `bash .ci/garage-install` (builds `cargo install garage --locked`, \
     ~30 min once, then cached), or set GARAGE_BIN to a garage 2.5.0 binary";

/// How long the daemon and its S3 API get to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The key made for the bucket.
const KEY_NAME: &str = "siprec-test";

/// What an S3 client needs to reach the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `http://127.0.0.1:PORT` (path-style requests).
    pub endpoint: String,
    /// `garage`.
    pub region: String,
    /// Access key id (`GK…`).
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// The bucket made for the test.
    pub bucket: String,
}

impl S3Credentials {
    /// The same as srs-server / siprec-storage S3 settings (`[s3]` of the config).
    pub fn s3_options(&self) -> siprec_storage::S3Options {
        siprec_storage::S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            allow_http: Some(true),
            virtual_hosted_style: None,
        }
    }

    /// An S3 client on the whole bucket (siprec-storage's, so built the way srs-server
    /// builds it).
    pub fn object_store(&self) -> anyhow::Result<std::sync::Arc<dyn object_store::ObjectStore>> {
        let store =
            siprec_storage::Store::open_with(&format!("s3://{}", self.bucket), &self.s3_options())?;
        Ok(store.object_store().clone())
    }
}

/// A single-node Garage on loopback; killed when dropped.
#[derive(Debug)]
pub struct Garage {
    bin: PathBuf,
    config: PathBuf,
    rpc_port: u16,
    s3_port: u16,
    child: Option<Child>,
    creds: S3Credentials,
    /// Last: removed after the process is killed (see `Drop`).
    dir: tempfile::TempDir,
}

/// `n` distinct free loopback TCP ports (best effort: bound together, then released).
fn free_tcp_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Garage {
    /// The garage binary: `GARAGE_BIN`, the `.ci/garage-install` cache, `PATH`, then
    /// `~/.cargo/bin`. Panics with how to install it when there is none.
    pub fn binary() -> PathBuf {
        let cache = std::env::var_os("SIPREC_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cache/siprec-tools"));
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("GARAGE_BIN").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(cache.join(format!("garage-{GARAGE_VERSION}/bin/garage")));
        let path = std::env::var_os("PATH").unwrap_or_default();
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("garage")));
        candidates.push(home().join(".cargo/bin/garage"));
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!("Garage is required by this test but not installed: {INSTALL}")
            })
    }

    /// Starts Garage with a generated config, lays out its one node (zone `dc1`, 1 GB),
    /// creates `bucket_name` and a key allowed read/write/owner on it, and returns once an S3
    /// PUT and GET through the API work.
    pub async fn start(bucket_name: &str) -> anyhow::Result<Garage> {
        let bin = Garage::binary();
        let dir = tempfile::Builder::new().prefix("garage-").tempdir()?;
        let [rpc_port, s3_port] = free_tcp_ports::<2>();
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.path().join("garage.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#
            ),
        )?;
        let mut g = Garage {
            bin,
            config,
            rpc_port,
            s3_port,
            child: None,
            creds: S3Credentials {
                endpoint: format!("http://127.0.0.1:{s3_port}"),
                region: "garage".into(),
                access_key_id: String::new(),
                secret_access_key: String::new(),
                bucket: bucket_name.into(),
            },
            dir,
        };
        g.spawn()?;
        g.wait_rpc().await?;
        let id = g.cli(&["node", "id", "-q"]).await?;
        // `<64 hex digits>@127.0.0.1:PORT`
        let id = id.trim().split('@').next().unwrap_or_default().to_string();
        if id.is_empty() {
            bail!("`garage node id -q` printed no node id");
        }
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])
            .await?;
        g.cli(&["layout", "apply", "--version", "1"]).await?;
        g.cli(&["bucket", "create", bucket_name]).await?;
        let key = g.cli(&["key", "create", KEY_NAME]).await?;
        let field = |name: &str| -> anyhow::Result<String> {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow!("no {name:?} in `garage key create` output:\n{key}"))
        };
        g.creds.access_key_id = field("Key ID:")?;
        g.creds.secret_access_key = field("Secret key:")?;
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket_name,
            "--key",
            KEY_NAME,
        ])
        .await?;
        g.wait_s3().await?;
        Ok(g)
    }

    /// Endpoint, region, key and bucket.
    pub fn credentials(&self) -> S3Credentials {
        self.creds.clone()
    }

    /// The standard AWS environment for a child process (srs-server) or
    /// `AmazonS3Builder::from_env`: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP=true`.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.creds;
        vec![
            ("AWS_ENDPOINT_URL".into(), c.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), c.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key.clone()),
            ("AWS_REGION".into(), c.region.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// Kills the server with SIGKILL (a storage outage); its data stays. Connections to the
    /// S3 port are refused until [`Garage::start_again`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports and data, and waits until S3 PUT and GET
    /// work. Does nothing but wait when it is running.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            self.spawn()?;
        }
        self.wait_rpc().await?;
        self.wait_s3().await
    }

    /// Whether the server process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The temporary directory: `garage.toml`, `garage.log`, `meta/`, `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The RPC port (what the CLI talks to) and the S3 API port.
    pub fn ports(&self) -> (u16, u16) {
        (self.rpc_port, self.s3_port)
    }

    /// Runs `garage -c CONFIG ARGS` against this server and returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "`garage {}` failed ({}): {}{}\n--- garage server log (tail) ---\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim(),
                self.log_tail()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    /// The last 40 lines of the server's stdout and stderr.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} server", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Fails at once when the server process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        let exited = match self.child.as_mut() {
            Some(c) => c.try_wait()?,
            None => bail!("garage is stopped"),
        };
        if let Some(st) = exited {
            self.child = None;
            bail!(
                "garage server exited ({st})\n--- garage server log (tail) ---\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Polls `garage status` until the daemon answers over RPC.
    async fn wait_rpc(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            match self.cli(&["status"]).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "garage did not answer over RPC (port {}) within {READY_TIMEOUT:?}",
                        self.rpc_port
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// An S3 PUT, GET and DELETE of a probe object, retried until they work (the layout and
    /// the key take a moment to be effective).
    async fn wait_s3(&mut self) -> anyhow::Result<()> {
        use object_store::{ObjectStoreExt, PutPayload};
        let os = self.creds.object_store()?;
        let probe = object_store::path::Path::from(".garage-probe");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            let r = async {
                os.put(&probe, PutPayload::from_static(b"ok")).await?;
                let got = os.get(&probe).await?.bytes().await?;
                os.delete(&probe).await?;
                anyhow::Ok(got)
            }
            .await;
            match r {
                Ok(b) if b.as_ref() == b"ok" => return Ok(()),
                Ok(b) => bail!("garage returned {b:?} for a probe object holding \"ok\""),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "garage's S3 API (port {}) not usable within {READY_TIMEOUT:?}\n\
                         --- garage server log (tail) ---\n{}",
                        self.s3_port,
                        self.log_tail()
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // SIGKILL before the temporary directory goes (fields drop after this).
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
            let _ = c.try_wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn garage_starts_stops_and_keeps_data() {
        let t = Instant::now();
        let mut g = Garage::start("probe").await.unwrap();
        eprintln!("garage started in {:?}", t.elapsed());
        let c = g.credentials();
        assert_eq!(c.region, "garage");
        assert!(c.endpoint.starts_with("http://127.0.0.1:"), "{c:?}");
        assert!(c.access_key_id.starts_with("GK"), "{c:?}");
        let env = g.env();
        assert!(env.contains(&("AWS_ALLOW_HTTP".into(), "true".into())));

        let os = c.object_store().unwrap();
        let p = object_store::path::Path::from("a/b.txt");
        os.put(&p, PutPayload::from_static(b"kept")).await.unwrap();

        g.stop().await.unwrap();
        assert!(!g.is_running());
        assert!(os.get(&p).await.is_err(), "garage still answers after stop");

        let t = Instant::now();
        g.start_again().await.unwrap();
        eprintln!("garage started again in {:?}", t.elapsed());
        let got = os.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), b"kept");
    }
}
