//! The crate's one error type.

use crate::{MAX_DEPTH, MAX_DOCUMENT_SIZE, MAX_ELEMENTS};

/// Everything that can go wrong in this crate.
///
/// Most variants mean **the peer sent something wrong** (the document came from the
/// network); [`Error::InvalidCallMetadata`] means **our own input is wrong** (a caller of
/// [`CallMetadata::build`](crate::CallMetadata::build) passed unusable values).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- the peer sent something wrong -----
    /// Peer: the document is larger than [`MAX_DOCUMENT_SIZE`] bytes.
    #[error("metadata document is {size} bytes, more than the {MAX_DOCUMENT_SIZE} allowed")]
    TooLarge {
        /// Size of the rejected document in bytes.
        size: usize,
    },
    /// Peer: elements are nested deeper than [`MAX_DEPTH`] levels.
    #[error("metadata document nests elements deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Peer: the document has more than [`MAX_ELEMENTS`] elements.
    #[error("metadata document has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// Peer: keeping the document's extension elements verbatim would mean re-declaring
    /// more than [`MAX_DOCUMENT_SIZE`] bytes of inherited namespace declarations on them
    /// (many extensions relying on long namespace URIs declared on an ancestor): an
    /// amplification attempt.
    #[error("extension elements would need more than {MAX_DOCUMENT_SIZE} bytes of re-declared namespaces")]
    ExtensionsTooLarge,
    /// Peer: the document has a `<!DOCTYPE …>` (DTD, entity declarations). These are never
    /// processed, so custom entities cannot be expanded ("billion laughs", external entities).
    #[error("DOCTYPE / DTD / entity declarations are not allowed in metadata")]
    DtdNotAllowed,
    /// Peer: the bytes are not valid UTF-8.
    #[error("metadata document is not valid UTF-8")]
    NotUtf8,
    /// Peer: the XML declaration names an encoding other than UTF-8 (or its ASCII subset).
    #[error("unsupported XML encoding {0:?}: only UTF-8 is accepted")]
    UnsupportedEncoding(String),
    /// Peer: a reference to an entity that is not one of the five predefined ones
    /// (`lt`, `gt`, `amp`, `apos`, `quot`); no DTD can define others.
    #[error("reference to undefined entity &{0};")]
    UndefinedEntity(String),
    /// Peer: the document is not well-formed XML (syntax error, mismatched or missing end
    /// tag, no root element, content after the root, bad character reference …).
    #[error("malformed metadata XML: {0}")]
    Malformed(String),
    /// Peer: the root element is neither `<recording>` nor `<requestsnapshot>` in a recording
    /// namespace (or no namespace). Holds the root's local name.
    #[error("unexpected root element <{0}>: expected <recording> or <requestsnapshot>")]
    UnexpectedRoot(String),

    // ----- our own input is wrong -----
    /// Ours: [`CallMetadata::build`](crate::CallMetadata::build) was given unusable values
    /// (an empty or duplicated id, an empty AOR). Holds a description of the problem.
    #[error("invalid call metadata: {0}")]
    InvalidCallMetadata(&'static str),
}
