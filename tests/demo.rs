//! The README's one-command demo works in both directions. The test runs the demo's own
//! code (examples/demo.rs) in-process, with its output in a buffer.

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

fn run(reverse: bool) -> String {
    let args = demo::Args {
        reverse,
        once: true,
        listen: "127.0.0.1:0".into(),
    };
    let mut out = Vec::new();
    let running = demo::run_demo(&args, &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(running.is_ok(), "{out}\n{:?}", running.err());
    out
}

#[test]
fn demo_shows_every_notification_then_the_result() {
    for reverse in [false, true] {
        let out = run(reverse);
        let progress: Vec<&str> = out.lines().filter(|l| l.contains(" progress ")).collect();
        assert_eq!(progress.len(), 5, "{out}");
        for (i, line) in progress.iter().enumerate() {
            assert!(line.contains(&format!("{}/5", i + 1)), "{line}");
        }
        assert_eq!(
            out.lines().filter(|l| l.contains(" log ")).count(),
            5,
            "{out}"
        );
        let result_at = out.find("result    processed 5 items").expect("result");
        assert!(out.rfind("progress  5/5").unwrap() < result_at, "{out}");
        // Live, not held back until the result: the server spaces the items 250 ms apart,
        // so the first progress line is printed at least a second before the result.
        let at = |marker: &str| -> f64 {
            let line = out.lines().find(|l| l.contains(marker)).expect(marker);
            let t = line.trim_start().trim_start_matches('+');
            t[..t.find('s').unwrap()].parse().unwrap()
        };
        assert!(
            at("result ") - at("progress  1/5") >= 0.9,
            "notifications arrived together with the result:\n{out}"
        );
    }
}
