//! Reaching the SRS ([`Group::Transport`](super::Group::Transport)): the TLS connection
//! (`tls`), OPTIONS (`options`), and SIPREC INVITEs too large for UDP's MTU over UDP and TCP
//! (`large-udp`, `large-tcp`).

use std::net::SocketAddr;
use std::time::Duration;

use siprec_sip::message::{new_branch, new_call_id, new_tag};
use siprec_sip::transaction::{Peer, Transport};
use siprec_sip_tokio::TlsClient;

use super::probe::{self, request_from_text, Probe};
use super::session::InviteShape;
use super::{host_port, Check, Ctx, Run};
use crate::Error;

/// `tls`: opens the probe every later check uses. Over `sips:` the handshake is the check
/// (PASS, or FAIL and `Ok(None)`: there is nothing to run the rest on); over `sip:` it is
/// skipped, and a probe that cannot open is our failure (`Err`).
pub(super) async fn tls<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    ctx: &Ctx<'_>,
    target: Peer,
    tls: Option<TlsClient>,
) -> Result<Option<Probe>, Error> {
    run.begin(Check::Tls);
    match Probe::open(ctx.local_ip, target, ctx.server_name, tls).await {
        Ok(mut p) => {
            p.send_timeout = ctx.cfg.timeout;
            if target.transport == Transport::Tls {
                run.pass(
                    Check::Tls,
                    format!(
                        "connected to {}, certificate valid for {}",
                        target.addr, ctx.server_name
                    ),
                );
            } else {
                run.skip(
                    Check::Tls,
                    "the URI is sip: (TLS is checked for sips: URIs)",
                );
            }
            Ok(Some(p))
        }
        // Over UDP/TCP nothing is sent yet: a failure here is ours (no socket).
        Err(e) if target.transport != Transport::Tls => Err(e),
        Err(e) => {
            run.fail(Check::Tls, "a connection to the SRS", e.to_string());
            Ok(None)
        }
    }
}

/// `options`: an OPTIONS outside any dialog.
pub(super) async fn options<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::Options);
    let hp = host_port(probe.local);
    let text = format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {hp};branch={b};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:check@{hp}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        uri = ctx.request_uri,
        t = probe.target.transport.as_str(),
        b = new_branch(),
        tag = new_tag(),
        cid = new_call_id(None),
    );
    let Ok(req) = request_from_text(&text) else {
        run.skip(Check::Options, "could not build the request");
        return;
    };
    let ex = probe.request(req, ctx.cfg.timeout).await;
    match ex.code() {
        Some(200..=299) => run.pass(Check::Options, ex.seen()),
        Some(_) => run.warn(
            Check::Options,
            "200 OK (answered as an INVITE would be)",
            ex.seen(),
        ),
        None => run.fail(Check::Options, "a final response", ex.seen()),
    }
}

/// `large-udp` / `large-tcp`: a SIPREC INVITE padded over 1300 bytes over `transport`, in a
/// session of its own.
pub(super) async fn large<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    ctx: &Ctx<'_>,
    transport: Transport,
) {
    let id = if transport == Transport::Udp {
        Check::LargeUdp
    } else {
        Check::LargeTcp
    };
    run.begin(id);
    let Some(addr) = same_host_over(ctx, transport) else {
        let why = match ctx.forced {
            Some(t) => format!(
                "the URI asks for transport={}",
                t.as_str().to_ascii_lowercase()
            ),
            None => "sips: URI: TLS only".to_string(),
        };
        run.skip(id, why);
        return;
    };
    let peer = Peer { transport, addr };
    let mut probe = match Probe::open(ctx.local_ip, peer, ctx.server_name, None).await {
        Ok(mut p) => {
            p.send_timeout = ctx.cfg.timeout;
            p
        }
        Err(e) => {
            run.fail(
                id,
                format!("a {} connection to {addr}", transport.as_str()),
                e.to_string(),
            );
            return;
        }
    };
    let mut s = match ctx.session(&probe).await {
        Ok(s) => s,
        Err(e) => {
            run.skip(id, e.to_string());
            return;
        }
    };
    let shape = InviteShape {
        min_size: 2000,
        ..InviteShape::default()
    };
    let ex = s.invite(&mut probe, shape, ctx.cfg.timeout).await;
    let size = s
        .invite
        .as_ref()
        .map(|r| probe::request_bytes(r).len())
        .unwrap_or(0);
    if ex.is_success() {
        run.pass(id, format!("{size}-byte INVITE: {}", ex.seen()));
        let _ = s
            .bye(&mut probe, ctx.cfg.timeout.min(Duration::from_secs(2)))
            .await;
    } else {
        run.fail(
            id,
            format!(
                "2xx to a {size}-byte SIPREC INVITE over {}",
                transport.as_str()
            ),
            ex.seen(),
        );
    }
    probe.close();
}

/// Where to send over `transport`: the resolved host and port, unless the URI rules that
/// transport out (`sips:`, or another `;transport=`). An SRS listens on UDP and TCP alike
/// (RFC 3261 §18).
fn same_host_over(ctx: &Ctx<'_>, transport: Transport) -> Option<SocketAddr> {
    if ctx.secure || ctx.forced.is_some_and(|t| t != transport) {
        return None;
    }
    Some(ctx.resolved)
}
