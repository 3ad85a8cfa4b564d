//! SRTP keyed by SDES (RFC 4568 `a=crypto`), over the `webrtc-srtp` crate (RFC 3711: AES
//! counter mode, HMAC-SHA1, key derivation, rollover counter, replay window).
//!
//! [`SdesKey`] parses and writes the `a=crypto` attribute value (`1 AES_CM_128_HMAC_SHA1_80
//! inline:<base64 of 16-byte key + 14-byte salt>[|lifetime]`); [`SrtpReceiver`] and
//! [`SrtpSender`] unprotect and protect packets into caller buffers. One context per
//! direction and stream: a recording server receives with the SRC's key and announces its own
//! key for what it would send.
//!
//! ```
//! use siprec_rtp::srtp::{SdesKey, SrtpReceiver, SrtpSender, SrtpSuite};
//! let key = SdesKey::new(1, SrtpSuite::AesCm128HmacSha1_80, [7u8; 30]);
//! let line = key.to_attribute();
//! assert!(line.starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
//! let parsed = SdesKey::parse(&line).unwrap();
//! let (mut tx, mut rx) = (SrtpSender::new(&parsed).unwrap(), SrtpReceiver::new(&parsed).unwrap());
//! let rtp = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0xff, 0xff];
//! let mut wire = [0u8; 64];
//! let n = tx.protect(&rtp, &mut wire).unwrap();
//! assert_eq!(n, rtp.len() + 10); // the 80-bit tag
//! let mut plain = [0u8; 64];
//! let m = rx.unprotect(&wire[..n], &mut plain).unwrap();
//! assert_eq!(&plain[..m], &rtp);
//! wire[n - 1] ^= 1;
//! assert!(rx.unprotect(&wire[..n], &mut plain).is_err()); // bad tag: dropped
//! ```

use base64::Engine as _;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::Error;

/// Replay window (packets) of a receiver (RFC 3711 §3.3.2: at least 64).
const REPLAY_WINDOW: usize = 128;

/// The SDES crypto suites supported (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: 80-bit authentication tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 32-bit authentication tag on RTP.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The suite named in an `a=crypto` line, if supported.
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        match name.trim() {
            n if n.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_80") => {
                Some(SrtpSuite::AesCm128HmacSha1_80)
            }
            n if n.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_32") => {
                Some(SrtpSuite::AesCm128HmacSha1_32)
            }
            _ => None,
        }
    }

    /// The suite's name in SDP.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Authentication tag length on RTP, bytes.
    pub fn tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// One SDES key: the `a=crypto` tag, the suite, and 30 bytes of master key (16) and salt (14).
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    /// The `a=crypto` tag (the answer echoes the tag of the offer's line it accepts).
    pub tag: u32,
    /// The crypto suite.
    pub suite: SrtpSuite,
    material: [u8; 30],
}

impl std::fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SdesKey")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SdesKey {
    /// A key from 30 bytes of material (the caller draws them from a CSPRNG).
    pub fn new(tag: u32, suite: SrtpSuite, material: [u8; 30]) -> SdesKey {
        SdesKey {
            tag,
            suite,
            material,
        }
    }

    /// Parses an `a=crypto` attribute value (RFC 4568 §9.1): `tag suite inline:key[|lifetime]`.
    ///
    /// # Errors
    /// [`Error::Sdes`] for an unsupported suite, a key that is not 30 bytes of base64, an MKI
    /// (`|1:4`), several keys, or session parameters (`KDR=`, `UNENCRYPTED_SRTP`, …) this
    /// implementation does not honour.
    pub fn parse(value: &str) -> Result<SdesKey, Error> {
        let mut parts = value.split_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or(Error::Sdes("the a=crypto tag is not a number"))?;
        let suite = parts
            .next()
            .and_then(SrtpSuite::from_name)
            .ok_or(Error::Sdes("unsupported crypto suite"))?;
        let key_params = parts.next().ok_or(Error::Sdes("no key parameters"))?;
        if parts.next().is_some() {
            return Err(Error::Sdes("session parameters are not supported"));
        }
        if key_params.contains(';') {
            return Err(Error::Sdes("several keys are not supported"));
        }
        let inline = key_params
            .strip_prefix("inline:")
            .ok_or(Error::Sdes("key method is not inline:"))?;
        let mut fields = inline.split('|');
        let b64 = fields.next().unwrap_or("");
        for f in fields {
            // A lifetime (`2^31` or a number) is fine; `n:len` is an MKI.
            if f.contains(':') {
                return Err(Error::Sdes("an MKI is not supported"));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::Sdes("the inline key is not base64"))?;
        let material: [u8; 30] = bytes
            .try_into()
            .map_err(|_| Error::Sdes("the inline key is not 30 bytes (16 key + 14 salt)"))?;
        Ok(SdesKey {
            tag,
            suite,
            material,
        })
    }

    /// The first line of `values` with a supported suite and a usable key.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a String>) -> Option<SdesKey> {
        values.into_iter().find_map(|v| SdesKey::parse(v).ok())
    }

    /// The `a=crypto` attribute value for this key.
    pub fn to_attribute(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(self.material)
        )
    }

    fn context(&self, receiving: bool) -> Result<Context, Error> {
        let (key, salt) = self.material.split_at(16);
        let (srtp, srtcp) = if receiving {
            (
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
        } else {
            (None, None)
        };
        Context::new(key, salt, self.suite.profile(), srtp, srtcp)
            .map_err(|_| Error::Sdes("the SRTP context cannot be created"))
    }
}

