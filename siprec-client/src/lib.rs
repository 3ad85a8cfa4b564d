//! siprec-client
