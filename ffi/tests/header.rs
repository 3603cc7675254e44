//! The checked-in `include/splitsound.h` is what the pinned cbindgen generates
//! from this crate now. `SPLITSOUND_BLESS=1` rewrites it instead of failing
//! (`scripts/gen-header.sh`).

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = crate_dir.join("../include/splitsound.h");
    if std::env::var_os("SPLITSOUND_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/splitsound.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!(
            "include/splitsound.h differs from what ffi/src generates (first difference near line {line}); \
             run scripts/gen-header.sh and commit the result"
        );
    }
}