/// `true` when `packet` starts with an RTP version 2 header (fixed part, CSRCs, extension)
/// that leaves room for a `tag_len`-byte authentication tag. `webrtc-srtp` parses the header
/// itself and panics on some malformed ones, so nothing else reaches it.
fn header_fits(packet: &[u8], tag_len: usize) -> bool {
    let Some(&b0) = packet.first() else {
        return false;
    };
    if b0 >> 6 != 2 || packet.len() < 12 + tag_len {
        return false;
    }
    let mut len = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let Some(ext) = packet.get(len..len + 4) else {
            return false;
        };
        let profile = u16::from_be_bytes([ext[0], ext[1]]);
        let start = len + 4;
        len = start + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        let Some(block) = packet.get(start..len) else {
            return false;
        };
        if !extension_elements_fit(profile, block) {
            return false;
        }
    }
    len + tag_len <= packet.len()
}

/// `true` when every RFC 8285 header-extension element of `block` ends inside it.
///
/// RFC 8285 §4.2 (one-byte form, profile `0xBEDE`: a 4-bit ID, a 4-bit length minus one, ID 15
/// ends the walk) and §4.3 (two-byte form, profile `0x100`/appbits — `webrtc-srtp` only knows
/// `0x1000`: an 8-bit ID, an 8-bit length); zero bytes are padding in both. `webrtc-srtp`
/// copies each element without a bound check, so an element running past the block, or past
/// the packet, would panic inside it. Other profiles are opaque (RFC 3550 §5.3.1).
fn extension_elements_fit(profile: u16, block: &[u8]) -> bool {
    let two_byte = match profile {
        0xBEDE => false,
        0x1000 => true,
        _ => return true,
    };
    let mut at = 0;
    while let Some(&b) = block.get(at) {
        if b == 0 {
            at += 1;
            continue;
        }
        let (header, data) = if two_byte {
            let Some(&l) = block.get(at + 1) else {
                return false;
            };
            (2, usize::from(l))
        } else if b >> 4 == 15 {
            return true;
        } else {
            (1, usize::from(b & 0x0f) + 1)
        };
        at += header + data;
        if at > block.len() {
            return false;
        }
    }
    true
}

/// Unprotects the SRTP packets of one stream.
pub struct SrtpReceiver {
    ctx: Context,
    tag_len: usize,
}

impl std::fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpReceiver").finish_non_exhaustive()
    }
}

impl SrtpReceiver {
    /// A receiver with the sender's key (from its `a=crypto`), with replay protection.
    pub fn new(key: &SdesKey) -> Result<SrtpReceiver, Error> {
        Ok(SrtpReceiver {
            ctx: key.context(true)?,
            tag_len: key.suite.tag_len(),
        })
    }

