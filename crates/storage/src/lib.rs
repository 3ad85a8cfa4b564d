//! Publication of finished recordings through [`object_store`].
//!
//! This crate owns the *storage layout* of a recording and the `recording.json` manifest:
//!
//! ```text
//! {YYYY}/{MM}/{DD}/{recording-key}/audio.wav
//! {YYYY}/{MM}/{DD}/{recording-key}/metadata/0001.xml   (every metadata document, byte for byte)
//! {YYYY}/{MM}/{DD}/{recording-key}/recording.json      (written last)
//! ```
//!
//! Call order: [`Store::open`] (or [`Store::open_with`]) once at start-up with the configured
//! location (a plain path, a `file://` URL, or `s3://bucket/prefix` for AWS S3 and S3-compatible
//! stores such as Garage), then [`Store::publish`] for each finished recording (optionally
//! after [`Store::reserve`] claimed its folder). Audio is streamed
//! from its spool file in parts ([`object_store::WriteMultipart`]), so a long recording is
//! never loaded whole into memory. `recording.json` is written last: whoever sees it finds
//! everything it names.
//!
//! Every identifier that reaches a storage key goes through [`sanitize_key`].
//!
//! ```
//! # tokio_test_block(async {
//! use siprec_storage::{Store, Publication, Manifest};
//! let dir = tempfile::tempdir().unwrap();
//! let spool = dir.path().join("a.wav");
//! std::fs::write(&spool, b"RIFF....WAVE").unwrap();
//! let store = Store::open(dir.path().join("recordings").to_str().unwrap()).unwrap();
//! let manifest = Manifest { recording_key: "call-1".into(), ..Manifest::default() };
//! let start = time::macros::datetime!(2026-11-28 10:00 UTC);
//! let done = store
//!     .publish(&Publication { start, key: "call-1", folder: None, audio: &spool, metadata: &[b"<recording/>".to_vec()], manifest: &manifest })
//!     .await
//!     .unwrap();
//! assert_eq!(done.folder, "2026/11/28/call-1");
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod manifest;

pub use manifest::{
    ChannelInfo, ChannelMapping, Manifest, ParticipantInfo, PauseInterval, StreamInfo,
};

use std::collections::HashSet;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

/// Size of each part read from the spool file and handed to the multipart upload.
/// S3 requires parts of at least 5 MiB (except the last).
pub const UPLOAD_PART_SIZE: usize = 5 * 1024 * 1024;

/// Longest recording key we keep (longer keys are cut, then made unique by the caller).
pub const MAX_KEY_LEN: usize = 128;

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Our configuration is wrong: the storage location cannot be used.
    #[error("invalid storage location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as configured.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The object store refused or failed an operation (network, permissions, disk full).
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
    /// Reading the local spool file failed.
    #[error("spool file {path}: {source}")]
    Spool {
        /// The spool file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest could not be serialised (a bug, never peer input).
    #[error("manifest serialisation: {0}")]
    Manifest(#[from] serde_json::Error),
}

/// Why an `s3://` location cannot be opened; reported as the reason of
/// [`Error::InvalidLocation`] (our configuration is wrong, never peer input).
#[derive(Debug, thiserror::Error)]
enum S3LocationError {
    /// `s3://` with nothing or `/...` after it.
    #[error("no bucket: use s3://bucket or s3://bucket/prefix")]
    NoBucket,
    /// The prefix has a `.` or `..` segment.
    #[error("the prefix must not contain . or .. segments")]
    DotSegment,
    /// object_store rejected the settings (bad endpoint URL, region, ...).
    #[error("{0}")]
    Builder(object_store::Error),
}

/// A recording ready to publish.
#[derive(Debug)]
pub struct Publication<'a> {
    /// When the recording started (UTC); selects the `{YYYY}/{MM}/{DD}` folder.
    pub start: time::OffsetDateTime,
    /// The recording key; sanitised again here, so any string is safe.
    pub key: &'a str,
    /// A folder claimed earlier with [`Store::reserve`] (a retried publication keeps its
    /// folder); `None` claims one now.
    pub folder: Option<&'a str>,
    /// The finished WAV in the spool directory.
    pub audio: &'a FsPath,
    /// Every metadata document received, in order, byte for byte.
    pub metadata: &'a [Vec<u8>],
    /// The manifest, written last as `recording.json`.
    pub manifest: &'a Manifest,
}

