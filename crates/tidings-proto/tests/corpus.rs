//! Runs every checked-in fuzz seed (`fuzz/corpus/<target>/*`) through the same checks as the
//! fuzz targets, so CI exercises them on stable Rust without cargo-fuzz.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod harness;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable corpus entry").path();
            let bytes = std::fs::read(&path).expect("readable seed");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    // A corpus that silently went missing would make this test pass vacuously.
    assert!(
        seeds.len() >= 10,
        "{}: only {} seeds",
        dir.display(),
        seeds.len()
    );
    seeds
}

#[test]
fn line_decoder_seeds() {
    for (path, bytes) in seeds("line_decoder") {
        eprintln!("{}", path.display());
        harness::line_decoder(&bytes);
    }
}

#[test]
fn json_decoder_seeds() {
    for (path, bytes) in seeds("json_decoder") {
        eprintln!("{}", path.display());
        harness::json_decoder(&bytes);
    }
}

#[test]
fn stomp_decoder_seeds() {
    for (path, bytes) in seeds("stomp_decoder") {
        eprintln!("{}", path.display());
        harness::stomp_decoder(&bytes);
    }
}

#[test]
fn udp_decoder_seeds() {
    for (path, bytes) in seeds("udp_decoder") {
        eprintln!("{}", path.display());
        harness::udp_decoder(&bytes);
    }
}

#[test]
fn sockjs_decoder_seeds() {
    for (path, bytes) in seeds("sockjs_decoder") {
        eprintln!("{}", path.display());
        harness::sockjs_decoder(&bytes);
    }
}

#[test]
fn engineio_decoder_seeds() {
    for (path, bytes) in seeds("engineio_decoder") {
        eprintln!("{}", path.display());
        harness::engineio_decoder(&bytes);
    }
}

#[test]
fn socketio_decoder_seeds() {
    for (path, bytes) in seeds("socketio_decoder") {
        eprintln!("{}", path.display());
        harness::socketio_decoder(&bytes);
    }
}

#[test]
fn tunnel_decoder_seeds() {
    for (path, bytes) in seeds("tunnel_decoder") {
        eprintln!("{}", path.display());
        harness::tunnel_decoder(&bytes);
    }
}
