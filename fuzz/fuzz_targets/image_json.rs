//! Feeds arbitrary bytes to the image manifest, index and config parsers as a registry or
//! an archive would hand them over, then asks the parsed index for the host's platform.
//! Any panic is a bug.

#![no_main]

use hoist::image::manifest::{ImageConfigFile, ManifestOrIndex, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = serde_json::from_slice::<ManifestOrIndex>(data) {
        if let Some(manifests) = &parsed.manifests {
            let _ = hoist::image::manifest::select_platform(manifests, &Platform::host());
        }
    }
    let _ = serde_json::from_slice::<ImageConfigFile>(data);
});
