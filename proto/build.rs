//! Generates the ferry.v1 Rust code at build time from `ferry/v1/*.proto`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Honour a system protoc when the caller provides one; otherwise use the vendored binary so a
    // fresh machine needs nothing installed.
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // Build scripts are single-threaded, so mutating the environment cannot race.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("PROTOC", protoc)
        };
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = ["ferry/v1/ferry.proto"];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ferry_v1_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