/// Where a publication landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The folder inside the store, e.g. `2026/11/28/call-1`.
    pub folder: String,
    /// A human-readable location (store display + folder) for logs.
    pub location: String,
    /// The manifest as written (its `recording_key` is the folder's name).
    pub manifest: Manifest,
}

/// Settings of an `s3://` location that the URL does not carry. Every field left `None`
/// comes from the standard environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`); a value here wins over it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible store, e.g. `http://127.0.0.1:3900` (Garage).
    /// Default: AWS itself.
    pub endpoint: Option<String>,
    /// Region (Garage's default is `garage`). Default: `us-east-1`.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint. Default: false.
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests (`bucket.endpoint/key`) instead of path-style
    /// (`endpoint/bucket/key`, what Garage and most self-hosted stores expect). Default:
    /// false, path-style.
    pub virtual_hosted_style: Option<bool>,
}

impl S3Options {
    fn is_empty(&self) -> bool {
        *self == S3Options::default()
    }
}

/// A configured object store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    display: String,
    /// Whether the backend accepts object attributes such as Content-Type.
    attributes: bool,
    /// Names this process in claim objects (see [`Store::reserve`]).
    claimant: String,
    /// Folders being claimed right now by this process.
    reserved: Arc<Mutex<HashSet<String>>>,
}

impl Store {
    /// Opens a storage location: a plain directory path or a `file://` URL (created if missing,
    /// served by object_store's [`LocalFileSystem`]), or `s3://bucket[/prefix]` configured by
    /// the standard `AWS_*` environment.
    pub fn open(location: &str) -> Result<Store, Error> {
        Store::open_with(location, &S3Options::default())
    }