    /// Authenticates and decrypts `packet` into `out`; returns the RTP packet's length.
    ///
    /// # Errors
    /// [`Error::SrtpAuth`] for a wrong tag, a replay or a packet too short to carry one;
    /// [`Error::BufferTooSmall`] when `out` cannot hold the result.
    ///
    /// (`webrtc-srtp` returns a freshly allocated buffer per packet; it is copied into `out`
    /// so callers stay allocation-free once a crate with in-place decryption replaces it.)
    pub fn unprotect(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if !header_fits(packet, self.tag_len) {
            return Err(Error::SrtpAuth);
        }
        // Belt and braces: a panic in the third-party code must not take the stream down.
        let ctx = &mut self.ctx;
        let plain =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.decrypt_rtp(packet)))
                .map_err(|_| Error::SrtpAuth)?
                .map_err(|_| Error::SrtpAuth)?;
        let dst = out.get_mut(..plain.len()).ok_or(Error::BufferTooSmall {
            needed: plain.len(),
            available: 0,
        })?;
        dst.copy_from_slice(&plain);
        Ok(plain.len())
    }
}

/// Protects the RTP packets of one stream.
pub struct SrtpSender {
    ctx: Context,
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSender").finish_non_exhaustive()
    }
}

impl SrtpSender {
    /// A sender with our own key (the one our `a=crypto` announced).
    pub fn new(key: &SdesKey) -> Result<SrtpSender, Error> {
        Ok(SrtpSender {
            ctx: key.context(false)?,
        })
    }

