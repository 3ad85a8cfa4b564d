//! The recordings browser: the list at `/`, one recording at `/recordings/{path}`, their JSON
//! at `/api/recordings` and `/api/recordings/{path}`, the waveform peaks at
//! `/api/peaks/{path}`, and the stored objects at `/files/{path}/{file}` (audio with Range).
//!
//! Recordings are read from the configured store with the layout of [`siprec_storage`]
//! (`YYYY/MM/DD/key/recording.json`); a `path` is such a folder, checked against that layout
//! before anything is read (anything else is a 404). Manifests and peaks are cached in memory:
//! a published recording never changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use siprec_storage::{sanitize_key, Manifest, Store};

use super::peaks::Peaks;
use super::{pages, AppState};

/// Recordings per page of the list.
pub const PAGE_SIZE: usize = 25;
/// Most manifests (and peaks) kept in memory.
const CACHE_MAX: usize = 4096;

/// Reads recordings from the store for the browser.
#[derive(Debug)]
pub struct Browser {
    store: Store,
    manifests: Mutex<HashMap<String, Arc<Manifest>>>,
    peaks: Mutex<HashMap<String, Arc<Peaks>>>,
}

/// One row of the list (`GET /api/recordings`).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The recording key (Recording ID, else session id, else Call-ID).
    pub key: String,
    /// The folder in the store, `YYYY/MM/DD/key`.
    pub path: String,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// Length of the audio, seconds.
    pub duration_s: f64,
    /// Participants: name, else AOR, else id.
    pub participants: Vec<String>,
    /// Codecs of the streams.
    pub codecs: Vec<String>,
    /// `false` when recovered after a crash.
    pub complete: bool,
    /// What ended it.
    pub ended_by: String,
}

/// Filters of the list.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    #[serde(default)]
    pub to: Option<String>,
    /// Text matched against the Recording ID, Call-ID, participant names and AORs.
    #[serde(default)]
    pub q: Option<String>,
    /// Page, from 0.
    #[serde(default)]
    pub page: Option<usize>,
}

/// One page of the list.
#[derive(Debug, Clone, Serialize)]
pub struct ListPage {
    /// The recordings, newest first.
    pub items: Vec<Item>,
    /// This page (from 0).
    pub page: usize,
    /// Whether a next page exists.
    pub more: bool,
}

/// Why a browser request fails.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// No such recording or file, or a path outside the layout.
    #[error("not found")]
    NotFound,
    /// A filter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
}

impl IntoResponse for BrowseError {
    fn into_response(self) -> Response {
        let status = match &self {
            BrowseError::NotFound => StatusCode::NOT_FOUND,
            BrowseError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BrowseError::Store(object_store::Error::NotFound { .. }) => StatusCode::NOT_FOUND,
            BrowseError::Store(_) => StatusCode::BAD_GATEWAY,
        };
        (status, format!("{} {self}\n", status.as_u16())).into_response()
    }
}

/// A recording folder `YYYY/MM/DD/key` as the store lays it out, else `None`.
pub fn check_folder(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [y, m, d, key] = segs.as_slice() else {
        return None;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(y, 4)
        && digits(m, 2)
        && digits(d, 2)
        && !key.is_empty()
        && !key.starts_with('.')
        && !key.contains("..")
        && sanitize_key(key) == *key;
    ok.then(|| format!("{y}/{m}/{d}/{key}"))
}

/// A file of a recording, `YYYY/MM/DD/key/FILE` with FILE `audio.wav`, `recording.json` or
/// `metadata/NNNN.xml`: `(folder, file)`, else `None`.
pub fn check_file(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').splitn(5, '/').collect();
    let [y, m, d, key, file] = segs.as_slice() else {
        return None;
    };
    let folder = check_folder(&format!("{y}/{m}/{d}/{key}"))?;
    let meta = file
        .strip_prefix("metadata/")
        .and_then(|f| f.strip_suffix(".xml"))
        .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()));
    (matches!(*file, "audio.wav" | "recording.json") || meta).then(|| (folder, file.to_string()))
}

fn day_of(s: &Option<String>) -> Result<Option<String>, BrowseError> {
    let Some(s) = s.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !ok {
        return Err(BrowseError::BadRequest(format!(
            "bad date {s:?}: expected YYYY-MM-DD"
        )));
    }
    Ok(Some(s.to_string()))
}

fn matches(m: &Manifest, q: &str) -> bool {
    let q = q.to_lowercase();
    let hit = |s: &str| s.to_lowercase().contains(&q);
    hit(&m.recording_key)
        || m.recording_id.as_deref().is_some_and(hit)
        || hit(&m.call_id)
        || m.sip_session_ids.iter().any(|s| hit(s))
        || m.participants.iter().any(|p| {
            hit(&p.id) || p.name.as_deref().is_some_and(hit) || p.aor.as_deref().is_some_and(hit)
        })
}