    /// Like [`Store::open`], with S3 settings that override the environment. Giving S3
    /// settings for a location that is not `s3://` is a configuration error.
    pub fn open_with(location: &str, s3: &S3Options) -> Result<Store, Error> {
        let invalid = |reason: String| Error::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        let trimmed = location.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty".into()));
        }
        if trimmed.starts_with("s3://") {
            return Store::open_s3(trimmed, s3).map_err(|e| invalid(e.to_string()));
        }
        if !s3.is_empty() {
            return Err(invalid(
                "S3 settings are given but the location is not an s3:// URL".into(),
            ));
        }
        let dir = if let Some(rest) = trimmed.strip_prefix("file://") {
            rest.to_string()
        } else if let Some((scheme, _)) = trimmed.split_once("://") {
            return Err(invalid(format!(
                "unsupported scheme {scheme:?}: use a directory path, a file:// URL or s3://bucket/prefix"
            )));
        } else {
            trimmed.to_string()
        };
        std::fs::create_dir_all(&dir).map_err(|e| invalid(format!("cannot create {dir}: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| invalid(e.to_string()))?
            // Empty folders left by released claims disappear with their last file.
            .with_automatic_cleanup(true);
        let display = std::fs::canonicalize(&dir)
            .map(|p| p.display().to_string())
            .unwrap_or(dir);
        Ok(Store::from_object_store(Arc::new(fs), display, false))
    }

    fn open_s3(url: &str, s3: &S3Options) -> Result<Store, S3LocationError> {
        use object_store::aws::AmazonS3Builder;
        let rest = &url["s3://".len()..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(S3LocationError::NoBucket);
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(S3LocationError::DotSegment);
        }
        // The HTTP client's TLS needs one rustls crypto provider; the workspace uses ring
        // everywhere (object_store's aws feature also brings aws-lc-rs). Already installed is
        // fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(v) = &s3.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            b = b.with_region(v);
        }
        if let Some(v) = &s3.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &s3.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = s3.allow_http {
            b = b.with_allow_http(v);
        }
        if let Some(v) = s3.virtual_hosted_style {
            b = b.with_virtual_hosted_style_request(v);
        }
        // object_store retries for up to 3 minutes by default; a recording waiting for storage
        // is retried by the caller anyway, so fail fast and let it log and back off.
        b = b.with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(10),
            ..object_store::RetryConfig::default()
        });
        let s3store = b.build().map_err(S3LocationError::Builder)?;
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3store, prefix))
        };
        Ok(Store::from_object_store(inner, url.to_string(), true))
    }

    /// Wraps any object store (used by tests).
    pub fn from_object_store(
        inner: Arc<dyn ObjectStore>,
        display: String,
        attributes: bool,
    ) -> Store {
        Store {
            inner,
            display,
            attributes,
            claimant: "srs".into(),
            reserved: Arc::default(),
        }
    }

    /// Names this process (the srs-server instance id) in the claim objects it writes.
    pub fn with_claimant(mut self, id: &str) -> Store {
        self.claimant = sanitize_key(id);
        self
    }

    /// The underlying object store (to read recordings back).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Where the store is, for logs (`/srv/recordings`, `s3://bucket/prefix`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Publishes one recording: audio, then metadata documents, then `recording.json`, then
    /// the folder's claim is removed.
    ///
    /// A recording never overwrites another: with no [`Publication::folder`], a folder is
    /// claimed as [`Store::reserve`] does. Safe to call again after a failure: with the folder
    /// of the first attempt, objects already written are written again.
    pub async fn publish(&self, p: &Publication<'_>) -> Result<Published, Error> {
        let folder = match p.folder {
            Some(f) => f.to_string(),
            None => self.reserve(p.start, p.key).await?,
        };
        let manifest = self.publish_into(&folder, p).await?;
        // The claim has done its work: the folder now holds recording.json.
        let _ = self.delete_claims(&folder).await;
        Ok(Published {
            location: format!("{}/{folder}", self.display),
            folder,
            manifest,
        })
    }

    /// Claims a folder for a recording with this key and start: `{YYYY}/{MM}/{DD}/{key}`, or
    /// `{key}-2`, `{key}-3`, … when it is taken. Safe across processes sharing one store (several
    /// srs-server instances on one bucket): a claimant writes a claim object
    /// `{folder}/.claim-{instance}-{random}`, then lists the folder, and keeps it only when its
    /// claim is the only object there; otherwise it deletes its claim and tries the next name.
    /// Needs only read-after-write consistent listing (S3, Garage, a local directory), no
    /// conditional writes. Two claimants racing for one name may both give it up; neither can
    /// ever get it twice.
    pub async fn reserve(&self, start: time::OffsetDateTime, key: &str) -> Result<String, Error> {
        let base = folder_for(start, key);
        for n in 1u32.. {
            let candidate = if n == 1 {
                base.clone()
            } else if n <= 1000 {
                format!("{base}-{n}")
            } else {
                format!("{base}-{}", uuid::Uuid::new_v4().simple())
            };
            let fresh = match self.reserved.lock() {
                Ok(mut r) => r.insert(candidate.clone()),
                Err(_) => true,
            };
            if !fresh {
                continue;
            }
            let got = self.try_claim(&candidate).await;
            self.release(&candidate);
            if got? {
                return Ok(candidate);
            }
        }
        unreachable!("the loop returns before u32 runs out")
    }

    async fn try_claim(&self, folder: &str) -> Result<bool, Error> {
        if !self.list_folder(folder).await?.is_empty() {
            return Ok(false);
        }
        let name = format!(".claim-{}-{}", self.claimant, uuid::Uuid::new_v4().simple());
        let claim = Path::from(format!("{folder}/{name}"));
        self.inner
            .put(&claim, PutPayload::from(self.claimant.clone().into_bytes()))
            .await?;
        let others = self
            .list_folder(folder)
            .await?
            .into_iter()
            .any(|p| p != claim);
        if others {
            let _ = self.inner.delete(&claim).await;
            return Ok(false);
        }
        Ok(true)
    }

    async fn list_folder(&self, folder: &str) -> Result<Vec<Path>, Error> {
        use futures::TryStreamExt;
        let prefix = Path::from(folder);
        Ok(self
            .inner
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await?)
    }

    async fn delete_claims(&self, folder: &str) -> Result<(), Error> {
        let mine = format!(".claim-{}-", self.claimant);
        for p in self.list_folder(folder).await? {
            if p.filename().is_some_and(|f| f.starts_with(&mine)) {
                self.inner.delete(&p).await?;
            }
        }
        Ok(())
    }

    fn release(&self, folder: &str) {
        if let Ok(mut r) = self.reserved.lock() {
            r.remove(folder);
        }
    }

    async fn publish_into(&self, folder: &str, p: &Publication<'_>) -> Result<Manifest, Error> {
        self.upload_file(
            &Path::from(format!("{folder}/audio.wav")),
            p.audio,
            "audio/wav",
        )
        .await?;
        for (i, doc) in p.metadata.iter().enumerate() {
            let path = Path::from(format!("{folder}/metadata/{:04}.xml", i + 1));
            self.put_small(&path, doc.clone(), "application/rs-metadata+xml")
                .await?;
        }
        // The manifest names the folder it is in (the key may have gained a suffix).
        let mut manifest = p.manifest.clone();
        manifest.recording_key = folder.rsplit('/').next().unwrap_or_default().to_string();
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.put_small(
            &Path::from(format!("{folder}/recording.json")),
            json,
            "application/json",
        )
        .await?;
        Ok(manifest)
    }

    async fn put_small(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), Error> {
        let mut opts = object_store::PutOptions::default();
        if self.attributes {
            opts.attributes.insert(
                object_store::Attribute::ContentType,
                content_type.to_string().into(),
            );
        }
        self.inner
            .put_opts(path, PutPayload::from(bytes), opts)
            .await?;
        Ok(())
    }

    async fn upload_file(
        &self,
        path: &Path,
        file: &FsPath,
        content_type: &str,
    ) -> Result<(), Error> {
        let spool_err = |source| Error::Spool {
            path: file.display().to_string(),
            source,
        };
        let mut f = tokio::fs::File::open(file).await.map_err(spool_err)?;
        let mut opts = object_store::PutMultipartOptions::default();
        if self.attributes {
            opts.attributes.insert(
                object_store::Attribute::ContentType,
                content_type.to_string().into(),
            );
        }
        let upload = self.inner.put_multipart_opts(path, opts).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_SIZE);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(spool_err(e));
                }
            };
            if n == 0 {
                break;
            }
            // At most two parts in flight: memory stays bounded by a few part sizes.
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }
}