    /// Encrypts and authenticates the RTP packet `rtp` into `out`; returns the length.
    pub fn protect(&mut self, rtp: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if !header_fits(rtp, 0) {
            return Err(Error::Sdes("not an RTP packet"));
        }
        let ctx = &mut self.ctx;
        let wire = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.encrypt_rtp(rtp)))
            .map_err(|_| Error::Sdes("the packet cannot be protected"))?
            .map_err(|_| Error::Sdes("the packet cannot be protected"))?;
        let dst = out.get_mut(..wire.len()).ok_or(Error::BufferTooSmall {
            needed: wire.len(),
            available: 0,
        })?;
        dst.copy_from_slice(&wire);
        Ok(wire.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, (seq >> 8) as u8, seq as u8];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 42]);
        p.extend_from_slice(&[0x55; 160]);
        p
    }

    /// Found by the `srtp` fuzz target: a version-0 header with padding, an extension and
    /// CSRCs made `webrtc-srtp` panic ("advance out of bounds").
    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        let crash = [
            0x32, 0x38, 0x32, 0x13, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x13, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x28, 0x13, 0x00, 0x00, 0x00, 0x00, 0x01, 0x7e, 0x38, 0x2e,
        ];
        let key = SdesKey::new(1, SrtpSuite::AesCm128HmacSha1_80, [1; 30]);
        let mut rx = SrtpReceiver::new(&key).unwrap();
        let mut out = [0u8; 256];
        assert!(!header_fits(&crash, 10));
        assert_eq!(rx.unprotect(&crash, &mut out), Err(Error::SrtpAuth));
        // The same header as version 2: its extension runs past the end.
        let mut v2 = crash;
        v2[0] = 0x80 | (crash[0] & 0x3f);
        assert!(!header_fits(&v2, 10));
        assert_eq!(rx.unprotect(&v2, &mut out), Err(Error::SrtpAuth));
        let mut tx = SrtpSender::new(&key).unwrap();
        assert!(tx.protect(&crash, &mut out).is_err());
    }

    /// Found by the `srtp` fuzz target in CI: a two-byte (RFC 8285 §4.3) header-extension
    /// element longer than its block made `webrtc-srtp` copy past the packet's end (a panic in
    /// `bytes`), before any authentication.
    #[test]
    fn extension_elements_past_their_block_are_refused() {
        let key = SdesKey::new(1, SrtpSuite::AesCm128HmacSha1_80, [1; 30]);
        let mut rx = SrtpReceiver::new(&key).unwrap();
        let mut out = [0u8; 256];
        // The fuzzer's input, shortened: V=2 X=1, no CSRC, profile 0x1000, one word of
        // extension holding an element that claims 20 bytes.
        let mut p = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        p.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 20, 20, 20, 20]);
        p.extend_from_slice(&[0; 14]);
        // `unprotect` would also turn webrtc-srtp's panic into `SrtpAuth` (catch_unwind), but
        // not in a `panic = "abort"` build such as the fuzzer's: the header check must refuse.
        assert!(!header_fits(&p, 10));
        assert_eq!(rx.unprotect(&p, &mut out), Err(Error::SrtpAuth));
        // The same with the one-byte form: ID 1 claiming 16 bytes in a 4-byte block.
        p[12..14].copy_from_slice(&[0xBE, 0xDE]);
        p[16] = 0x1f;
        assert!(!header_fits(&p, 10));
        assert_eq!(rx.unprotect(&p, &mut out), Err(Error::SrtpAuth));
        // The CI input itself (padding, four CSRCs, two-byte extension).
        let ci: [u8; 122] = [
            180, 96, 0, 0, 1, 0, 0, 0, 0, 0, 0, 161, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0,
            0, 16, 0, 0, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
            20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 83, 72, 122, 86, 109, 74, 120,
            73, 103, 78, 113, 56, 73, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
            20, 20, 20, 20, 20, 20, 105, 110, 108, 105, 50, 101, 58, 20, 0, 0, 105, 110, 108, 105,
            110, 101, 20, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(!header_fits(&ci, 10));
        assert_eq!(rx.unprotect(&ci, &mut out), Err(Error::SrtpAuth));
        // Well-formed elements of both forms still pass the header check and then fail only
        // on the (absent) tag.
        let mut ok = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        ok.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00]);
        assert!(header_fits(&ok, 0));
        ok[12..14].copy_from_slice(&[0x10, 0x00]);
        ok[16..20].copy_from_slice(&[5, 2, 0xAA, 0xBB]);
        assert!(header_fits(&ok, 0));
        ok[17] = 3;
        assert!(!header_fits(&ok, 0));
    }

    #[test]
    fn sdes_lines_parse_and_print() {
        let k = SdesKey::parse(
            "1 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20",
        )
        .unwrap();
        assert_eq!((k.tag, k.suite), (1, SrtpSuite::AesCm128HmacSha1_32));
        assert_eq!(
            SdesKey::parse(&k.to_attribute()).unwrap(),
            k,
            "print/parse pair"
        );
        assert!(!format!("{k:?}").contains("WVNf"), "no key in Debug");
        for bad in [
            "",
            "x AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "1 AES_CM_128_HMAC_SHA1_80 inline:short",
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz KDR=1",
            "1 AES_CM_128_HMAC_SHA1_80 key:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        ] {
            assert!(SdesKey::parse(bad).is_err(), "{bad:?}");
        }
        let lines = vec![
            "1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_string(),
            "2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_string(),
        ];
        assert_eq!(SdesKey::choose(&lines).unwrap().tag, 2);
    }

    #[test]
    fn both_suites_round_trip_across_a_sequence_wrap_and_reject_tampering() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let key = SdesKey::new(1, suite, *b"0123456789abcdef0123456789abcd");
            let mut tx = SrtpSender::new(&key).unwrap();
            let mut rx = SrtpReceiver::new(&key).unwrap();
            let (mut wire, mut plain) = ([0u8; 256], [0u8; 256]);
            for i in 0..20u32 {
                let seq = 65530u16.wrapping_add(i as u16);
                let p = rtp(seq, i * 160);
                let n = tx.protect(&p, &mut wire).unwrap();
                assert_eq!(n, p.len() + suite.tag_len());
                assert_ne!(
                    &wire[12..n - suite.tag_len()],
                    &p[12..],
                    "payload encrypted"
                );
                let m = rx.unprotect(&wire[..n], &mut plain).unwrap();
                assert_eq!(&plain[..m], &p[..], "{suite:?} seq {seq}");
                // The same packet again is a replay.
                assert_eq!(rx.unprotect(&wire[..n], &mut plain), Err(Error::SrtpAuth));
            }
            let p = rtp(20, 9999);
            let n = tx.protect(&p, &mut wire).unwrap();
            wire[n - 1] ^= 0x80;
            assert_eq!(rx.unprotect(&wire[..n], &mut plain), Err(Error::SrtpAuth));
            // A receiver with another key authenticates nothing.
            let other = SdesKey::new(1, suite, [9; 30]);
            let n = tx.protect(&rtp(21, 1), &mut wire).unwrap();
            let mut rx2 = SrtpReceiver::new(&other).unwrap();
            assert_eq!(rx2.unprotect(&wire[..n], &mut plain), Err(Error::SrtpAuth));
            assert_eq!(rx2.unprotect(&[0x80, 0], &mut plain), Err(Error::SrtpAuth));
        }
    }
}