fn item(path: &str, m: &Manifest) -> Item {
    let mut codecs: Vec<String> = Vec::new();
    for c in m.streams.iter().flat_map(|s| s.codecs.iter()) {
        if !codecs.contains(c) {
            codecs.push(c.clone());
        }
    }
    Item {
        key: m.recording_key.clone(),
        path: path.to_string(),
        start: m.start_time.clone(),
        duration_s: m.duration_seconds,
        participants: m
            .participants
            .iter()
            .map(|p| {
                p.name
                    .clone()
                    .or_else(|| p.aor.clone())
                    .unwrap_or_else(|| p.id.clone())
            })
            .collect(),
        codecs,
        complete: m.complete,
        ended_by: m.ended_by.clone(),
    }
}

impl Browser {
    /// A browser over `store`.
    pub fn new(store: Store) -> Browser {
        Browser {
            store,
            manifests: Mutex::default(),
            peaks: Mutex::default(),
        }
    }

    fn os(&self) -> &Arc<dyn ObjectStore> {
        self.store.object_store()
    }

    /// Names of the folders right under `prefix`, newest (largest) first.
    async fn children(&self, prefix: Option<&str>) -> Result<Vec<String>, BrowseError> {
        let p = prefix.map(Path::from);
        let r = self.os().list_with_delimiter(p.as_ref()).await?;
        let mut names: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(String::from))
            .collect();
        names.sort_unstable_by(|a, b| b.cmp(a));
        Ok(names)
    }

    /// The manifest of a recording folder (already checked), cached.
    pub async fn manifest(&self, folder: &str) -> Result<Arc<Manifest>, BrowseError> {
        if let Some(m) = self
            .manifests
            .lock()
            .ok()
            .and_then(|c| c.get(folder).cloned())
        {
            return Ok(m);
        }
        let bytes = self
            .os()
            .get(&Path::from(format!("{folder}/recording.json")))
            .await?
            .bytes()
            .await?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|_| BrowseError::NotFound)?;
        let m = Arc::new(m);
        if let Ok(mut c) = self.manifests.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(folder.to_string(), m.clone());
        }
        Ok(m)
    }

    /// One page of recordings matching `q`, newest first.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage, BrowseError> {
        let (from, to) = (day_of(&q.from)?, day_of(&q.to)?);
        let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let page = q.page.unwrap_or(0).min(100_000);
        let want = (page + 1) * PAGE_SIZE + 1;
        let mut found: Vec<Item> = Vec::new();
        let in_range = |day: &str| {
            from.as_deref().is_none_or(|f| day >= f) && to.as_deref().is_none_or(|t| day <= t)
        };
        'days: for y in self.children(None).await? {
            if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            for m in self.children(Some(&y)).await? {
                for d in self.children(Some(&format!("{y}/{m}"))).await? {
                    if !in_range(&format!("{y}-{m}-{d}")) {
                        continue;
                    }
                    let mut day: Vec<Item> = Vec::new();
                    for key in self.children(Some(&format!("{y}/{m}/{d}"))).await? {
                        let Some(folder) = check_folder(&format!("{y}/{m}/{d}/{key}")) else {
                            continue;
                        };
                        // A folder without recording.json is being published (or claimed).
                        let Ok(man) = self.manifest(&folder).await else {
                            continue;
                        };
                        if text.is_none_or(|t| matches(&man, t)) {
                            day.push(item(&folder, &man));
                        }
                    }
                    day.sort_by(|a, b| b.start.cmp(&a.start));
                    found.extend(day);
                    if found.len() >= want {
                        break 'days;
                    }
                }
            }
        }
        let more = found.len() > (page + 1) * PAGE_SIZE;
        let items = found
            .into_iter()
            .skip(page * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        Ok(ListPage { items, page, more })
    }

    /// The metadata documents of a recording, in order: `(name, text)`.
    pub async fn metadata(
        &self,
        folder: &str,
        m: &Manifest,
    ) -> Result<Vec<(String, String)>, BrowseError> {
        let mut out = Vec::new();
        for name in &m.metadata_documents {
            if check_file(&format!("{folder}/{name}")).is_none() {
                continue;
            }
            let b = self
                .os()
                .get(&Path::from(format!("{folder}/{name}")))
                .await?
                .bytes()
                .await?;
            out.push((name.clone(), String::from_utf8_lossy(&b).into_owned()));
        }
        Ok(out)
    }

    /// The waveform peaks of a recording, computed once (streaming the WAV) and cached.
    pub async fn peaks(&self, folder: &str) -> Result<Arc<Peaks>, BrowseError> {
        if let Some(p) = self.peaks.lock().ok().and_then(|c| c.get(folder).cloned()) {
            return Ok(p);
        }
        let r = self
            .os()
            .get(&Path::from(format!("{folder}/audio.wav")))
            .await?;
        let size = r.meta.size;
        let p = Arc::new(
            Peaks::from_stream(r.into_stream().map_err(std::io::Error::other), size)
                .await
                .map_err(|e| BrowseError::BadRequest(format!("audio.wav: {e}")))?,
        );
        if let Ok(mut c) = self.peaks.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(folder.to_string(), p.clone());
        }
        Ok(p)
    }
}

