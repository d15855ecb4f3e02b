//! The README's one-command demo works in both directions (run as `demo --once`).

use std::path::PathBuf;
use std::process::Command;

fn demo_binary() -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let demo = profile_dir.join("examples").join("demo");
    assert!(
        demo.exists(),
        "{} missing: build with --all-targets (make test does)",
        demo.display()
    );
    demo
}

fn run(args: &[&str]) -> String {
    let out = Command::new(demo_binary())
        .args(["--once", "--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_shows_every_notification_then_the_result() {
    for args in [&[][..], &["--reverse"][..]] {
        let out = run(args);
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
    }
}
