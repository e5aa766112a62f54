//! Opening a model maps it without reading its weights: resident memory grows by well
//! under a megabyte when MobileNetV2 (14 MB of weights) is opened and validated.

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

#[test]
fn open_does_not_touch_weight_pages() {
    let model = prunus_tool::zoo::build("mobilenet_v2", &Default::default()).unwrap();
    let bytes = model.to_bytes(Default::default()).unwrap();
    assert!(bytes.len() > 13_000_000, "MobileNetV2 file is {} bytes", bytes.len());
    let path = std::env::temp_dir().join(format!("prunus-open-lazy-{}.prunus", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    drop((model, bytes));

    let before = rss_kb();
    let opened = prunus::Model::open(&path).unwrap();
    let after_open = rss_kb();
    assert_eq!(opened.graph().metadata.name, "mobilenet_v2");
    // Verifying reads every weight page: proves the measurement can see them.
    opened.verify().unwrap();
    let after_verify = rss_kb();
    std::fs::remove_file(&path).unwrap();

    let open_growth = after_open.saturating_sub(before);
    let verify_growth = after_verify.saturating_sub(before);
    println!("RSS growth: open {open_growth} kB, after verify {verify_growth} kB");
    assert!(open_growth < 1024, "open grew RSS by {open_growth} kB");
    assert!(verify_growth > 10_000, "verify should touch the weights ({verify_growth} kB)");
}