/// The folder of a recording: `{YYYY}/{MM}/{DD}/{sanitised key}` from its UTC start.
pub fn folder_for(start: time::OffsetDateTime, key: &str) -> String {
    let d = start.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}/{:02}/{:02}/{}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        sanitize_key(key)
    )
}

/// Makes any peer-supplied identifier safe as one path segment of a storage key.
///
/// Keeps ASCII letters, digits, `-`, `_`, `.`, `@`, `+`, `=`; every other character becomes
/// `_`. A dot that follows a dot and a leading dot become `_`, so `..` and hidden names cannot
/// appear; an empty key becomes `_`. Length is capped at [`MAX_KEY_LEN`] bytes.
pub fn sanitize_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_KEY_LEN));
    for c in raw.trim().chars() {
        if out.len() >= MAX_KEY_LEN {
            break;
        }
        let ok = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '=');
        // No ".." anywhere: a dot right after a dot becomes '_'.
        let dot_after_dot = c == '.' && out.ends_with('.');
        out.push(if ok && !dot_after_dot { c } else { '_' });
    }
    // No leading dot: rules out ".", "..", and hidden files.
    let lead = out.bytes().take_while(|b| *b == b'.').count();
    if lead > 0 {
        out.replace_range(..lead, &"_".repeat(lead));
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn sanitize_rejects_traversal_and_separators() {
        for (raw, want) in [
            ("../../x", "___.__x"),
            ("..", "__"),
            (".", "_"),
            ("", "_"),
            ("   ", "_"),
            ("a/b\\c", "a_b_c"),
            ("rec-123_A.b", "rec-123_A.b"),
            ("urn:uuid:1234", "urn_uuid_1234"),
            ("héllo", "h_llo"),
            ("x\0y", "x_y"),
            (".hidden", "_hidden"),
        ] {
            assert_eq!(sanitize_key(raw), want, "{raw:?}");
        }
        let long = "a".repeat(1000);
        assert_eq!(sanitize_key(&long).len(), MAX_KEY_LEN);
        for raw in ["../../x", "a/../b", "...."] {
            let k = sanitize_key(raw);
            assert!(!k.contains('/') && !k.contains(".."), "{raw:?} -> {k:?}");
        }
    }

    #[test]
    fn folder_uses_utc_date() {
        let t = time::macros::datetime!(2026-01-02 23:30 -05:00);
        assert_eq!(folder_for(t, "k"), "2026/01/03/k");
    }

    #[test]
    fn open_rejects_unknown_schemes_and_empty() {
        assert!(matches!(
            Store::open(""),
            Err(Error::InvalidLocation { .. })
        ));
        assert!(matches!(
            Store::open("ftp://x/y"),
            Err(Error::InvalidLocation { .. })
        ));
    }

    #[tokio::test]
    async fn publish_writes_layout_and_manifest_last_content() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.wav");
        // Larger than one part so the multipart path runs more than once.
        let audio: Vec<u8> = (0..(UPLOAD_PART_SIZE + 12345)).map(|i| i as u8).collect();
        std::fs::write(&spool, &audio).unwrap();
        let root = dir.path().join("rec");
        let store = Store::open(&format!("file://{}", root.display())).unwrap();
        let manifest = Manifest {
            recording_key: "k1".into(),
            call_id: "abc@host".into(),
            ..Manifest::default()
        };
        let docs = vec![b"<one/>".to_vec(), b"<two/>".to_vec()];
        let start = time::macros::datetime!(2026-11-28 10:00 UTC);
        let out = store
            .publish(&Publication {
                start,
                key: "../k1",
                audio: &spool,
                folder: None,
                metadata: &docs,
                manifest: &manifest,
            })
            .await
            .unwrap();
        assert_eq!(out.folder, "2026/11/28/___k1");
        let os = store.object_store();
        let got = os
            .get(&Path::from(format!("{}/audio.wav", out.folder)))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), audio.as_slice());
        for (i, d) in docs.iter().enumerate() {
            let p = Path::from(format!("{}/metadata/{:04}.xml", out.folder, i + 1));
            let got = os.get(&p).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.as_ref(), d.as_slice());
        }
        let json = os
            .get(&Path::from(format!("{}/recording.json", out.folder)))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let back: Manifest = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.call_id, "abc@host");
        // Nothing escaped the store root.
        assert!(!dir.path().join("k1").exists());

        // The same key again (a repeated Recording ID): a new folder, nothing overwritten.
        let again = store
            .publish(&Publication {
                start,
                key: "../k1",
                audio: &spool,
                folder: None,
                metadata: &docs[..1],
                manifest: &manifest,
            })
            .await
            .unwrap();
        assert_eq!(again.folder, "2026/11/28/___k1-2");
        assert_eq!(again.manifest.recording_key, "___k1-2");
        let first_docs = os
            .list_with_delimiter(Some(&Path::from(format!("{}/metadata", out.folder))))
            .await
            .unwrap();
        assert_eq!(first_docs.objects.len(), 2, "the first recording is intact");
    }

    #[tokio::test]
    async fn concurrent_publications_with_one_key_get_distinct_folders() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("s.wav");
        std::fs::write(&spool, b"RIFF").unwrap();
        let store = Store::open(dir.path().join("r").to_str().unwrap()).unwrap();
        let manifest = Manifest::default();
        let start = time::macros::datetime!(2026-11-28 10:00 UTC);
        let p = Publication {
            start,
            key: "same",
            folder: None,
            audio: &spool,
            metadata: &[],
            manifest: &manifest,
        };
        let (a, b, c) = tokio::join!(store.publish(&p), store.publish(&p), store.publish(&p));
        let mut folders = vec![a.unwrap().folder, b.unwrap().folder, c.unwrap().folder];
        folders.sort();
        folders.dedup();
        assert_eq!(folders.len(), 3, "{folders:?}");
    }

    #[tokio::test]
    async fn two_instances_on_one_store_never_share_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("s.wav");
        std::fs::write(&spool, b"RIFF").unwrap();
        let root = dir.path().join("r");
        // Two processes sharing one bucket: separate Store values, no shared in-process state.
        let a = Store::open(root.to_str().unwrap())
            .unwrap()
            .with_claimant("srs-a");
        let b = Store::open(root.to_str().unwrap())
            .unwrap()
            .with_claimant("srs-b");
        let manifest = Manifest::default();
        let start = time::macros::datetime!(2026-11-28 10:00 UTC);
        let p = Publication {
            start,
            key: "REC-1",
            folder: None,
            audio: &spool,
            metadata: &[],
            manifest: &manifest,
        };
        let mut folders = Vec::new();
        for _ in 0..5 {
            let (x, y) = tokio::join!(a.publish(&p), b.publish(&p));
            folders.push(x.unwrap().folder);
            folders.push(y.unwrap().folder);
        }
        let n = folders.len();
        folders.sort();
        folders.dedup();
        assert_eq!(folders.len(), n, "{folders:?}");
        // No claim is left behind once a recording is published.
        let os = a.object_store();
        let all: Vec<object_store::ObjectMeta> = futures::TryStreamExt::try_collect(os.list(None))
            .await
            .unwrap();
        assert!(
            all.iter().all(|m| !m.location.as_ref().contains(".claim-")),
            "{all:?}"
        );
    }

    #[tokio::test]
    async fn a_claimed_folder_is_kept_for_a_retry_and_skipped_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let a = Store::open(root.to_str().unwrap())
            .unwrap()
            .with_claimant("a");
        let b = Store::open(root.to_str().unwrap())
            .unwrap()
            .with_claimant("b");
        let start = time::macros::datetime!(2026-11-28 10:00 UTC);
        let first = a.reserve(start, "k").await.unwrap();
        assert_eq!(first, "2026/11/28/k");
        // Another instance sees the claim and takes the next name.
        assert_eq!(b.reserve(start, "k").await.unwrap(), "2026/11/28/k-2");
        // The first publishes into its claimed folder later (e.g. after a storage outage).
        let spool = dir.path().join("s.wav");
        std::fs::write(&spool, b"RIFF").unwrap();
        let manifest = Manifest::default();
        let done = a
            .publish(&Publication {
                start,
                key: "k",
                folder: Some(&first),
                audio: &spool,
                metadata: &[],
                manifest: &manifest,
            })
            .await
            .unwrap();
        assert_eq!(done.folder, first);
        assert_eq!(done.manifest.recording_key, "k");
    }

    #[test]
    fn s3_locations_are_checked() {
        for (loc, want) in [
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("s3://b/../x", ". or .."),
        ] {
            match Store::open(loc) {
                Err(Error::InvalidLocation { reason, .. }) => {
                    assert!(reason.contains(want), "{loc}: {reason}")
                }
                other => panic!("{loc}: {other:?}"),
            }
        }
        let s3 = S3Options {
            endpoint: Some("http://127.0.0.1:3900".into()),
            ..S3Options::default()
        };
        assert!(matches!(
            Store::open_with("/tmp/x", &s3),
            Err(Error::InvalidLocation { .. })
        ));
        let s = Store::open_with(
            "s3://bucket/some/prefix",
            &S3Options {
                region: Some("garage".into()),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                allow_http: Some(true),
                ..s3
            },
        )
        .unwrap();
        assert_eq!(s.display(), "s3://bucket/some/prefix");
    }
}
