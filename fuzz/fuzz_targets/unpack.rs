//! Unpacks arbitrary bytes as a layer (raw tar, or gzip/zstd by their magic) into a fresh
//! directory with a small size bound. Beyond "no panic", nothing may appear outside the
//! layer directory: the target checks its sibling stays empty.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let (layer, outside) = (tmp.path().join("layer"), tmp.path().join("outside"));
    if std::fs::create_dir(&layer).is_err() || std::fs::create_dir(&outside).is_err() {
        return;
    }
    if let Ok(reader) = hoist::image::unpack::decompress(data) {
        let _ = hoist::image::unpack::unpack(reader, &layer, 16 << 20);
    }
    let escaped = std::fs::read_dir(&outside).map(|d| d.count()).unwrap_or(0);
    assert_eq!(escaped, 0, "an entry landed outside the layer");
});