/// The browser's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list_page))
        .route("/recordings/{*path}", get(recording_page))
        .route("/api/recordings", get(list_json))
        .route("/api/recordings/{*path}", get(recording_json))
        .route("/api/peaks/{*path}", get(peaks_json))
        .route("/files/{*path}", get(file))
}

async fn list_json(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListPage>, BrowseError> {
    Ok(Json(s.browser.list(&q).await?))
}

async fn list_page(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, BrowseError> {
    let page = s.browser.list(&q).await?;
    Ok(Html(pages::list(&q, &page, s.ctx.token.as_deref())))
}

/// Everything about one recording (`GET /api/recordings/{path}`).
#[derive(Debug, Serialize)]
struct RecordingView {
    key: String,
    path: String,
    manifest: Manifest,
    metadata: Vec<MetadataDoc>,
}

#[derive(Debug, Serialize)]
struct MetadataDoc {
    name: String,
    xml: String,
}

async fn view(s: &AppState, path: &str) -> Result<RecordingView, BrowseError> {
    let folder = check_folder(path).ok_or(BrowseError::NotFound)?;
    let m = s.browser.manifest(&folder).await?;
    let metadata = s
        .browser
        .metadata(&folder, &m)
        .await?
        .into_iter()
        .map(|(name, xml)| MetadataDoc { name, xml })
        .collect();
    Ok(RecordingView {
        key: m.recording_key.clone(),
        path: folder,
        manifest: (*m).clone(),
        metadata,
    })
}

async fn recording_json(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
) -> Result<Json<RecordingView>, BrowseError> {
    Ok(Json(view(&s, &path).await?))
}

async fn recording_page(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
) -> Result<Html<String>, BrowseError> {
    let v = view(&s, &path).await?;
    let docs: Vec<(String, String)> = v
        .metadata
        .iter()
        .map(|d| (d.name.clone(), d.xml.clone()))
        .collect();
    Ok(Html(pages::recording(
        &v.path,
        &v.manifest,
        &docs,
        s.ctx.token.as_deref(),
    )))
}

async fn peaks_json(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
) -> Result<Response, BrowseError> {
    let folder = check_folder(&path).ok_or(BrowseError::NotFound)?;
    let p = s.browser.peaks(&folder).await?;
    let mut r = Json(p.as_ref()).into_response();
    // A published recording never changes.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(r)
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` of an object of `size` bytes: the range, or `Err`
/// when it cannot be satisfied. Several ranges are not served (the whole object is).
fn parse_range(h: &str, size: u64) -> Option<Result<std::ops::Range<u64>, ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        if start >= size || start >= end {
            return Some(Err(()));
        }
        start..end
    };
    Some(Ok(r))
}

async fn file(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, BrowseError> {
    let (folder, name) = check_file(&path).ok_or(BrowseError::NotFound)?;
    // Only what the manifest names is served (recording.json being there makes the rest so).
    let m = s.browser.manifest(&folder).await?;
    if name.starts_with("metadata/") && !m.metadata_documents.contains(&name) {
        return Err(BrowseError::NotFound);
    }
    let location = Path::from(format!("{folder}/{name}"));
    let os = s.browser.os();
    let meta = os.head(&location).await?;
    let size = meta.size;
    let ctype = match name.as_str() {
        "audio.wav" => "audio/wav",
        "recording.json" => "application/json",
        _ => "application/xml; charset=utf-8",
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, size));
    let (status, span) = match range {
        Some(Err(())) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
        Some(Ok(r)) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..size),
    };
    let body = if span.is_empty() {
        axum::body::Body::empty()
    } else {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(span.clone())),
            ..GetOptions::default()
        };
        let r = os.get_opts(&location, opts).await?;
        axum::body::Body::from_stream(r.into_stream())
    };
    let file_name = name.rsplit('/').next().unwrap_or(&name).to_string();
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=3600")
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{}-{file_name}\"", m.recording_key),
        );
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    resp.body(body)
        .map_err(|e| BrowseError::BadRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_storage_layout() {
        assert_eq!(
            check_folder("2026/12/07/REC-1").as_deref(),
            Some("2026/12/07/REC-1")
        );
        for bad in [
            "2026/12/07/..",
            "2026/12/07/.hidden",
            "2026/12/07/a..b",
            "2026/12/7/REC",
            "2026/12/07",
            "2026/12/07/REC/x",
            "../../etc/passwd",
            "2026/12/07/a b",
            "20x6/12/07/REC",
        ] {
            assert_eq!(check_folder(bad), None, "{bad}");
        }
        assert!(check_file("2026/12/07/REC/audio.wav").is_some());
        assert!(check_file("2026/12/07/REC/metadata/0001.xml").is_some());
        for bad in [
            "2026/12/07/REC/metadata/../../x",
            "2026/12/07/REC/.claim",
            "2026/12/07/../audio.wav",
            "2026/12/07/REC/metadata/1.xml",
            "2026/12/07/REC/audio.wav/x",
        ] {
            assert_eq!(check_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok(90..100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok(95..100)));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
