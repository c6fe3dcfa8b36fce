//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through
//! the fuzz targets' bodies on every test run, so an input that once made
//! a decoder panic (or any input the fuzzer found interesting) is checked
//! again without the fuzzing toolchain.

use std::path::Path;

#[test]
fn every_corpus_input_decodes_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in safe_testkit::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            target(&data);
            inputs += 1;
        }
        assert!(
            inputs >= 10,
            "{name}: only {inputs} corpus inputs in {}",
            dir.display()
        );
    }
}
