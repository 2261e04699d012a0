//! Replays every saved input through its target: the seed corpus (`fuzz/corpus/<target>`,
//! grown by `scripts/fuzz.sh --keep`) and the findings fixed so far (`fuzz/regressions/<target>`,
//! one file per crash libFuzzer reported). A target that panics on any of them fails here.

use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut count = 0;
    for (name, target) in nitejar_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_seed_input_passes_its_target() {
    let n = replay("corpus");
    // Each target has seeds; an empty corpus would make this test pass vacuously.
    assert!(n >= 5 * 3, "only {n} corpus files");
}

#[test]
fn every_fixed_finding_stays_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_a_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in nitejar_fuzz::TARGETS {
        let n = std::fs::read_dir(root.join(name)).map_or(0, |d| d.count());
        assert!(n >= 3, "fuzz/corpus/{name} has {n} seeds");
    }
}
