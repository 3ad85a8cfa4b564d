//! How a [`Report`] is shown: text (summary first, one line per check, expected/seen under
//! each FAIL and WARN, optional ANSI colour), JSON, and JUnit XML for CI systems.

use std::fmt::Write as _;

use super::{Report, Status};

fn paint(s: &str, status: Status, colour: bool) -> String {
    if !colour {
        return s.to_string();
    }
    let code = match status {
        Status::Pass => "32",
        Status::Fail => "1;31",
        Status::Warn => "33",
        Status::Skip => "2",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// The text report: a summary line, then one line per check (`STATUS  id  rule  what was
/// seen`), with `expected:` / `seen:` lines under failures and warnings.
pub fn text(r: &Report, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} passed, {} failed, {} warnings, {} skipped",
        r.uri,
        r.target,
        r.count(Status::Pass),
        paint(
            &r.count(Status::Fail).to_string(),
            Status::Fail,
            colour && r.has_failures()
        ),
        r.count(Status::Warn),
        r.count(Status::Skip),
    );
    let id_w = r.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let rule_w = r.checks.iter().map(|c| c.rule.len()).max().unwrap_or(0);
    for c in &r.checks {
        let status = paint(c.status.as_str(), c.status, colour);
        let head = format!("{status}  {:id_w$}  {:rule_w$}  {}", c.id, c.rule, c.title);
        if matches!(c.status, Status::Fail | Status::Warn) {
            let _ = writeln!(out, "{head}");
        } else {
            let _ = writeln!(out, "{head}: {}", c.seen);
        }
        if let (Status::Fail | Status::Warn, Some(exp)) = (c.status, &c.expected) {
            let _ = writeln!(out, "      expected: {exp}");
            let _ = writeln!(out, "      seen:     {}", c.seen);
        }
    }
    out
}

/// The report as one JSON document.
pub fn json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "uri": r.uri,
        "target": r.target,
        "summary": {
            "pass": r.count(Status::Pass),
            "fail": r.count(Status::Fail),
            "warn": r.count(Status::Warn),
            "skip": r.count(Status::Skip),
        },
        "checks": r.checks.iter().map(|c| serde_json::json!({
            "id": c.id,
            "status": c.status.as_str(),
            "rule": c.rule,
            "title": c.title,
            "expected": c.expected,
            "seen": c.seen,
        })).collect::<Vec<_>>(),
    })
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The report as JUnit XML: one `<testcase>` per check, `<failure>` for FAIL, `<skipped>`
/// for SKIP, WARN as a passing case with its message in `<system-out>`.
pub fn junit(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"siprec-check {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        xml_escape(&r.uri),
        r.checks.len(),
        r.count(Status::Fail),
        r.count(Status::Skip),
    );
    for c in &r.checks {
        let _ = write!(
            out,
            "  <testcase classname=\"siprec.check\" name=\"{} ({})\">",
            xml_escape(c.id),
            xml_escape(c.rule)
        );
        let expected = c.expected.as_deref().unwrap_or("");
        match c.status {
            Status::Fail => {
                let _ = write!(
                    out,
                    "<failure message=\"{}\">expected: {}\nseen: {}</failure>",
                    xml_escape(c.title),
                    xml_escape(expected),
                    xml_escape(&c.seen)
                );
            }
            Status::Skip => {
                let _ = write!(out, "<skipped message=\"{}\"/>", xml_escape(&c.seen));
            }
            Status::Warn => {
                let _ = write!(
                    out,
                    "<system-out>WARN expected: {} seen: {}</system-out>",
                    xml_escape(expected),
                    xml_escape(&c.seen)
                );
            }
            Status::Pass => {
                let _ = write!(out, "<system-out>{}</system-out>", xml_escape(&c.seen));
            }
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::CheckResult;
    use super::*;

    fn report() -> Report {
        Report {
            uri: "sip:srs.example.com".into(),
            target: "udp:192.0.2.10:5060".into(),
            checks: vec![
                CheckResult {
                    id: "invite",
                    rule: "RFC 7866 §6.1.1",
                    title: "SIPREC INVITE accepted",
                    status: Status::Pass,
                    expected: None,
                    seen: "200 OK".into(),
                },
                CheckResult {
                    id: "answer-direction",
                    rule: "RFC 3264 §6.1",
                    title: "each stream recvonly or inactive",
                    status: Status::Fail,
                    expected: Some("a=recvonly".into()),
                    seen: "m-line 1: a=sendrecv <&>".into(),
                },
                CheckResult {
                    id: "tls",
                    rule: "RFC 5922",
                    title: "TLS",
                    status: Status::Skip,
                    expected: None,
                    seen: "sip: URI".into(),
                },
            ],
        }
    }

    #[test]
    fn text_puts_the_summary_first_and_explains_failures() {
        let t = text(&report(), false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "sip:srs.example.com (udp:192.0.2.10:5060): 1 passed, 1 failed, 0 warnings, 1 skipped"
        );
        assert!(lines[1].starts_with("PASS  invite "), "{}", lines[1]);
        assert!(lines[2].starts_with("FAIL  answer-direction  RFC 3264 §6.1"));
        assert_eq!(lines[3], "      expected: a=recvonly");
        assert_eq!(lines[4], "      seen:     m-line 1: a=sendrecv <&>");
        assert!(!t.contains('\x1b'));
        assert!(text(&report(), true).contains("\x1b[1;31mFAIL\x1b[0m"));
    }

    #[test]
    fn json_and_junit_carry_every_check() {
        let j = json(&report());
        assert_eq!(j["summary"]["fail"], 1);
        assert_eq!(j["checks"][1]["status"], "FAIL");
        assert_eq!(j["checks"][1]["expected"], "a=recvonly");
        let x = junit(&report());
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(x.contains("<failure message=\"each stream recvonly or inactive\">expected: a=recvonly\nseen: m-line 1: a=sendrecv &lt;&amp;&gt;</failure>"));
        assert!(x.contains("<skipped message=\"sip: URI\"/>"));
    }
}
