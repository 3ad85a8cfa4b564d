//! The `siprec-client record` command against a running srs-server: one line per SRS and
//! activity with the SIP status and the contract's log line, a summary, and the exit decision.

use std::io::Write;
use std::sync::{Arc, Mutex};

use interop_tests::start_srs;
use siprec_client::cli::{parse_record_args, record};
use siprec_sip::transaction::Transport;

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn args(list: &[&str]) -> siprec_client::cli::RecordArgs {
    parse_record_args(list).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_command_prints_the_contract_lines() {
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 34000).await.unwrap();
    let mut published = srs.subscribe();
    let udp = srs
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let server = format!("sip:{udp}");
    let out = Shared::default();
    let summary = record(
        args(&[
            "--server",
            &server,
            "--recording-id",
            "cli-rec",
            "--duration",
            "3s",
            "--pause-at",
            "1s",
            "--resume-at",
            "2s",
            "--local-ip",
            "127.0.0.1",
        ]),
        Box::new(out.clone()),
    )
    .await
    .unwrap();
    let text = out.text();
    assert!(summary.ok, "{text}");
    for want in [
        format!("start    {server}  200  successfully established siprec connection"),
        "start    200 startCallRecording request for a call".to_string(),
        format!("pause    {server}  200  siprec connection paused"),
        "pause    200 pauseCallRecording request for a call".to_string(),
        format!("resume   {server}  200  siprec connection resumed"),
        format!("stop     {server}  200  siprec connection stopped"),
        "stop     200 stopCallRecording request for a call".to_string(),
        format!("summary  recorded on 1 SRS ({server}); stopped cleanly on {server}"),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let got = tokio::time::timeout(std::time::Duration::from_secs(15), published.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.manifest.recording_key, "cli-rec");
    assert_eq!(got.manifest.pauses.len(), 1);

    // JSON lines, and a start that fails: not ok, with the reason.
    let out = Shared::default();
    let summary = record(
        args(&[
            "--server",
            "wss://siprec.example.com",
            "--duration",
            "1s",
            "--json",
        ]),
        Box::new(out.clone()),
    )
    .await
    .unwrap();
    assert!(!summary.ok);
    assert!(summary
        .message
        .contains("503 Error starting SipRec call recording"));
    let lines: Vec<serde_json::Value> = out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcome = lines.iter().find(|l| l["kind"] == "outcome").unwrap();
    assert_eq!(outcome["code"], 503);
    assert_eq!(outcome["log"], "Error starting SipRec call recording");
    assert!(outcome["reason"]
        .as_str()
        .unwrap()
        .contains("wss://siprec.example.com"));
    let last = lines.last().unwrap();
    assert_eq!(last["kind"], "summary");
    assert_eq!(last["ok"], false);

    // The missing-value case.
    let summary = record(
        args(&["--server", " ", "--duration", "1s"]),
        Box::new(Shared::default()),
    )
    .await
    .unwrap();
    assert!(summary
        .message
        .contains("400 startCallRecording request is missing X-Srs-Url header"));
    srs.shutdown().await.unwrap();
}
