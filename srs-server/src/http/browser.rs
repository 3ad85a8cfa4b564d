//! The recordings browser: pages and JSON over the configured store.

use axum::Router;
use siprec_storage::Store;

use super::AppState;

/// Reads recordings from the store for the browser.
#[derive(Debug)]
pub struct Browser {
    #[allow(dead_code)]
    store: Store,
}

impl Browser {
    /// A browser over `store`.
    pub fn new(store: Store) -> Browser {
        Browser { store }
    }
}

/// The browser's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
