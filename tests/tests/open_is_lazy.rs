//! Opening a model maps it without reading its weights: the mapping of MobileNetV2's file
//! (14 MB of weights) has well under a megabyte resident after `Model::open`, and all of it
//! after `verify()` hashes every weight byte.

use std::path::Path;

/// Resident kB of this process's mapping of `path` (from `/proc/self/smaps`).
fn mapped_rss_kb(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("Linux /proc");
    let name = path.to_str().expect("utf-8 temp path");
    let mut in_mapping = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_mapping = line.ends_with(name);
        } else if in_mapping && let Some(v) = line.strip_prefix("Rss:") {
            total += v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .expect("Rss value");
        }
    }
    total
}

#[test]
fn open_does_not_touch_weight_pages() {
    let model = prunus_tool::zoo::build("mobilenet_v2", &Default::default()).unwrap();
    let bytes = model.to_bytes(Default::default()).unwrap();
    assert!(
        bytes.len() > 13_000_000,
        "MobileNetV2 file is {} bytes",
        bytes.len()
    );
    let path = std::env::temp_dir().join(format!("prunus-open-lazy-{}.prunus", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    drop((model, bytes));

    let opened = prunus::Model::open(&path).unwrap();
    let after_open = mapped_rss_kb(&path);
    assert_eq!(opened.graph().metadata.name, "mobilenet_v2");
    // Verifying reads every weight page: proves the measurement sees them.
    opened.verify().unwrap();
    let after_verify = mapped_rss_kb(&path);
    drop(opened);
    std::fs::remove_file(&path).unwrap();

    println!(
        "resident pages of the mapping: after open {after_open} kB, after verify {after_verify} kB"
    );
    assert!(
        after_open < 1024,
        "open made {after_open} kB of the file resident"
    );
    assert!(
        after_verify > 13_000,
        "verify should touch every weight page ({after_verify} kB)"
    );
}
