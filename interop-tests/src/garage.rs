//! Garage (a real S3-compatible object store, <https://garagehq.deuxfleurs.fr/>) on loopback
//! for the storage tests: one node, SQLite metadata, replication factor 1, a bucket and a key
//! with read/write on it, all in a temporary directory.
//!
//! The binary comes from `GARAGE_BIN`, the tool cache of `.ci/garage-install`
//! (`~/.cache/siprec-tools/garage-2.5.0/bin/garage`), `PATH`, or `~/.cargo/bin`. Install it
//! once with `bash .ci/garage-install` (`cargo install garage --locked`, tens of minutes on
//! two cores; the binary is cached). Tests that need Garage fail with that instruction when
//! it is missing; they never skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::process::{Child, Command};

/// The Garage version the harness is written for.
pub const GARAGE_VERSION: &str = "2.5.0";

/// What an S3 client needs to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// `http://127.0.0.1:PORT`.
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
    /// The same as srs-server / siprec-storage S3 settings.
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
}

/// A running single-node Garage.
#[derive(Debug)]
pub struct Garage {
    bin: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    s3_port: u16,
    child: Option<Child>,
    creds: S3Credentials,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Garage {
    /// The garage binary; panics with how to install it when there is none.
    pub fn binary() -> PathBuf {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let cache = std::env::var_os("SIPREC_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache/siprec-tools"));
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("GARAGE_BIN") {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(cache.join(format!("garage-{GARAGE_VERSION}/bin/garage")));
        let path = std::env::var_os("PATH").unwrap_or_default();
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("garage")));
        candidates.push(home.join(".cargo/bin/garage"));
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "Garage is required by this test but not installed: run `bash .ci/garage-install` \
                     (builds `cargo install garage --version {GARAGE_VERSION} --locked` once and caches it), \
                     or set GARAGE_BIN"
                )
            })
    }

    /// Starts Garage, lays out its one node, creates `bucket` and a key allowed on it, and
    /// returns once an S3 PUT and GET through the API work.
    pub async fn start(bucket: &str) -> anyhow::Result<Garage> {
        let bin = Garage::binary();
        let dir = tempfile::tempdir()?;
        let (rpc_port, s3_port) = (free_tcp_port(), free_tcp_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.path().join("garage.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nconsistency_mode = \"consistent\"\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"garage\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\nroot_domain = \".s3.garage.localhost\"\n"
            ),
        )?;
        let mut g = Garage {
            bin,
            dir,
            config,
            s3_port,
            child: None,
            creds: S3Credentials {
                endpoint: format!("http://127.0.0.1:{s3_port}"),
                region: "garage".into(),
                access_key_id: String::new(),
                secret_access_key: String::new(),
                bucket: bucket.into(),
            },
        };
        g.spawn()?;
        g.wait_rpc().await?;
        let id = g.cli(&["node", "id", "-q"]).await?;
        let id = id.trim().split('@').next().unwrap_or_default().to_string();
        if id.is_empty() {
            bail!("garage node id printed nothing");
        }
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])
            .await?;
        g.cli(&["layout", "apply", "--version", "1"]).await?;
        g.cli(&["bucket", "create", bucket]).await?;
        let key = g.cli(&["key", "create", "siprec-test"]).await?;
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
            bucket,
            "--key",
            "siprec-test",
        ])
        .await?;
        g.wait_s3().await?;
        Ok(g)
    }

    /// Credentials and endpoint of the bucket.
    pub fn credentials(&self) -> S3Credentials {
        self.creds.clone()
    }

    /// The standard AWS environment for a child process (srs-server) using the bucket.
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

    /// Kills the server (a storage outage); its data stays.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }

    /// Starts it again on the same ports and data, and waits until S3 answers.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_rpc().await?;
        self.wait_s3().await
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
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
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "garage {}: {}\n{}\nserver log:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn wait_rpc(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!("garage exited ({st}); log:\n{}", self.log_tail());
                }
            }
            match self.cli(&["status"]).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(e.context("garage did not answer within 30 s"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// An S3 PUT then GET of a probe object, retried until it works (the layout and the key
    /// take a moment to be effective).
    async fn wait_s3(&self) -> anyhow::Result<()> {
        use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
        let store = siprec_storage::Store::open_with(
            &format!("s3://{}", self.creds.bucket),
            &self.creds.s3_options(),
        )?;
        let os: &std::sync::Arc<dyn ObjectStore> = store.object_store();
        let probe = object_store::path::Path::from(".garage-probe");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = async {
                os.put(&probe, PutPayload::from_static(b"ok")).await?;
                let got = os.get(&probe).await?.bytes().await?;
                os.delete(&probe).await?;
                anyhow::Ok(got)
            }
            .await;
            match r {
                Ok(b) if b.as_ref() == b"ok" => return Ok(()),
                Ok(_) => bail!("garage returned other bytes than written"),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "S3 on port {} not usable within 30 s; log:\n{}",
                        self.s3_port,
                        self.log_tail()
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The data directory (for diagnostics).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garage_starts_stops_and_keeps_data() {
        let mut g = Garage::start("probe").await.unwrap();
        let store =
            siprec_storage::Store::open_with("s3://probe", &g.credentials().s3_options()).unwrap();
        let os = store.object_store();
        let p = object_store::path::Path::from("a/b.txt");
        os.put(&p, PutPayload::from_static(b"kept")).await.unwrap();
        g.stop().await.unwrap();
        g.start_again().await.unwrap();
        let got = os.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), b"kept");
    }
}
