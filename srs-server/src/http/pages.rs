//! The browser's HTML: server-rendered, a little plain JavaScript for the waveform, no build
//! step. Every value from a recording is escaped.

use std::fmt::Write;

use siprec_storage::Manifest;

use super::browser::{ListPage, ListQuery};

/// Escapes text for HTML (element content and quoted attributes).
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a query value.
fn qv(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// `?token=…` (or `&token=…`) for links when a token is set.
fn tok(token: Option<&str>, first: bool) -> String {
    match token {
        Some(t) => format!("{}token={}", if first { '?' } else { '&' }, qv(t)),
        None => String::new(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}tr:hover td{background:#fafafa}pre{background:#f7f7f7;padding:.8em;overflow:auto}\
form input{margin-right:.6em}a{color:#0645ad}.bad{color:#a00}canvas{border:1px solid #ccc;cursor:pointer}";

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} · srs-server</title>\
         <style>{STYLE}</style></head><body>",
        esc(title)
    )
}

fn secs(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// The list page.
pub(crate) fn list(q: &ListQuery, page: &ListPage, token: Option<&str>) -> String {
    let mut h = head("Recordings");
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let _ = write!(
        h,
        "<h1>Recordings</h1><form method=\"get\" action=\"/\" id=\"filter\">\
         From <input type=\"date\" name=\"from\" value=\"{}\"> to <input type=\"date\" name=\"to\" value=\"{}\">\
         <input type=\"search\" name=\"q\" id=\"q\" placeholder=\"Recording ID, Call-ID, name, AOR\" size=\"40\" value=\"{}\">",
        v(&q.from),
        v(&q.to),
        v(&q.q)
    );
    if let Some(t) = token {
        let _ = write!(
            h,
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            esc(t)
        );
    }
    h.push_str("<button type=\"submit\">Filter</button></form>");
    if page.items.is_empty() {
        h.push_str("<p id=\"empty\">No recordings.</p>");
    } else {
        h.push_str(
            "<table id=\"recordings\"><tr><th>Start (UTC)</th><th>Duration</th><th>Recording</th>\
             <th>Participants</th><th>Codec</th><th>State</th><th>Ended by</th></tr>",
        );
        for i in &page.items {
            let state = if i.complete {
                "complete".to_string()
            } else {
                "<span class=\"bad\">recovered</span>".to_string()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><a class=\"rec\" href=\"/recordings/{}{}\">{}</a></td>\
                 <td>{}</td><td>{}</td><td>{state}</td><td>{}</td></tr>",
                esc(&i.start),
                secs(i.duration_s),
                esc(&i.path),
                tok(token, true),
                esc(&i.key),
                esc(&i.participants.join(", ")),
                esc(&i.codecs.join(", ")),
                esc(&i.ended_by)
            );
        }
        h.push_str("</table>");
    }
    let link = |p: usize| {
        let mut l = format!("/?page={p}");
        for (k, v) in [("from", &q.from), ("to", &q.to), ("q", &q.q)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(l, "&{k}={}", qv(v));
            }
        }
        l + &tok(token, false)
    };
    h.push_str("<p>");
    if page.page > 0 {
        let _ = write!(h, "<a href=\"{}\">← newer</a> ", esc(&link(page.page - 1)));
    }
    let _ = write!(h, "page {}", page.page + 1);
    if page.more {
        let _ = write!(h, " <a href=\"{}\">older →</a>", esc(&link(page.page + 1)));
    }
    h.push_str("</p></body></html>");
    h
}

/// Indents an XML document; the text as it is when it does not parse.
pub(crate) fn pretty_xml(xml: &str) -> String {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match r.read_event() {
            Ok(Event::Eof) => break,
            Ok(e) => {
                if w.write_event(e).is_err() {
                    return xml.to_string();
                }
            }
            Err(_) => return xml.to_string(),
        }
    }
    String::from_utf8(w.into_inner()).unwrap_or_else(|_| xml.to_string())
}

const WAVE_JS: &str = r#"
(function(){
  const c=document.getElementById('wave'), a=document.getElementById('player');
  const pauses=JSON.parse(c.dataset.pauses), dur=parseFloat(c.dataset.duration)||0;
  fetch(c.dataset.peaks).then(r=>r.json()).then(p=>{
    const g=c.getContext('2d'), W=c.width, H=c.height, half=H/2, n=p.left.length;
    g.fillStyle='#fff'; g.fillRect(0,0,W,H);
    if(dur>0){ g.fillStyle='rgba(120,120,120,0.25)';
      for(const q of pauses){ const x0=q.start/dur*W, x1=q.end/dur*W; g.fillRect(x0,0,Math.max(1,x1-x0),H); } }
    const draw=(bins,top,color)=>{ g.fillStyle=color; const mid=top+half/2;
      for(let i=0;i<n;i++){ const x=i/n*W, w=Math.max(1,W/n);
        const lo=bins[i][0]/32768*half/2, hi=bins[i][1]/32768*half/2;
        g.fillRect(x,mid-hi,w,Math.max(1,hi-lo)); } };
    draw(p.left,0,'#1f6fb2'); draw(p.right,half,'#2e9b4f');
    g.fillStyle='#999'; g.fillRect(0,half,W,1);
    g.fillStyle='#333'; g.font='12px sans-serif'; g.fillText('L',4,14); g.fillText('R',4,half+14);
    c.dataset.channelsDrawn='2';
  }).catch(e=>{ c.dataset.error=String(e); });
  c.addEventListener('click',ev=>{ const d=a.duration||dur; if(d>0){ a.currentTime=ev.offsetX/c.clientWidth*d; a.play(); } });
})();
"#;

/// One recording's page.
pub(crate) fn recording(
    path: &str,
    m: &Manifest,
    docs: &[(String, String)],
    token: Option<&str>,
) -> String {
    let mut h = head(&m.recording_key);
    let t1 = tok(token, true);
    let file = |f: &str| esc(&format!("/files/{path}/{f}{t1}"));
    let _ = write!(
        h,
        "<p><a href=\"/{t1}\">← recordings</a></p><h1>{}</h1>",
        esc(&m.recording_key)
    );
    let row = |k: &str, v: &str| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    h.push_str("<table id=\"summary\">");
    for (k, v) in [
        ("Recording ID", m.recording_id.clone().unwrap_or_default()),
        ("Call-ID", m.call_id.clone()),
        ("Start (UTC)", m.start_time.clone()),
        ("Stop (UTC)", m.stop_time.clone()),
        (
            "Duration",
            format!("{} ({:.3} s)", secs(m.duration_seconds), m.duration_seconds),
        ),
        ("Sample rate", format!("{} Hz", m.sample_rate)),
        ("Ended by", m.ended_by.clone()),
        (
            "Complete",
            if m.complete {
                "yes".into()
            } else {
                "no (recovered)".into()
            },
        ),
        ("Instance", m.instance_id.clone()),
        ("Recorded sessions", m.session_ids.join(", ")),
        ("SIP sessions", m.sip_session_ids.join(", ")),
        ("Channel mapping", m.channels.reason.clone()),
    ] {
        h.push_str(&row(k, &v));
    }
    h.push_str("</table>");

    let _ = write!(
        h,
        "<h2>Audio</h2><canvas id=\"wave\" width=\"1000\" height=\"200\" data-peaks=\"{}\" \
         data-duration=\"{}\" data-pauses=\"{}\"></canvas><br>\
         <audio id=\"player\" controls preload=\"metadata\" src=\"{}\"></audio>\
         <p>Download: <a href=\"{}\" download>audio.wav</a> · <a href=\"{}\" download>recording.json</a>",
        esc(&format!("/api/peaks/{path}{t1}")),
        m.duration_seconds,
        esc(&serde_json::to_string(&m.pauses).unwrap_or_else(|_| "[]".into())),
        file("audio.wav"),
        file("audio.wav"),
        file("recording.json"),
    );
    for (name, _) in docs {
        let _ = write!(
            h,
            " · <a href=\"{}\" download>{}</a>",
            file(name),
            esc(name)
        );
    }
    h.push_str("</p>");

    h.push_str("<h2>Participants</h2><table id=\"participants\"><tr><th>Participant</th><th>Name</th><th>AOR</th><th>Channel</th></tr>");
    for p in &m.participants {
        let ch = if m.channels.left.participants.contains(&p.id) {
            "left"
        } else if m.channels.right.participants.contains(&p.id) {
            "right"
        } else {
            "-"
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{ch}</td></tr>",
            esc(&p.id),
            esc(p.name.as_deref().unwrap_or("")),
            esc(p.aor.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");

    h.push_str(
        "<h2>Streams</h2><table id=\"streams\"><tr><th>m-line</th><th>Label</th><th>Channel</th>\
         <th>Codecs</th><th>Received</th><th>Lost</th><th>Late</th><th>Duplicated</th>\
         <th>Reordered</th><th>Foreign</th><th>SSRC changes</th><th>SRTP</th><th>Auth failed</th></tr>",
    );
    for s in &m.streams {
        let ch = match s.channel {
            Some(0) => "left",
            Some(_) => "right",
            None => "declined",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{ch}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.index,
            esc(s.label.as_deref().unwrap_or("")),
            esc(&s.codecs.join(", ")),
            s.packets_received,
            s.packets_lost,
            s.packets_late,
            s.packets_duplicated,
            s.packets_reordered,
            s.packets_foreign,
            s.ssrc_changes,
            if s.srtp { "yes" } else { "no" },
            s.packets_auth_failed
        );
    }
    h.push_str("</table><h2>Pauses</h2>");
    if m.pauses.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table id=\"pauses\"><tr><th>From</th><th>To</th></tr>");
        for p in &m.pauses {
            let _ = write!(
                h,
                "<tr><td>{:.3} s</td><td>{:.3} s</td></tr>",
                p.start, p.end
            );
        }
        h.push_str("</table>");
    }
    if !m.metadata_errors.is_empty() {
        h.push_str("<h2>Metadata problems</h2><ul>");
        for e in &m.metadata_errors {
            let _ = write!(h, "<li class=\"bad\">{}</li>", esc(e));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Metadata documents</h2>");
    for (name, xml) in docs {
        let _ = write!(
            h,
            "<h3>{}</h3><pre class=\"metadata\">{}</pre>",
            esc(name),
            esc(&pretty_xml(xml))
        );
    }
    let _ = write!(h, "<script>{WAVE_JS}</script></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_pretty_prints() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        let p =
            pretty_xml("<recording><participant id=\"a\"><name>A</name></participant></recording>");
        assert_eq!(
            p,
            "<recording>\n  <participant id=\"a\">\n    <name>A</name>\n  </participant>\n</recording>"
        );
        assert_eq!(pretty_xml("<a><b></a>"), "<a><b></a>");
        assert_eq!(qv("a b/é"), "a%20b%2F%C3%A9");
    }
}
